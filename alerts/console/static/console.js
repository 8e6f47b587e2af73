// Vigil operator console: live alarm list over Server-Sent Events, critical-alarm cues.
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
    b.textContent = (ev.plate ? tr.plate_hit + " " + ev.plate + " — " : "") + tr.critical.toUpperCase() + ": " + ev.type + " @ " + ev.camera;
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
      var ev = JSON.parse(msg.data);
      var old = tbody.querySelector('tr[data-id="' + ev.id + '"]');
      var row = document.createElement("tr");
      row.className = "sev-" + ev.severity + " st-" + ev.status + " fresh";
      row.dataset.id = ev.id; row.dataset.seq = ev.stream_seq;
      var td = document.createElement("td"), a = document.createElement("a");
      a.href = "/alarm/" + encodeURIComponent(ev.id); a.textContent = ev.time.slice(0, 19).replace("T", " ");
      td.appendChild(a); row.appendChild(td);
      cell(row, ev.camera); cell(row, ev.type);
      var sev = cell(row, ""), badge = document.createElement("span");
      badge.className = "badge sev-" + ev.severity; badge.textContent = tr[ev.severity] || ev.severity; sev.appendChild(badge);
      cell(row, tr[ev.state] || ev.state);
      var summary = cell(row, ev.summary, "summary");
      if (ev.unreadable) {
        var mark = document.createElement("span");
        mark.className = "badge unreadable"; mark.textContent = tr.unreadable;
        summary.insertBefore(document.createTextNode(" "), summary.firstChild); summary.insertBefore(mark, summary.firstChild);
      }
      cell(row, tr[ev.status] || ev.status, "status");
      if (old) { old.replaceWith(row); } else { tbody.insertBefore(row, tbody.firstChild); }
      while (tbody.rows.length > 500) { tbody.deleteRow(tbody.rows.length - 1); }
      if (ev.severity === "critical" && ev.state === "start" && !old) { banner(ev, tr); beep(); }
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
