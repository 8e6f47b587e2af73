// Vigil live tiles: reload each camera's tile every data-refresh-ms (about 2 s). A tile that
// fails to load (none yet, the node is down) is dimmed and retried; no inline script (CSP).
(function () {
  "use strict";
  function start(grid) {
    var every = parseInt(grid.dataset.refreshMs, 10) || 2000;
    var imgs = Array.prototype.slice.call(grid.querySelectorAll("figure.tile img"));
    imgs.forEach(function (img) {
      var fig = img.closest("figure");
      img.addEventListener("load", function () { fig.classList.remove("stale"); fig.dataset.loaded = String(Date.now()); });
      img.addEventListener("error", function () { fig.classList.add("stale"); });
    });
    window.setInterval(function () {
      if (document.hidden) { return; }
      imgs.forEach(function (img) { img.src = img.dataset.src + "?t=" + Date.now(); });
    }, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var grid = document.getElementById("tiles");
    if (grid) { start(grid); }
  });
})();
