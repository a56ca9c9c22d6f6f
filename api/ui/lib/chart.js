// Small SVG charts drawn by hand: lines, steps and points with axes, labels and a
// tooltip (<title>) on every point. No library.

import { svg } from "./dom.js";

function niceStep(range, ticks) {
  const raw = range / Math.max(ticks, 1);
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

function ticksFor(min, max, count) {
  if (max <= min) return [min];
  const step = niceStep(max - min, count);
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * chart({series, xLabel, yLabel, xMin, xMax, yMin, yMax, xFormat, yFormat, width, height, title, testid, legend})
 * series: [{name, points: [{x, y, label}], kind: "line" | "step" | "points", cls}]
 * `cls` picks the series' colour from app.css (series-0 .. series-5 or any class).
 * `legend: false` leaves out the legend drawn over the plot (for a key drawn outside it).
 * Returns an <svg> that scales to its container's width.
 */
export function chart({
  series,
  xLabel = "",
  yLabel = "",
  xMin,
  xMax,
  yMin,
  yMax,
  xFormat = (v) => String(v),
  yFormat = (v) => String(v),
  width = 640,
  height = 260,
  title = "",
  testid,
  legend = true,
}) {
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  const x0 = xMin ?? Math.min(0, ...xs);
  let x1 = xMax ?? Math.max(...xs, x0 + 1);
  if (x1 <= x0) x1 = x0 + 1;
  const y0 = yMin ?? Math.min(0, ...ys);
  let y1 = yMax ?? Math.max(...ys, y0 + 1);
  if (y1 <= y0) y1 = y0 + 1;
  const m = { left: 56, right: 16, top: 14, bottom: 42 };
  const w = width - m.left - m.right;
  const hgt = height - m.top - m.bottom;
  const X = (v) => m.left + ((v - x0) / (x1 - x0)) * w;
  const Y = (v) => m.top + hgt - ((v - y0) / (y1 - y0)) * hgt;

  const root = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": title || `${yLabel} against ${xLabel}`,
    "data-testid": testid,
    preserveAspectRatio: "xMidYMid meet",
  });
  if (title) root.appendChild(svg("title", {}, title));

  const axes = svg("g", { class: "axes" });
  for (const t of ticksFor(y0, y1, 4)) {
    axes.appendChild(svg("line", { class: "grid", x1: m.left, x2: m.left + w, y1: Y(t), y2: Y(t) }));
    axes.appendChild(svg("text", { class: "tick", x: m.left - 6, y: Y(t) + 4, "text-anchor": "end" }, yFormat(t)));
  }
  for (const t of ticksFor(x0, x1, Math.max(2, Math.floor(w / 90)))) {
    axes.appendChild(svg("line", { class: "tickmark", x1: X(t), x2: X(t), y1: m.top + hgt, y2: m.top + hgt + 4 }));
    axes.appendChild(svg("text", { class: "tick", x: X(t), y: m.top + hgt + 16, "text-anchor": "middle" }, xFormat(t)));
  }
  axes.appendChild(svg("line", { class: "axis", x1: m.left, x2: m.left + w, y1: m.top + hgt, y2: m.top + hgt }));
  axes.appendChild(svg("line", { class: "axis", x1: m.left, x2: m.left, y1: m.top, y2: m.top + hgt }));
  if (xLabel) axes.appendChild(svg("text", { class: "label", x: m.left + w / 2, y: height - 6, "text-anchor": "middle" }, xLabel));
  if (yLabel) {
    axes.appendChild(svg("text", { class: "label", transform: `translate(14 ${m.top + hgt / 2}) rotate(-90)`, "text-anchor": "middle" }, yLabel));
  }
  root.appendChild(axes);

  series.forEach((s, i) => {
    const cls = s.cls || `series-${i % 6}`;
    const g = svg("g", { class: `series ${cls}`, "data-series": s.name });
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    if (pts.length && s.kind !== "points") {
      let d = "";
      pts.forEach((p, j) => {
        if (j === 0) d += `M${X(p.x)},${Y(p.y)}`;
        else if (s.kind === "step") d += `H${X(p.x)}V${Y(p.y)}`;
        else d += `L${X(p.x)},${Y(p.y)}`;
      });
      if (s.kind === "step" && s.extendTo !== undefined) d += `H${X(s.extendTo)}`;
      g.appendChild(svg("path", { class: "line", d }));
    }
    for (const p of pts) {
      g.appendChild(
        svg("circle", { class: "point", cx: X(p.x), cy: Y(p.y), r: 3.5 },
          svg("title", {}, p.label || `${s.name}: ${yFormat(p.y)} at ${xFormat(p.x)}`)),
      );
    }
    root.appendChild(g);
  });
  if (legend && series.length > 1) {
    const key = svg("g", { class: "legend" });
    let x = m.left + 8;
    series.forEach((s, i) => {
      const cls = s.cls || `series-${i % 6}`;
      key.appendChild(svg("rect", { class: `swatch ${cls}`, x, y: m.top, width: 10, height: 10 }));
      key.appendChild(svg("text", { class: "tick", x: x + 14, y: m.top + 9 }, s.name));
      x += 24 + s.name.length * 7;
    });
    root.appendChild(key);
  }
  return root;
}
