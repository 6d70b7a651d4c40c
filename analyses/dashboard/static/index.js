"use strict";
// The index: every feature in one table, with search, sort and filters.
(function () {
  const I = D.data("index-data");
  const COLS = I.columns;  // [key, label, kind]
  const rows = I.rows.map(function (r) {
    const o = {};
    COLS.forEach(function (c, i) { o[c[0]] = r[i]; });
    o.search = [String(o.id), (o.top || []).join(" "), (o.logits || []).join(" "), o.explanation || ""].join("\n").toLowerCase();
    return o;
  });
  const state = { key: I.default_sort || "id", desc: false, limit: 500 };
  const tbody = document.querySelector("#features tbody");
  const search = document.getElementById("search");
  const dmin = document.getElementById("dmin");
  const dmax = document.getElementById("dmax");
  const hideDead = document.getElementById("hide-dead");
  const count = document.getElementById("count");
  const more = document.getElementById("more");

  function num(input) {
    const v = parseFloat(input.value);
    return Number.isFinite(v) ? v : null;
  }

  function cell(row, c) {
    const [key, , kind] = c;
    const td = D.el("td");
    const v = row[key];
    if (key === "id") {
      td.appendChild(D.el("a", { href: "features/" + row.id + ".html" }, String(row.id)));
    } else if (kind === "tokens") {
      (v || []).forEach(function (s) { td.appendChild(D.el("span", { class: "tokname" }, D.visible(s))); td.appendChild(document.createTextNode(" ")); });
    } else if (kind === "pct") {
      td.className = "num"; td.textContent = D.pct(v);
    } else if (kind === "num") {
      td.className = "num"; td.textContent = v === null || v === undefined ? "" : D.fmt(v);
    } else {
      td.textContent = v === null || v === undefined ? "" : String(v);
      if (!v) td.className = "muted";
    }
    return td;
  }

  function render() {
    const q = search.value.trim().toLowerCase();
    const lo = num(dmin), hi = num(dmax);
    let list = rows.filter(function (r) {
      if (hideDead.checked && r.density === 0) return false;
      if (lo !== null && r.density < lo) return false;
      if (hi !== null && r.density > hi) return false;
      if (q && !(r.search.includes(q) || String(r.id) === q)) return false;
      return true;
    });
    const k = state.key, sign = state.desc ? -1 : 1;
    list.sort(function (a, b) {
      const x = a[k], y = b[k];
      const xa = Array.isArray(x) ? x.join(" ") : x, ya = Array.isArray(y) ? y.join(" ") : y;
      if (xa === ya) return a.id - b.id;
      if (xa === null || xa === undefined) return 1;
      if (ya === null || ya === undefined) return -1;
      return (xa < ya ? -1 : 1) * sign;
    });
    tbody.replaceChildren();
    list.slice(0, state.limit).forEach(function (r) {
      const tr = D.el("tr");
      COLS.forEach(function (c) { tr.appendChild(cell(r, c)); });
      tbody.appendChild(tr);
    });
    count.textContent = list.length.toLocaleString() + " of " + rows.length.toLocaleString() + " features" +
      (list.length > state.limit ? " (showing " + state.limit + ")" : "");
    more.hidden = list.length <= state.limit;
    document.querySelectorAll("#features th").forEach(function (th) {
      th.classList.toggle("sorted-asc", th.dataset.key === k && !state.desc);
      th.classList.toggle("sorted-desc", th.dataset.key === k && state.desc);
    });
  }

  const head = document.querySelector("#features thead tr");
  COLS.forEach(function (c) {
    const th = D.el("th", { "data-key": c[0] }, c[1]);
    th.addEventListener("click", function () {
      if (state.key === c[0]) state.desc = !state.desc;
      else { state.key = c[0]; state.desc = c[2] === "num" || c[2] === "pct"; }
      render();
    });
    head.appendChild(th);
  });
  [search, dmin, dmax].forEach(function (e) { e.addEventListener("input", function () { state.limit = 500; render(); }); });
  hideDead.addEventListener("change", render);
  more.addEventListener("click", function () { state.limit += 500; render(); });
  render();

  // feature density across the dictionary, on a log scale (dead features are counted apart)
  const live = rows.filter(function (r) { return r.density > 0; }).map(function (r) { return Math.log10(r.density); });
  const dead = rows.length - live.length;
  D.plot(document.getElementById("density-plot"), [{ type: "histogram", x: live, nbinsx: 40, marker: { color: "#ff8c2a" },
    hovertemplate: "log10 density %{x}<br>%{y} features<extra></extra>" }],
    { xaxis: { title: { text: "log10 feature density" + (dead ? " (" + dead + " dead not shown)" : "") } }, yaxis: { title: { text: "features" } } });
})();
