// Vigil operator console: live alarm list (one row per alarm, updated in place) over
// Server-Sent Events, the open-alarm count, critical-alarm cues.
(function () {
  "use strict";
  var audio = null;
  function unlockAudio() {
    try {
      if (!audio) { audio = new (window.AudioContext || window.webkitAudioContext)(); }
      if (audio.state === "suspended") { audio.resume(); }
    } catch (e) { audio = null; }
  }
  function beep() {
    if (!audio) { return; }
    try {
      var t0 = audio.currentTime;
      [0, 0.25, 0.5].forEach(function (dt) {
        var o = audio.createOscillator(), g = audio.createGain();
        o.frequency.value = 880; o.type = "square";
        g.gain.setValueAtTime(0.15, t0 + dt); g.gain.setValueAtTime(0, t0 + dt + 0.15);
        o.connect(g); g.connect(audio.destination); o.start(t0 + dt); o.stop(t0 + dt + 0.16);
      });
    } catch (e) { /* no sound device */ }
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }
  function banner(ev, tr) {
    var b = document.getElementById("alert-banner");
    if (!b) { return; }
    b.textContent = tr.critical.toUpperCase() + ": " + (ev.text || ev.type + " @ " + ev.camera);  // the text names the place
    b.hidden = false;
    b.classList.remove("flash"); void b.offsetWidth; b.classList.add("flash");
    document.title = "(!) " + document.title.replace(/^\(!\) /, "");
  }
  function startList(table) {
    var tr = JSON.parse(table.dataset.i18n);
    var tbody = table.tBodies[0];
    var live = document.getElementById("live");
    var url = table.dataset.stream + (table.dataset.stream.indexOf("?") >= 0 && table.dataset.stream.slice(-1) !== "?" ? "&" : "") + "since=" + table.dataset.cursor;
    var es = new EventSource(url);
    es.onopen = function () { live.textContent = live.dataset.on; live.className = "live on"; };
    es.onerror = function () { live.textContent = live.dataset.off; live.className = "live off"; };
    es.addEventListener("logout", function () { es.close(); window.location = "/login"; });
    es.addEventListener("alarm", function (msg) {
      // one row per alarm: an event of an alarm already listed replaces its row
      var ev = JSON.parse(msg.data);
      var old = null;
      Array.prototype.forEach.call(tbody.rows, function (r) { if (r.dataset.id === ev.id) { old = r; } });
      var row = document.createElement("tr");
      row.className = "sev-" + ev.severity + " st-" + ev.status + " al-" + ev.state + " fresh";
      row.dataset.id = ev.id; row.dataset.seq = ev.stream_seq;
      var td = document.createElement("td"), a = document.createElement("a");
      a.href = "/alarm/" + encodeURIComponent(ev.id); a.textContent = ev.first_time.slice(0, 19).replace("T", " ");
      td.appendChild(a); row.appendChild(td);
      cell(row, ev.camera); cell(row, ev.type_name);
      var summary = cell(row, ev.text, "summary");
      if (ev.unreadable) {
        var mark = document.createElement("span");
        mark.className = "badge unreadable"; mark.textContent = tr.unreadable;
        summary.insertBefore(document.createTextNode(" "), summary.firstChild); summary.insertBefore(mark, summary.firstChild);
      }
      var sev = cell(row, ""), badge = document.createElement("span");
      badge.className = "badge sev-" + ev.severity; badge.textContent = tr[ev.severity] || ev.severity; sev.appendChild(badge);
      if (ev.max_severity && ev.max_severity !== ev.severity) {
        var top = document.createElement("span");
        top.className = "badge sev-" + ev.max_severity; top.textContent = tr[ev.max_severity] || ev.max_severity;
        sev.appendChild(document.createTextNode(" ")); sev.appendChild(top);
      }
      cell(row, tr[ev.state] || ev.state, "state");
      cell(row, ev.duration); cell(row, ev.value); cell(row, ev.worst); cell(row, String(ev.events), "n");
      cell(row, (tr[ev.status] || ev.status) + (ev.status_user && ev.status !== "new" ? " (" + tr.by + " " + ev.status_user + ")" : ""), "status");
      if (old) { old.replaceWith(row); } else { tbody.insertBefore(row, tbody.firstChild); }
      while (tbody.rows.length > 500) { tbody.deleteRow(tbody.rows.length - 1); }
      if (ev.severity === "critical" && ev.state === "open" && (!old || old.className.indexOf("sev-critical") < 0)) { banner(ev, tr); beep(); }
    });
    es.addEventListener("drop", function (msg) {
      // an alarm the filters no longer keep (it ended under "open", ...): its row goes
      var id = JSON.parse(msg.data).id;
      Array.prototype.forEach.call(tbody.rows, function (r) { if (r.dataset.id === id) { r.remove(); } });
    });
    es.addEventListener("count", function (msg) {
      var n = document.getElementById("open-count");
      if (n) { n.textContent = String(JSON.parse(msg.data).open); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.addEventListener("click", unlockAudio, { once: true });
    var s = document.getElementById("sound");
    if (s) { s.addEventListener("click", function () { unlockAudio(); beep(); }); }
    var b = document.getElementById("alert-banner");
    if (b) { b.addEventListener("click", function () { b.hidden = true; document.title = document.title.replace(/^\(!\) /, ""); }); }
    var table = document.getElementById("alarms");
    if (table && window.EventSource) { startList(table); }
  });
})();
