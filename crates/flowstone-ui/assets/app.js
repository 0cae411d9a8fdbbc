// FlowStone dashboard: the partition grid (a canvas fed by one status character per
// partition) and live backfill progress (server-sent events). Hand-written, no dependencies.
"use strict";

(function () {
  const COLOURS = { ".": "--missing", r: "--running", s: "--success", f: "--failed", c: "--cancelled" };
  const NAMES = { ".": "missing", r: "running", s: "success", f: "failed", c: "cancelled" };

  function drawGrid() {
    const canvas = document.getElementById("partition-grid");
    const source = document.getElementById("grid-data");
    if (!canvas || !source) return;
    const data = JSON.parse(source.textContent);
    const n = data.codes.length;
    // Big grids get small cells, so 100 000 partitions fit in a few screens.
    const cell = n > 20000 ? 5 : n > 2000 ? 9 : 16;
    const gap = cell > 6 ? 2 : 1;
    const step = cell + gap;
    const width = Math.max(canvas.parentElement.clientWidth, step);
    const cols = Math.max(1, Math.floor(width / step));
    const rows = Math.max(1, Math.ceil(n / cols));
    const ratio = window.devicePixelRatio || 1;
    canvas.style.height = rows * step + "px";
    canvas.width = Math.floor(width * ratio);
    canvas.height = Math.floor(rows * step * ratio);
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    const style = getComputedStyle(document.documentElement);
    const fill = {};
    for (const code in COLOURS) fill[code] = style.getPropertyValue(COLOURS[code]).trim();
    // One fillStyle change per status rather than per cell.
    for (const code in COLOURS) {
      ctx.fillStyle = fill[code];
      for (let i = data.codes.indexOf(code); i !== -1; i = data.codes.indexOf(code, i + 1)) {
        ctx.fillRect((i % cols) * step, Math.floor(i / cols) * step, cell, cell);
      }
    }
    canvas.dataset.drawn = String(n);
    // For the benchmark: when the grid was complete, from navigation start.
    canvas.dataset.drawnMs = String(Math.round(performance.now()));
    const tip = document.getElementById("grid-tip");
    const at = (event) => {
      const box = canvas.getBoundingClientRect();
      const x = Math.floor((event.clientX - box.left) / step);
      const y = Math.floor((event.clientY - box.top) / step);
      const i = y * cols + x;
      return x < cols && i >= 0 && i < n ? i : -1;
    };
    canvas.onmousemove = (event) => {
      const i = at(event);
      if (i < 0) { tip.hidden = true; return; }
      tip.hidden = false;
      tip.textContent = data.keys[i] + ": " + NAMES[data.codes[i]];
      tip.style.left = (event.clientX - canvas.getBoundingClientRect().left + 12) + "px";
      tip.style.top = (event.clientY - canvas.getBoundingClientRect().top + 12) + "px";
    };
    canvas.onmouseleave = () => { tip.hidden = true; };
    canvas.onclick = (event) => {
      const i = at(event);
      if (i >= 0) {
        window.location.href = "/assets/" + encodeURIComponent(data.asset) + "/partitions/" +
          encodeURIComponent(data.keys[i]);
      }
    };
  }

  function followBackfill() {
    const live = document.getElementById("backfill-live");
    if (!live || !window.EventSource) return;
    const events = new EventSource(live.dataset.events);
    events.addEventListener("progress", (message) => {
      const p = JSON.parse(message.data);
      const percent = p.total === 0 ? 100 : Math.floor((p.done * 100) / p.total);
      document.getElementById("bf-status").innerHTML = "";
      const badge = document.createElement("span");
      badge.className = "badge status-" + p.status;
      badge.textContent = p.status;
      document.getElementById("bf-status").appendChild(badge);
      const bar = document.querySelector("#bf-progress .bar");
      if (bar) bar.style.width = percent + "%";
      const text = document.querySelector("#bf-progress .progress-text");
      if (text) text.textContent = p.done + "/" + p.total;
      document.getElementById("bf-counts").textContent =
        p.succeeded + " succeeded, " + p.failed + " failed, " + p.skipped + " skipped, " +
        p.cancelled + " cancelled, " + p.upstream_failed + " upstream failed";
      live.dataset.updates = String(Number(live.dataset.updates || 0) + 1);
      if (p.finished) events.close();
    });
    events.addEventListener("error", () => { if (events.readyState === EventSource.CLOSED) return; });
  }

  document.addEventListener("DOMContentLoaded", () => {
    drawGrid();
    followBackfill();
    let timer;
    window.addEventListener("resize", () => { clearTimeout(timer); timer = setTimeout(drawGrid, 150); });
  });
})();
