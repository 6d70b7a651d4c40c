"use strict";
// A feature page: highlighted examples (top activations and band samples) and two plots.
(function () {
  const F = D.data("feature-data");

  const top = document.getElementById("top");
  if (F.top.length === 0) top.appendChild(D.el("p", { class: "muted" }, "This feature never fired on the corpus."));
  F.top.forEach(function (ex) { top.appendChild(D.example(ex, F.max)); });

  const bands = document.getElementById("bands");
  F.bands.slice().reverse().forEach(function (b) {
    if (b.count === 0) return;
    const share = F.count > 0 ? b.count / F.count : 0;
    bands.appendChild(D.el("div", { class: "band-head" },
      "activation " + D.fmt(b.lo) + " to " + D.fmt(b.hi) + " \u00b7 " + b.count.toLocaleString() +
      " tokens (" + D.pct(share) + " of firing) \u00b7 " + b.ex.length + " sampled"));
    b.ex.forEach(function (ex) { bands.appendChild(D.example(ex, F.max)); });
  });

  // activation histogram: bins of equal width, coloured by band
  const h = F.hist;
  if (h.counts.length > 0) {
    const x = [], y = [], colour = [];
    h.counts.forEach(function (c, i) {
      const mid = (i + 0.5) * h.width;
      let band = 0;
      while (band < F.band_edges.length - 2 && mid >= F.band_edges[band + 1]) band++;
      x.push(mid); y.push(c);
      colour.push(band % 2 ? "#ff8c2a" : "#ffb36b");
    });
    D.plot(document.getElementById("hist"), [{ type: "bar", x: x, y: y, width: h.width, marker: { color: colour },
      hovertemplate: "activation %{x:.3g}<br>%{y} tokens<extra></extra>" }],
      { xaxis: { title: { text: "activation (bands alternate in colour)" } }, yaxis: { title: { text: "tokens" } } });
  } else {
    document.getElementById("hist").textContent = "no activations";
  }

  const lh = F.logit_hist;
  if (lh) {
    const w = (lh.hi - lh.lo) / lh.counts.length;
    const x = lh.counts.map(function (_, i) { return lh.lo + (i + 0.5) * w; });
    D.plot(document.getElementById("logit-hist"), [{ type: "bar", x: x, y: lh.counts, width: w,
      marker: { color: x.map(function (v) { return v >= 0 ? "#4c9f70" : "#d9534f"; }) },
      hovertemplate: "logit effect %{x:.3g}<br>%{y} tokens<extra></extra>" }],
      { xaxis: { title: { text: "logit effect over the vocabulary" } }, yaxis: { title: { text: "tokens" }, type: "log" } });
  }

  D.installTooltip();
})();
