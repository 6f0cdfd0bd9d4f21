// The live view: one WebSocket to /ws/live/BLOCK; each message brings the new angle points and the
// status (angle, threshold, reps, cue, link). Each message is acknowledged so the server can measure
// the delay from a frame's arrival at the station to this page. The plot redraws on animation frames.
"use strict";
(function () {
  const root = document.getElementById("live");
  const block = root.dataset.block, free = root.dataset.freeSide;
  const sign = free === "right" ? 1 : -1;   // + = right hip low, as in the reports
  const canvas = document.getElementById("plot"), ctx = canvas.getContext("2d");
  const $ = (id) => document.getElementById(id);
  const WINDOW_S = 10;
  let pts = [], threshold = null, dirty = true, last = null;

  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/live/" + block);
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.error) { $("state").textContent = m.error; return; }
      ws.send(JSON.stringify({ack: m.seq}));
      for (const p of m.points) pts.push(p);
      if (pts.length) {
        const t0 = pts[pts.length - 1][0] - WINDOW_S;
        let i = 0; while (i < pts.length && pts[i][0] < t0) i++;
        if (i) pts = pts.slice(i);
      }
      threshold = m.threshold_deg; last = m; dirty = true;
      $("angle").textContent = m.angle_deg === null ? (m.calibrated ? "–" : "calibrating…") : m.angle_deg.toFixed(1) + "°";
      $("threshold").textContent = threshold + "°";
      $("reps").textContent = m.reps + (m.cued_reps ? " (" + m.cued_reps + " with the cue)" : "");
      $("cue").textContent = m.cue ? "ON" : "off";
      $("cue").className = m.cue ? "on" : "";
      $("link").textContent = m.stale_s ? "no new data for " + m.stale_s + " s" : m.link;
      if (m.delay_ms !== null) $("delay").textContent = m.delay_ms + " ms";
      $("state").textContent = m.ended ? "The block has ended." : "";
      root.dataset.frames = m.frames;
      root.dataset.reps = m.reps;
      root.dataset.points = (Number(root.dataset.points || 0) + m.points.length).toString();
    };
    ws.onclose = () => { $("link").textContent = "dashboard connection lost; retrying…"; setTimeout(connect, 2000); };
  }

  function draw() {
    if (dirty) {
      dirty = false;
      const w = canvas.width, h = canvas.height;
      let lim = 8;
      for (const p of pts) lim = Math.max(lim, Math.abs(p[1]) + 1);
      if (threshold !== null) lim = Math.max(lim, threshold + 2);
      const y = (v) => h / 2 - (v / lim) * (h / 2 - 10);
      ctx.clearRect(0, 0, w, h);
      ctx.strokeStyle = "#ccc"; ctx.beginPath(); ctx.moveTo(0, y(0)); ctx.lineTo(w, y(0)); ctx.stroke();
      ctx.fillStyle = "#777"; ctx.font = "12px sans-serif";  // the scale: degrees at the top, middle, bottom
      const top = Math.round(lim);
      ctx.fillText("+" + top + "°", 4, y(top) + 12); ctx.fillText("0°", 4, y(0) - 3); ctx.fillText("−" + top + "°", 4, y(-top) - 3);
      if (threshold !== null) {
        ctx.setLineDash([6, 4]); ctx.strokeStyle = "#c0392b";
        ctx.beginPath(); ctx.moveTo(0, y(sign * threshold)); ctx.lineTo(w, y(sign * threshold)); ctx.stroke();
        ctx.setLineDash([]);
      }
      if (pts.length) {
        const tEnd = pts[pts.length - 1][0];
        const x = (t) => w - ((tEnd - t) / WINDOW_S) * w;
        ctx.strokeStyle = last && last.cue ? "#f5a623" : "#1f3a5f"; ctx.lineWidth = 2; ctx.beginPath();
        pts.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
        ctx.stroke(); ctx.lineWidth = 1;
      }
    }
    requestAnimationFrame(draw);
  }
  connect();
  requestAnimationFrame(draw);
})();
