// Vigil site map: live alarm markers on the plan (SVG in plan pixels), from the alarm feed.
// Each alarm event of a camera on this area is placed by the server (/api/map/AREA/marker/ID);
// an ended alarm fades and is removed. No external URL: the map works offline.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var FADE_MS = 8000;
  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function draw(layer, m, tr) {
    var a = el("a", { "class": "marker sev-" + m.severity + " st-" + m.state + (m.at_camera ? " at-camera" : "") + " fresh", href: "/alarm/" + encodeURIComponent(m.id) });
    a.dataset.alarm = m.alarm; a.dataset.camera = m.camera;
    var title = el("title", {}, a);
    title.textContent = m.type + " — " + m.camera + " — " + (tr[m.severity] || m.severity) + " — " + (tr[m.state] || m.state) + " — " + m.time.slice(0, 19).replace("T", " ");
    m.people.forEach(function (p) { el("circle", { "class": "person", cx: p[0], cy: p[1], r: 4 }, a); });
    el("circle", { "class": "mk", cx: m.at[0], cy: m.at[1], r: 10 }, a);
    var old = layer.querySelector('a.marker[data-alarm="' + CSS.escape(m.alarm) + '"]');
    if (old) { old.replaceWith(a); } else { layer.appendChild(a); }
    if (m.state === "end") {
      a.classList.add("ended");
      window.setTimeout(function () { if (a.parentNode) { a.parentNode.removeChild(a); } }, FADE_MS);
    }
  }
  function start(svg) {
    var area = svg.dataset.area, tr = JSON.parse(svg.dataset.i18n);
    var cams = JSON.parse(svg.dataset.cameras), layer = document.getElementById("markers");
    var live = document.getElementById("live");
    var order = 0, shown = {};  // alarm -> arrival number of the event drawn (fetches may overtake)
    layer.querySelectorAll("a.marker.st-end").forEach(function (a) { a.parentNode.removeChild(a); });
    var es = new EventSource(svg.dataset.stream + "?since=" + encodeURIComponent(svg.dataset.cursor));
    es.onopen = function () { live.textContent = live.dataset.on; live.className = "live on"; };
    es.onerror = function () { live.textContent = live.dataset.off; live.className = "live off"; };
    es.addEventListener("logout", function () { es.close(); window.location = "/login"; });
    es.addEventListener("alarm", function (msg) {
      var ev = JSON.parse(msg.data), n = ++order;
      if (!ev.id || (typeof ev.camera === "string" && cams.indexOf(ev.camera) < 0)) { return; }
      // an alarm row names its latest event (event_id); an older feed sent the event itself (id)
      fetch("/api/map/" + encodeURIComponent(area) + "/marker/" + encodeURIComponent(ev.event_id || ev.id), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { marker: null }; })
        .then(function (body) {
          var m = body.marker;
          if (!m || (shown[m.alarm] || 0) > n) { return; }
          shown[m.alarm] = n;
          draw(layer, m, tr);
        })
        .catch(function () { /* the next event or a reload redraws */ });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var svg = document.getElementById("sitemap");
    if (svg && window.EventSource) { start(svg); }
  });
})();
