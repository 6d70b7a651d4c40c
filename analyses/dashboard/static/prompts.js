"use strict";
// The prompt view: which features fire on each token of a set of precomputed prompts.
// Choose a feature to colour the prompt by it; click a token to list its features.
(function () {
  const P = D.data("prompt-data");
  const pages = new Set(P.pages);
  const select = document.getElementById("prompt");
  const text = document.getElementById("prompt-text");
  const flist = document.getElementById("prompt-features");
  const info = document.getElementById("token-info");
  const input = document.getElementById("feature");
  const state = { prompt: 0, feature: null, token: null };

  P.prompts.forEach(function (p, i) {
    const s = p.text.length > 80 ? p.text.slice(0, 77) + "..." : p.text;
    select.appendChild(D.el("option", { value: String(i) }, D.visible(s)));
  });

  function featureLink(fid) {
    const label = P.kind === "neurons" ? "neuron " + fid : "feature " + fid;
    return pages.has(fid) ? D.el("a", { href: "features/" + fid + ".html" }, label) : D.el("span", {}, label);
  }

  function actOf(p, t, fid) {
    for (const [f, v] of p.acts[t]) if (f === fid) return v;
    return 0;
  }

  function promptFeatures(p) {  // [fid, max over the prompt], largest first
    const best = new Map();
    p.acts.forEach(function (list) { list.forEach(function ([f, v]) { if (!(best.get(f) >= v)) best.set(f, v); }); });
    return Array.from(best.entries()).sort(function (a, b) { return b[1] - a[1]; });
  }

  function render() {
    const p = P.prompts[state.prompt];
    const fid = state.feature;
    const scale = fid === null ? 0 : (P.maxes[fid] || Math.max.apply(null, p.acts.map(function (_, t) { return actOf(p, t, fid); })));
    text.replaceChildren();
    p.tokens.forEach(function (id, t) {
      const a = fid === null ? 0 : actOf(p, t, fid);
      const span = D.tokenSpan(id, a, scale);
      if (t === state.token) span.classList.add("sel");
      span.addEventListener("click", function () { state.token = t; render(); });
      text.appendChild(span);
    });
    flist.replaceChildren();
    promptFeatures(p).slice(0, 200).forEach(function ([f, v]) {
      const li = D.el("li", f === fid ? { class: "active" } : {});
      li.appendChild(featureLink(f));
      li.appendChild(document.createTextNode("  max " + D.fmt(v)));
      li.addEventListener("click", function (e) { if (e.target.tagName !== "A") { state.feature = f; render(); } });
      flist.appendChild(li);
    });
    info.replaceChildren();
    if (state.token !== null && state.token < p.tokens.length) {
      const t = state.token;
      info.appendChild(D.el("div", { class: "band-head" }, "token " + t + ": " + JSON.stringify(D.tok(p.tokens[t]))));
      const ul = D.el("ul", { class: "flist" });
      p.acts[t].forEach(function ([f, v]) {
        const li = D.el("li", f === fid ? { class: "active" } : {});
        li.appendChild(featureLink(f));
        li.appendChild(document.createTextNode("  " + D.fmt(v)));
        li.addEventListener("click", function (e) { if (e.target.tagName !== "A") { state.feature = f; render(); } });
        ul.appendChild(li);
      });
      if (p.acts[t].length === 0) ul.appendChild(D.el("li", { class: "muted" }, "no feature fires here"));
      info.appendChild(ul);
    }
  }

  select.addEventListener("change", function () { state.prompt = Number(select.value); state.token = null; render(); });
  input.addEventListener("change", function () {
    const v = parseInt(input.value, 10);
    state.feature = Number.isFinite(v) ? v : null;
    render();
  });
  const first = P.prompts.length ? promptFeatures(P.prompts[0]) : [];
  state.feature = first.length ? first[0][0] : null;
  if (P.prompts.length) render();
  D.installTooltip();
})();
