"use strict";
// Vigil zone editor: clicks are image pixels; the server turns them into ground metres.
(function () {
  const $ = (id) => document.getElementById(id);
  const cv = $("overlay"), ctx = cv.getContext("2d");
  let zonePts = [], queuePts = [], zones = [], metres = [];

  function mode() { return $("mode-queue").checked ? "queue" : "zone"; }
  function status(msg, kind) { const s = $("status"); s.textContent = msg; s.className = kind || ""; }

  async function post(url, body) {
    const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    return r.json();
  }

  function path(pts, close) {
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
    if (close) ctx.closePath();
  }

  function draw() {
    ctx.clearRect(0, 0, cv.width, cv.height);
    ctx.lineWidth = 2; ctx.font = "14px system-ui, sans-serif";
    for (const z of zones) {
      const pts = z.polygon_px.filter((p) => p);
      if (pts.length >= 3) {
        ctx.fillStyle = "rgba(255, 200, 0, 0.18)"; ctx.strokeStyle = "rgb(255, 200, 0)";
        path(pts, true); ctx.fill(); ctx.stroke();
        ctx.fillStyle = "#000"; ctx.fillRect(pts[0][0], pts[0][1] - 16, ctx.measureText(z.name).width + 6, 17);
        ctx.fillStyle = "rgb(255, 200, 0)"; ctx.fillText(z.name, pts[0][0] + 3, pts[0][1] - 3);
      }
      if (z.queue_px && z.queue_px[0] && z.queue_px[1]) {
        ctx.strokeStyle = "rgb(0, 200, 255)"; path(z.queue_px, false); ctx.stroke();
      }
    }
    ctx.strokeStyle = "rgb(255, 40, 40)"; ctx.fillStyle = "rgba(255, 40, 40, 0.2)";
    if (zonePts.length) { path(zonePts, zonePts.length >= 3); if (zonePts.length >= 3) ctx.fill(); ctx.stroke(); }
    ctx.strokeStyle = "rgb(0, 120, 255)";
    if (queuePts.length) { path(queuePts, false); ctx.stroke(); }
    for (const p of zonePts.concat(queuePts)) { ctx.fillStyle = "#fff"; ctx.fillRect(p[0] - 3, p[1] - 3, 6, 6); }
  }

  function rows() {
    const tb = $("vertices").tBodies[0];
    tb.textContent = "";
    const all = zonePts.map((p, i) => ["Z" + (i + 1), p, metres[i]]).concat(queuePts.map((p, i) => ["Q" + (i + 1), p, null]));
    for (const [name, p, m] of all) {
      const tr = tb.insertRow();
      for (const v of [name, p[0].toFixed(1), p[1].toFixed(1), m ? m[0].toFixed(3) : "–", m ? m[1].toFixed(3) : "–"]) {
        tr.insertCell().textContent = v;
      }
    }
  }

  async function refreshMetres() {
    const r = await post("/api/ground", { points_px: zonePts });
    if (!r.ok) { status(r.error, "err"); return; }
    metres = r.points_m;
    $("area").textContent = "Area: " + (r.area_m2 === null || r.area_m2 === undefined ? "–" : r.area_m2.toFixed(2) + " m²");
    if (metres.some((m) => m === null)) status("A point sees no ground (above the horizon): undo it.", "err");
    rows();
  }

  async function loadState() {
    const r = await (await fetch("/api/state")).json();
    if (!r.ok) { status(r.error, "err"); return; }
    $("camera").textContent = r.camera; $("config").textContent = r.config;
    zones = r.zones;
    const tb = $("zones").tBodies[0];
    tb.textContent = "";
    for (const z of zones) {
      const tr = tb.insertRow();
      tr.dataset.zone = z.name;
      tr.insertCell().textContent = z.name;
      tr.insertCell().textContent = z.area_m2.toFixed(2);
      tr.insertCell().textContent = z.polygon_m.map((p) => "(" + p[0].toFixed(2) + ", " + p[1].toFixed(2) + ")").join(" ");
      tr.insertCell().textContent = z.queue_m ? z.queue_m.map((p) => "(" + p[0].toFixed(2) + ", " + p[1].toFixed(2) + ")").join(" → ") : "";
      const b = document.createElement("button");
      b.type = "button"; b.textContent = "Delete " + z.name;
      b.addEventListener("click", async () => {
        const d = await post("/api/zones/delete", { name: z.name });
        status(d.ok ? "Deleted " + z.name + "." : d.error, d.ok ? "ok" : "err");
        loadState();
      });
      tr.insertCell().appendChild(b);
    }
    draw();
  }

  function num(id) { const v = $(id).value; return v === "" ? null : Number(v); }

  function start() {
    const img = $("frame");
    cv.width = img.naturalWidth; cv.height = img.naturalHeight;
    $("stage").style.width = img.naturalWidth + "px"; $("stage").style.height = img.naturalHeight + "px";
    loadState();
  }
  // the frame may have loaded before this deferred script ran
  if ($("frame").complete && $("frame").naturalWidth) start(); else $("frame").addEventListener("load", start);
  cv.addEventListener("click", (e) => {
    const r = cv.getBoundingClientRect();
    const p = [(e.clientX - r.left) * cv.width / r.width, (e.clientY - r.top) * cv.height / r.height];
    if (mode() === "queue") { if (queuePts.length >= 2) queuePts = []; queuePts.push(p); rows(); draw(); }
    else { zonePts.push(p); draw(); refreshMetres(); }
  });
  $("undo").addEventListener("click", () => {
    if (mode() === "queue") queuePts.pop(); else zonePts.pop();
    draw(); refreshMetres();
  });
  $("clear").addEventListener("click", () => { zonePts = []; queuePts = []; metres = []; draw(); refreshMetres(); });
  $("save").addEventListener("click", async () => {
    const body = {
      name: $("zname").value, polygon_px: zonePts,
      max_people: num("max_people"), m2_per_person: num("m2_per_person"),
      distance_threshold_m: num("distance_threshold_m"), max_density_per_m2: num("max_density_per_m2"),
    };
    if (queuePts.length) { body.queue_px = queuePts; body.corridor_m = num("corridor_m"); body.min_spacing_m = num("min_spacing_m"); }
    const r = await post("/api/zones", body);
    if (r.ok) {
      status("Saved zone " + r.zone.name + "." + (r.warnings.length ? "\nWarnings:\n" + r.warnings.join("\n") : ""), "ok");
      zonePts = []; queuePts = []; metres = []; rows(); loadState();
    } else status(r.error, "err");
  });
})();
