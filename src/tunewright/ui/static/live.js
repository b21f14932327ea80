// The live loss curve: every metrics.jsonl line arrives as a server-sent event and the SVG is redrawn.
(function () {
  const svg = document.getElementById("loss");
  if (!svg) return;
  const status = document.getElementById("loss-status");
  const points = [];
  const NS = "http://www.w3.org/2000/svg";
  const W = 560, H = 240, L = 44, R = 12, T = 12, B = 28;

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    svg.appendChild(node);
    return node;
  }

  function draw() {
    svg.replaceChildren();
    const values = points.flatMap((p) => [p.train_loss, p.val_loss]).filter((v) => v !== null && v !== undefined);
    if (!values.length) return;
    const steps = points.map((p) => p.step);
    const x0 = Math.min(...steps), x1 = Math.max(...steps, x0 + 1);
    const low = Math.min(...values), high = Math.max(...values), pad = (high - low) * 0.08 || 0.05;
    const y0 = Math.max(0, low - pad), y1 = high + pad;
    const x = (s) => L + (s - x0) / (x1 - x0) * (W - L - R);
    const y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
    el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" });
    el("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" });
    [y0, (y0 + y1) / 2, y1].forEach((v) => el("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end",
      "font-size": 11, fill: "#555" }, v.toFixed(2)));
    [[x0, "start"], [x1, "end"]].forEach(([s, anchor]) => el("text", { x: x(s), y: H - 10, "text-anchor": anchor,
      "font-size": 11, fill: "#555" }, "step " + s));
    for (const [key, colour] of [["train_loss", "#2b6cb0"], ["val_loss", "#dd6b20"]]) {
      const kept = points.filter((p) => p[key] !== null && p[key] !== undefined);
      if (!kept.length) continue;
      el("polyline", { points: kept.map((p) => x(p.step) + "," + y(p[key])).join(" "), fill: "none",
        stroke: colour, "stroke-width": 2, class: key });
      kept.forEach((p) => el("circle", { cx: x(p.step), cy: y(p[key]), r: 2.5, fill: colour, class: key + "-point" }));
    }
    el("text", { x: W - R, y: T + 10, "text-anchor": "end", "font-size": 11, fill: "#2b6cb0" }, "train loss");
    el("text", { x: W - R, y: T + 24, "text-anchor": "end", "font-size": 11, fill: "#dd6b20" }, "validation loss");
  }

  const source = new EventSource(svg.dataset.events);
  source.onmessage = (event) => {
    points.push(JSON.parse(event.data));
    const last = points[points.length - 1];
    svg.dataset.points = String(points.length);
    status.textContent = points.length + " points · step " + last.step +
      (last.val_loss !== null && last.val_loss !== undefined ? " · val loss " + last.val_loss.toFixed(4) : "");
    draw();
  };
  source.addEventListener("done", () => { source.close(); status.textContent += " · training finished"; });
})();
