"""The live page: a prompt box whose tokens are coloured by SAE features, and a steering panel.

The HTML holds no data: static/live.js asks the JSON API and builds every token and feature
element with textContent (the dashboard's common.js helpers), so typed text such as
<script>alert(1)</script> is shown, never run. Unlike the static dashboard, whose pages forbid any
connection, this page may connect to its own server ('self') and to nothing else."""

from __future__ import annotations

from analyses.dashboard.html import document_head, esc

LIVE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "form-action 'none'; base-uri 'none'")
# frame-ancestors works only in the header (a <meta> CSP ignores it, with a console error)
LIVE_CSP_HEADER = LIVE_CSP + "; frame-ancestors 'none'"


def live_page(title: str, has_dashboard: bool) -> str:
    nav = '<a href="/dashboard/index.html">all features (dashboard)</a>' if has_dashboard else ""
    return f"""{document_head(title, LIVE_CSP, ("/static/style.css", "/static/live.css"))}
<body>
<header><nav>{nav}<a href="/openapi.json">API schema</a></nav>
<h1>{esc(title)}</h1>
<div class="sub" id="about"></div>
</header>
<h2>Prompt</h2>
<textarea id="prompt" rows="4" spellcheck="false" placeholder="type any text, then Read (ctrl+enter)"></textarea>
<div class="controls">
<button id="read">Read features</button>
<label>colour by <select id="colour-by"><option value="strongest">each token's strongest feature</option>
<option value="feature">one feature</option></select></label>
<label>feature <input id="feature" class="num" placeholder="id"></label>
<span id="status" class="sub" role="status"></span>
</div>
<div id="tokens" class="prompt-text"></div>
<div class="cols">
<section><h2>Features on this prompt (click to colour by one)</h2><ul id="prompt-features" class="flist"></ul></section>
<section><h2>Selected token</h2><div id="token-info"><p class="muted">Click a token.</p></div>
<h2>Feature</h2><div id="feature-info"><p class="muted">Click a feature.</p></div></section>
</div>
<h2>Steering</h2>
<div class="controls">
<label>features <input id="steer-features" placeholder="e.g. 12, 40"></label>
<label>mode <select id="mode"><option value="add">add</option><option value="clamp">clamp</option>
<option value="ablate">ablate</option></select></label>
<label>strength <input id="strength" class="num" value="8"></label>
<label>new tokens <input id="max-new" class="num" value="20"></label>
<label>seed <input id="seed" class="num" value="0"></label>
<label>temperature <input id="temperature" class="num" value="1"></label>
<button id="steer">Steer</button>
<span id="steer-status" class="sub" role="status"></span>
</div>
<div class="runs">
<section><h3>default</h3><div id="default-text" class="prompt-text run"></div></section>
<section><h3>steered</h3><div id="steered-text" class="prompt-text run"></div></section>
</div>
<h3>Next-token probability, steered against default <span id="kl" class="sub"></span></h3>
<div class="sub">The first row is the edit's effect after the prompt alone; later rows compare the two runs'
distributions at each step (they differ in context once the texts part).</div>
<table id="changes" class="logits"><thead><tr><th>step</th><th>largest changes (default &rarr; steered)</th></tr></thead>
<tbody></tbody></table>
<script src="/static/common.js"></script>
<script src="/static/live.js"></script>
</body>
</html>
"""
