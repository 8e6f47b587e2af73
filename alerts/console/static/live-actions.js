// Vigil operator console: operators' actions (acknowledge, close, reopen, note) appear live in
// every open page that shows the alarm, from /api/actions (Server-Sent Events; the server
// resumes after Last-Event-ID). Coordinated with the pages through DOM attributes only:
// list rows carry data-alarm="<alarm id>" (or data-id), their status in a td.status cell;
// an alarm's page has the #alarm-status badge (data-alarm, else the /alarm/<id> path), any
// [data-status-label] element ("acknowledged (by alice)") and the #history table.
(function () {
  "use strict";
  function pageAlarm() {
    var badge = document.getElementById("alarm-status");
    if (!badge) { return null; }
    var holder = badge.closest("[data-alarm]");
    if (holder) { return holder.dataset.alarm; }
    var m = /^\/alarm\/([^/]+)$/.exec(window.location.pathname);
    return m ? decodeURIComponent(m[1]) : null;
  }
  function updateRows(msg, ids) {
    var rows = document.querySelectorAll("tr[data-alarm], tr[data-id]");
    Array.prototype.forEach.call(rows, function (row) {
      var key = row.dataset.alarm || row.dataset.id;
      if (ids.indexOf(key) < 0 && ids.indexOf(row.dataset.id) < 0) { return; }
      var cell = row.querySelector("td.status");
      if (!cell) { return; }
      cell.textContent = msg.status_label;
      row.className = row.className.replace(/\bst-[a-z]+\b/g, "").trim() + " st-" + msg.status;
      row.dataset.status = msg.status;
    });
  }
  function sameRow(tr, cells) {
    if (tr.cells.length !== cells.length) { return false; }
    for (var i = 0; i < cells.length; i++) {
      if (tr.cells[i].textContent !== cells[i]) { return false; }
    }
    return true;
  }
  function updatePage(msg, ids, alarm) {
    if (!alarm || ids.indexOf(alarm) < 0) { return; }
    var badge = document.getElementById("alarm-status");
    badge.textContent = msg.status_text;
    badge.dataset.status = msg.status;
    // an alarm acknowledged or closed elsewhere can be reopened from here at once
    var reopen = document.getElementById("reopen");
    if (reopen) { reopen.hidden = msg.status === "new"; }
    // other places of the page that spell the status out with who set it
    Array.prototype.forEach.call(document.querySelectorAll("[data-status-label]"), function (el) {
      el.textContent = msg.status_label;
    });
    var history = document.getElementById("history");
    if (!history || !history.tBodies.length) { return; }
    var cells = [msg.time.slice(0, 19).replace("T", " "), msg.user, msg.action_text, msg.note];
    var body = history.tBodies[0];
    // the page may already list it (drawn just after the action): never twice
    if (Array.prototype.some.call(body.rows, function (tr) { return sameRow(tr, cells); })) { return; }
    var tr = document.createElement("tr");
    tr.className = "fresh";
    tr.dataset.action = String(msg.id);
    cells.forEach(function (text) {
      var td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  function start() {
    var meta = document.querySelector("meta[name=vigil-actions-cursor]");
    var alarm = pageAlarm();
    if (!meta || !window.EventSource) { return; }
    if (!alarm && !document.getElementById("alarms")) { return; }  // nothing here shows a status
    var last = parseInt(meta.content, 10) || 0;
    var es = new EventSource("/api/actions?since=" + last);
    document.body.dataset.actionsLive = "connecting";
    es.onopen = function () { document.body.dataset.actionsLive = "on"; };
    es.onerror = function () { document.body.dataset.actionsLive = "off"; };
    es.addEventListener("logout", function () { es.close(); });
    es.addEventListener("action", function (ev) {
      var msg = JSON.parse(ev.data);
      if (msg.id <= last) { return; }
      last = msg.id;
      var ids = [msg.alarm_id, msg.event_id];
      updateRows(msg, ids);
      updatePage(msg, ids, alarm);
      document.body.dataset.lastAction = String(msg.id);
    });
  }
  document.addEventListener("DOMContentLoaded", start);
})();
