"use strict";
// Shared by every page. Token text reaches the page only through textContent and
// setAttribute, never innerHTML, so a token like "<script>" is shown, not run.
const D = {};

D.data = function (id) {
  return JSON.parse(document.getElementById(id).textContent);
};

D.tok = function (id) {
  const v = window.VOCAB || {};
  const s = v[id];
  return s === undefined ? "\u27e8" + id + "\u27e9" : s;
};

// whitespace made visible; spaces stay (the spans keep white-space: pre)
D.visible = function (s) {
  return s.replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5").replace(/\r/g, "\u240d");
};

D.fmt = function (v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e4 || a < 1e-3)) return v.toExponential(2);
  return String(Number(v.toPrecision(3)));
};

D.pct = function (v) {
  if (v === 0) return "0%";
  if (v < 1e-4) return (100 * v).toExponential(1) + "%";
  return String(Number((100 * v).toPrecision(3))) + "%";
};

D.colour = function (a, max) {
  const x = max > 0 ? Math.max(0, Math.min(1, a / max)) : 0;
  return x > 0 ? "rgba(255, 110, 0, " + (0.12 + 0.88 * x).toFixed(3) + ")" : "";
};

D.el = function (tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
};

// One span per token, coloured by activation, value in the tooltip and the title.
D.tokenSpan = function (id, act, max) {
  const s = D.tok(id);
  const span = D.el("span", { class: "tok" }, D.visible(s));
  const bg = D.colour(act, max);
  if (bg) span.style.backgroundColor = bg;
  span.dataset.act = String(act);
  span.dataset.tok = JSON.stringify(s);
  span.title = JSON.stringify(s) + "  " + D.fmt(act);
  return span;
};

// An example: [value, peak offset, token ids, activations]
D.example = function (ex, max) {
  const [value, peak, ids, acts] = ex;
  const row = D.el("div", { class: "example" });
  row.appendChild(D.el("span", { class: "val" }, D.fmt(value)));
  const text = D.el("span", { class: "text" });
  ids.forEach(function (id, i) {
    if (id < 0) return;
    const span = D.tokenSpan(id, acts[i], max);
    if (i === peak) span.classList.add("peak");
    text.appendChild(span);
  });
  row.appendChild(text);
  return row;
};

// A floating tooltip for every .tok on the page: token text (as a JSON string, so spaces
// and control characters show) and its activation.
D.installTooltip = function () {
  const tip = D.el("div", { class: "tip", id: "tip" });
  tip.hidden = true;
  document.body.appendChild(tip);
  document.addEventListener("mouseover", function (e) {
    const t = e.target.closest ? e.target.closest(".tok") : null;
    if (!t) { tip.hidden = true; return; }
    tip.textContent = "token " + t.dataset.tok + "\nactivation " + D.fmt(Number(t.dataset.act));
    tip.hidden = false;
  });
  document.addEventListener("mousemove", function (e) {
    tip.style.left = (e.clientX + 14) + "px";
    tip.style.top = (e.clientY + 14) + "px";
  });
};

D.plot = function (div, traces, layout) {
  if (!window.Plotly) { div.textContent = "(plotly.min.js did not load)"; return; }
  const base = { margin: { l: 48, r: 8, t: 8, b: 38 }, bargap: 0, showlegend: false, font: { size: 11 } };
  window.Plotly.newPlot(div, traces, Object.assign(base, layout || {}), { displayModeBar: false, responsive: true });
};
