"""Safe text for HTML: every string that came from a corpus, a tokenizer or a user goes through
`esc` (element text and attribute values) or `script_json` (data inside a <script> element).

Pages build token spans in the browser with `textContent`, which never parses HTML; the data they
read is JSON inside <script type="application/json">, where the only danger is text that closes
the element early or opens an HTML comment. `script_json` escapes `<`, `>` and `&` as \\u escapes
(JSON.parse restores them), which covers `</script>`, `<!--` and `-->`, and the two line
separators that old JavaScript parsers reject."""

from __future__ import annotations

import html
import json

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_TABLE = str.maketrans(_JSON_ESCAPES)


def esc(text) -> str:
    """Text for an element's content or a quoted attribute value."""
    return html.escape(str(text), quote=True)


def script_json(obj) -> str:
    """JSON that is safe inside <script type="application/json">...</script> (parse with JSON.parse)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).translate(_JSON_TABLE)


def data_script(element_id: str, obj) -> str:
    return f'<script type="application/json" id="{esc(element_id)}">{script_json(obj)}</script>'


# no network from a page: connect-src 'none' forbids fetch/XHR/WebSocket even if something tried
CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline' 'unsafe-eval' file:; style-src 'self' 'unsafe-inline' file:; "
       "img-src 'self' data: blob: file:; font-src 'self' data: file:; connect-src 'none'; form-action 'none'; base-uri 'none'")


def page(title: str, body: str, root: str = ".", scripts: tuple[str, ...] = ()) -> str:
    """A whole HTML document; `root` is the relative path to the dashboard's top folder and
    `scripts` the files under root/assets to load, in order."""
    tags = "\n".join(f'<script src="{esc(root)}/assets/{esc(s)}"></script>' for s in scripts)
    return f"""{document_head(title, CSP, (f"{root}/assets/style.css",))}
<body>
{body}
{tags}
</body>
</html>
"""


def document_head(title: str, csp: str, stylesheets: tuple[str, ...]) -> str:
    """The doctype, <html> and the whole <head> of a page: charset, its Content-Security-Policy,
    viewport, title and stylesheet links (shared by the static dashboard and the live page)."""
    links = "\n".join(f'<link rel="stylesheet" href="{esc(href)}">' for href in stylesheets)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
{links}
</head>"""
