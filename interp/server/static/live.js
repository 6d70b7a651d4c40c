"use strict";
// The live page of `interp serve`: read a typed prompt's features from /api/activations, colour
// its tokens, list features per token, and stream default vs steered text from /api/steer.
// Every string from the model, the tokenizer or the user goes in through textContent (D.el).
(function () {
  const $ = function (id) { return document.getElementById(id); };
  const state = { info: null, data: null, feature: null, token: null };

  function show(el, msg, isError) {
    el.textContent = msg;
    el.classList.toggle("error", !!isError);
  }

  async function api(method, path, body) {
    const opts = { method: method, headers: {} };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    if (!r.ok) {
      let msg = "HTTP " + r.status;
      try {
        const j = await r.json();
        msg += ": " + (typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail));
      } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return r;
  }

  function pageOf(fid) {
    return state.info && state.info.dashboard.indexOf(fid) >= 0 ? "/dashboard/features/" + fid + ".html" : null;
  }

  // a feature's name: a link to its dashboard page when there is one
  function featureLink(fid) {
    const page = pageOf(fid);
    return page ? D.el("a", { href: page, class: "flink" }, "feature " + fid) : D.el("span", { class: "flink" }, "feature " + fid);
  }

  function featureItem(fid, text) {
    const li = D.el("li", fid === state.feature ? { class: "active" } : {});
    li.dataset.feature = String(fid);
    li.appendChild(featureLink(fid));
    li.appendChild(D.el("span", { class: "fval" }, "  " + text));
    const add = D.el("button", { class: "add", title: "add to the steered features" }, "steer");
    add.addEventListener("click", function (e) { e.stopPropagation(); addSteer(fid); });
    li.appendChild(add);
    li.addEventListener("click", function (e) {
      if (e.target.tagName === "A") return;
      colourBy(fid);
    });
    return li;
  }

  function addSteer(fid) {
    const input = $("steer-features");
    const have = input.value.split(/[\s,]+/).filter(Boolean);
    if (have.indexOf(String(fid)) < 0) have.push(String(fid));
    input.value = have.join(", ");
  }

  function tokenSpan(text, act, max, label) {
    const span = D.el("span", { class: "tok" }, D.visible(text));
    const bg = D.colour(act, max);
    if (bg) span.style.backgroundColor = bg;
    span.dataset.act = String(act);
    span.dataset.tok = JSON.stringify(text);
    span.title = JSON.stringify(text) + "  " + label;
    return span;
  }

  function valueAt(t) {  // [value, feature id] the colour shows at token t
    const d = state.data;
    if (state.feature !== null && d.feature && d.feature.id === state.feature) return [d.feature.values[t], state.feature];
    const top = d.top[t];
    return top.length ? [top[0][1], top[0][0]] : [0, null];
  }

  function renderTokens() {
    const d = state.data, box = $("tokens");
    box.replaceChildren();
    if (!d) return;
    let max = 0;
    d.tokens.forEach(function (_, t) { max = Math.max(max, valueAt(t)[0]); });
    if (state.feature !== null && d.feature && d.feature.max_in_dashboard) max = Math.max(max, d.feature.max_in_dashboard);
    d.tokens.forEach(function (tok, t) {
      const [v, f] = valueAt(t);
      const label = f === null ? "no feature fires" : "feature " + f + " " + D.fmt(v);
      const span = tokenSpan(tok.text, v, max, label);
      if (t === state.token) span.classList.add("sel");
      span.addEventListener("click", function () { state.token = t; renderTokens(); renderToken(); });
      box.appendChild(span);
    });
  }

  function renderFeatures() {
    const ul = $("prompt-features");
    ul.replaceChildren();
    if (!state.data) return;
    state.data.prompt_features.forEach(function ([f, v, where]) {
      ul.appendChild(featureItem(f, "max " + D.fmt(v) + " at token " + where));
    });
    if (!state.data.prompt_features.length) ul.appendChild(D.el("li", { class: "muted" }, "no feature fires on this prompt"));
  }

  function renderToken() {
    const info = $("token-info"), d = state.data, t = state.token;
    info.replaceChildren();
    if (!d || t === null || t >= d.tokens.length) { info.appendChild(D.el("p", { class: "muted" }, "Click a token.")); return; }
    info.appendChild(D.el("div", { class: "band-head" }, "token " + t + ": " + JSON.stringify(d.tokens[t].text) + " (id " + d.tokens[t].id + ")"));
    const ul = D.el("ul", { class: "flist", id: "token-features" });
    d.top[t].forEach(function ([f, v]) { ul.appendChild(featureItem(f, D.fmt(v))); });
    if (!d.top[t].length) ul.appendChild(D.el("li", { class: "muted" }, "no feature fires here"));
    info.appendChild(ul);
  }

  async function renderFeatureInfo(fid) {
    const box = $("feature-info");
    box.replaceChildren(D.el("p", { class: "muted" }, "loading feature " + fid + "..."));
    try {
      const f = await (await api("GET", "/api/features/" + fid)).json();
      box.replaceChildren();
      const head = D.el("div", { class: "band-head" });
      head.appendChild(featureLink(fid));
      if (f.stats) head.appendChild(document.createTextNode("  density " + D.pct(f.stats.density) + ", max " + D.fmt(f.stats.max)));
      else head.appendChild(document.createTextNode("  (not in the dashboard)"));
      box.appendChild(head);
      for (const [key, label] of [["logits_promoted", "promotes"], ["logits_suppressed", "suppresses"]]) {
        if (!f[key]) continue;
        const p = D.el("div", { class: "sub" }, label + ": ");
        f[key].slice(0, 8).forEach(function (t) { p.appendChild(D.el("span", { class: "tokname" }, D.visible(t.text))); p.appendChild(document.createTextNode(" ")); });
        box.appendChild(p);
      }
    } catch (e) {
      box.replaceChildren(D.el("p", { class: "error" }, String(e.message)));
    }
  }

  function colourBy(fid) {
    state.feature = fid;
    $("feature").value = String(fid);
    $("colour-by").value = "feature";
    renderFeatureInfo(fid);
    read();
  }

  async function read() {
    const prompt = $("prompt").value;
    const mode = $("colour-by").value;
    const fv = parseInt($("feature").value, 10);
    state.feature = mode === "feature" && Number.isFinite(fv) ? fv : null;
    const body = { prompt: prompt, top_k: 8 };
    if (state.feature !== null) body.feature = state.feature;
    show($("status"), "reading...");
    try {
      const t0 = performance.now();
      state.data = await (await api("POST", "/api/activations", body)).json();
      if (state.token !== null && state.token >= state.data.tokens.length) state.token = null;
      show($("status"), state.data.n_tokens + " tokens in " + Math.round(performance.now() - t0) + " ms");
    } catch (e) {
      state.data = null;
      show($("status"), e.message, true);
    }
    renderTokens();
    renderFeatures();
    renderToken();
  }

  // -- steering -----------------------------------------------------------------------------------
  function changeRow(ev, label) {
    const tr = D.el("tr");
    tr.appendChild(D.el("td", {}, label));
    const td = D.el("td");
    ev.changes.slice(0, 5).forEach(function (c) {
      td.appendChild(D.el("span", { class: "chg" }, JSON.stringify(c.text) + " " + D.fmt(c.default) + "\u2192" + D.fmt(c.steered)));
    });
    tr.appendChild(td);
    return tr;
  }

  async function steer() {
    const features = $("steer-features").value.split(/[\s,]+/).filter(Boolean).map(Number);
    const body = {
      prompt: $("prompt").value, features: features, mode: $("mode").value,
      strength: Number($("strength").value), max_new_tokens: parseInt($("max-new").value, 10),
      seed: parseInt($("seed").value, 10), temperature: Number($("temperature").value),
    };
    const status = $("steer-status"), panes = { default: $("default-text"), steered: $("steered-text") };
    const rows = document.querySelector("#changes tbody");
    for (const k in panes) panes[k].replaceChildren();
    rows.replaceChildren();
    $("kl").textContent = "";
    show(status, "steering...");
    $("steer").disabled = true;
    try {
      const r = await api("POST", "/api/steer", body);
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buf = "", n = 0;
      const handle = function (ev) {
        if (ev.type === "start") {
          for (const k in panes) panes[k].appendChild(D.el("span", { class: "promptpart" }, body.prompt));
        } else if (ev.type === "step") {
          for (const k in panes) {
            const s = tokenSpan(ev[k].text, 0, 0, "log p " + D.fmt(ev[k].logprob));
            s.classList.add("gen");
            panes[k].appendChild(s);
          }
          rows.appendChild(changeRow(ev, ev.index === 0 ? "after the prompt" : String(ev.index)));
          if (ev.index === 0) $("kl").textContent = "(KL after the prompt " + D.fmt(ev.kl) + " nats)";
          n += 1;
          show(status, n + " tokens");
        } else if (ev.type === "error") {
          show(status, ev.detail, true);
        } else if (ev.type === "done") {
          show(status, "done: " + n + " tokens each");
        }
      };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim()) handle(JSON.parse(line));
        }
      }
    } catch (e) {
      show(status, e.message, true);
    } finally {
      $("steer").disabled = false;
    }
  }

  async function start() {
    try {
      state.info = await (await api("GET", "/api/info")).json();
      const i = state.info;
      $("about").textContent = i.model + " \u00b7 " + i.hook + " \u00b7 " + i.architecture + " SAE, " + i.d_sae +
        " features \u00b7 prompts up to " + i.limits.max_prompt_tokens + " tokens";
    } catch (e) {
      show($("status"), e.message, true);
    }
  }

  $("read").addEventListener("click", read);
  $("steer").addEventListener("click", steer);
  $("prompt").addEventListener("keydown", function (e) { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) read(); });
  $("colour-by").addEventListener("change", function () { if (state.data) read(); });
  $("feature").addEventListener("change", function () { $("colour-by").value = "feature"; if (state.data) read(); });
  D.installTooltip();
  start();
})();
