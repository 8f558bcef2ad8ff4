// Bar charts for the console's dashboard: SVG built with DOM calls (no library, no inline style,
// so the page policy without 'unsafe-inline' holds). Each chart is drawn at the width of its box
// (text stays readable on a phone) and redrawn when that width changes; its figures are also in
// a table beside it (for screen readers, and to read exact numbers).

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

const ROW = 26;
const FONT = 13;

// A rough width of `text` at FONT px (CJK glyphs are about one em, Latin about half).
const textWidth = (text) => [...String(text)].reduce((w, ch) => w + (ch.charCodeAt(0) > 0x2e80 ? FONT : FONT * 0.58), 0);

function fit(text, width) {
  let out = String(text);
  if (textWidth(out) <= width) return out;
  while (out.length > 1 && textWidth(out + "…") > width) out = out.slice(0, -1);
  return out + "…";
}

// A box whose chart is redrawn at its own width: draw(width) returns an <svg>.
function responsive(label, draw) {
  const box = document.createElement("div");
  box.className = "chart";
  let last = 0;
  const paint = () => {
    const width = Math.max(240, Math.floor(box.clientWidth || box.parentElement?.clientWidth || 600));
    if (width === last) return;
    last = width;
    const svg = draw(width);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    box.replaceChildren(svg);
  };
  // Drawn once attached (its width is known then), again on resize.
  new ResizeObserver(paint).observe(box);
  queueMicrotask(paint);
  return box;
}

/**
 * Horizontal bars, one row per item: label, bar(s), value text.
 * rows: [{ label, value, parts?: [{ value, cls }], text? }] — `parts` stack inside the row's bar
 * (drawn over a light bar of `value`, or one of class `base`), `text` replaces the value shown at the end.
 */
export function hbars(label, rows, { max } = {}) {
  const top = Math.max(1, max ?? Math.max(0, ...rows.map((r) => r.value)));
  return responsive(label, (width) => {
    const longest = Math.max(...rows.map((r) => textWidth(r.text ?? r.value)));
    const valueWidth = Math.min(Math.round(width * 0.4), Math.ceil(longest) + 10);
    const labelWidth = Math.min(Math.round((width - valueWidth) * 0.5), 200);
    const barWidth = width - labelWidth - valueWidth - 12;
    const svg = s("svg", { width, height: rows.length * ROW + 4, viewBox: `0 0 ${width} ${rows.length * ROW + 4}`, class: "bars-svg" });
    rows.forEach((row, i) => {
      const y = i * ROW + 4;
      const g = s("g", { class: "row", "data-label": row.label, "data-value": row.value });
      g.append(s("title", {}, `${row.label}: ${row.text ?? row.value}`));
      g.append(s("text", { x: labelWidth - 6, y: y + FONT, "text-anchor": "end", class: "label" }, fit(row.label, labelWidth - 8)));
      const w = (v) => Math.max(v > 0 ? 2 : 0, Math.round((v / top) * barWidth));
      g.append(s("rect", { x: labelWidth, y: y + 2, width: w(row.value), height: ROW - 10, rx: 2, class: row.base || (row.parts ? "under" : "bar") }));
      let x = labelWidth;
      for (const part of row.parts || []) {
        const pw = w(part.value);
        g.append(s("rect", { x, y: y + 2, width: pw, height: ROW - 10, rx: 2, class: `bar ${part.cls || ""}` }));
        x += pw;
      }
      g.append(s("text", { x: labelWidth + Math.max(w(row.value), x - labelWidth) + 6, y: y + FONT, class: "value" }, row.text ?? row.value));
      svg.append(g);
    });
    return svg;
  });
}

/**
 * Columns over days: [{ day: "2026-11-30", value, under? }] — `under` (reversals) is drawn
 * beneath each column in the second colour. Axis: the largest value, and every few days' date.
 */
export function columns(label, days) {
  const top = Math.max(1, ...days.map((d) => d.value + (d.under || 0)));
  return responsive(label, (width) => {
    const left = 34;
    const height = 180;
    const base = height - 24;
    const step = (width - left - 4) / Math.max(1, days.length);
    const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "cols-svg" });
    svg.append(s("line", { x1: left, y1: base, x2: width - 2, y2: base, class: "axis" }));
    svg.append(s("line", { x1: left, y1: 8, x2: left, y2: base, class: "axis" }));
    svg.append(s("text", { x: left - 4, y: 8 + FONT * 0.4, "text-anchor": "end", class: "tick" }, top));
    svg.append(s("text", { x: left - 4, y: base, "text-anchor": "end", class: "tick" }, 0));
    const every = Math.max(1, Math.ceil((FONT * 3.2) / step));
    days.forEach((d, i) => {
      const x = left + i * step + Math.max(1, step * 0.15);
      const w = Math.max(1, step * 0.7);
      const h = ((d.value) / top) * (base - 8);
      const hu = ((d.under || 0) / top) * (base - 8);
      const g = s("g", { class: "col", "data-day": d.day, "data-value": d.value });
      g.append(s("title", {}, `${d.day}: ${d.value}${d.under ? ` (−${d.under})` : ""}`));
      if (hu) g.append(s("rect", { x, y: base - h - hu, width: w, height: hu, class: "bar under2" }));
      g.append(s("rect", { x, y: base - h, width: w, height: h, class: "bar" }));
      svg.append(g);
      if (i % every === 0) svg.append(s("text", { x: x + w / 2, y: base + FONT + 4, "text-anchor": "middle", class: "tick" }, d.day.slice(5)));
    });
    return svg;
  });
}
