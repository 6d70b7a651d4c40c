"""The FastAPI application: the live pages, the static dashboard's files and the JSON API.

    GET  /                               the prompt page with the steering panel
    GET  /dashboard/index.html           the static dashboard, served as it was built
    GET  /dashboard/features/{id}.html
    POST /api/activations                {prompt, feature?, top_k?} -> tokens and their features
    POST /api/steer                      {prompt, features, mode, strength, ...} -> NDJSON events
    GET  /api/features/{id}              statistics, logit effects and neighbours of one feature
    GET  /api/info                       the model, the SAE, the limits
    GET  /openapi.json                   the schema of all of it

Model work runs on the one worker (interp/server/worker.py); a full queue answers 429. No CORS
headers are sent, and a request that carries another site's Origin is refused, so pages elsewhere
cannot drive the model. Swagger's /docs is off: it loads scripts from a CDN."""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

from analyses.dashboard.build import STATIC as DASHBOARD_STATIC
from analyses.dashboard.html import CSP as DASHBOARD_CSP
from interp.server.engine import Engine
from interp.server.limits import RequestError, invalid, too_large
from interp.server.pages import LIVE_CSP_HEADER, live_page
from interp.server.schemas import ActivationsRequest, SteerRequest
from interp.server.worker import Worker

STATIC = Path(__file__).with_name("static")
END = object()


def create_app(engine: Engine, worker: Worker, dashboard: Path | None = None,
               allowed_hosts: list[str] | None = None, title: str = "interp serve") -> FastAPI:
    app = FastAPI(title="interp serve", version="1", docs_url=None, redoc_url=None,
                  description="A local live dashboard of one SAE: features per token, steered generation.")
    if allowed_hosts:  # a page on another site that rebinds its DNS name to 127.0.0.1 is refused
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    limits = engine.limits
    assets = _listing(dashboard / "assets") if dashboard else {}
    # the dashboard's stylesheet and safe-text helpers, and the live page's own files
    static = {n: DASHBOARD_STATIC / n for n in ("style.css", "common.js")} | _listing(STATIC)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
            return _error(403, "cross-origin requests are refused; use the pages this server serves.")
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > limits.max_body_bytes:
            return _error(413, f"the request body is {int(size):,} bytes; the cap is {limits.max_body_bytes:,}.")
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, e: RequestValidationError):
        # FastAPI's own answer echoes the input, which may hold a NaN that JSON cannot carry
        return JSONResponse({"detail": [{"loc": list(x.get("loc", ())), "msg": x.get("msg", ""), "type": x.get("type", "")}
                                        for x in e.errors()]}, status_code=422)

    @app.exception_handler(RequestError)
    async def refused(request: Request, e: RequestError):
        return _error(e.status, str(e))

    # -- pages -----------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home():
        return HTMLResponse(live_page(title, has_dashboard=dashboard is not None), headers={"Content-Security-Policy": LIVE_CSP_HEADER})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():  # browsers ask for one; an empty answer keeps their consoles free of 404s
        return Response(status_code=204)

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str):
        return _file(static, name, None)

    @app.get("/dashboard", include_in_schema=False)
    @app.get("/dashboard/", include_in_schema=False)
    def dashboard_root():
        return RedirectResponse("/dashboard/index.html")

    @app.get("/dashboard/{name}.html", include_in_schema=False)
    def dashboard_page(name: str):
        if dashboard is None or name not in ("index", "prompts"):
            return _missing("no such dashboard page")
        return _file({f"{name}.html": dashboard / f"{name}.html"}, f"{name}.html", DASHBOARD_CSP)

    @app.get("/dashboard/features/{fid}.html", include_in_schema=False)
    def feature_page(fid: int):
        page = dashboard / "features" / f"{fid}.html" if dashboard else None
        if page is None or not page.is_file():
            return _missing(f"feature {fid} has no page in this dashboard; its JSON is at /api/features/{fid}")
        return FileResponse(page, media_type="text/html", headers={"Content-Security-Policy": DASHBOARD_CSP})

    @app.get("/dashboard/assets/{name}", include_in_schema=False)
    def dashboard_asset(name: str):
        return _file(assets, name, None)

    # -- the API ---------------------------------------------------------------------------------
    @app.get("/api/info")
    def info() -> dict:
        """The model, the SAE, the caps on requests and how many requests wait for the model."""
        return {"model": engine.model.cfg.model_name, "hook": engine.hook, "d_sae": engine.d_sae,
                "architecture": engine.sae.cfg.architecture, "n_ctx": engine.n_ctx,
                "dashboard": sorted(engine.rows), "waiting": worker.waiting(),
                "limits": {"max_prompt_tokens": limits.max_prompt_tokens, "max_new_tokens": limits.max_new_tokens,
                           "max_strength": limits.max_strength, "max_features": limits.max_features,
                           "max_top_k": limits.max_top_k, "queue_size": limits.queue_size}}

    @app.post("/api/activations")
    def activations(req: ActivationsRequest) -> dict:
        """Every token of the prompt with its strongest features ([id, value] pairs), the features
        of the whole prompt ([id, max, position]) and, when `feature` is given, its value per token.
        413 when the prompt is over the cap, 429 when the model is busy."""
        _check_prompt(req.prompt, limits)
        if req.top_k > limits.max_top_k:
            raise invalid(f"top_k {req.top_k} is over the cap of {limits.max_top_k}.")
        if req.feature is not None:
            engine.check_feature(req.feature)
        return worker.submit(engine.activations, req.prompt, req.feature, req.top_k).result()

    @app.post("/api/steer", responses={200: {"content": {"application/x-ndjson": {}},
                                             "description": "one JSON event per line: start, step..., done"}})
    def steer(req: SteerRequest):
        """Default and steered continuations from the same seed, streamed as newline-delimited JSON:
        {"type": "start"}, then per token pair {"type": "step", "default": {id, text, logprob},
        "steered": {...}, "changes": the largest next-token probability changes between the runs,
        "kl"}, then {"type": "done"}. 413/422/429 come before the stream starts."""
        _check_prompt(req.prompt, limits)
        if len(req.features) > limits.max_features:
            raise invalid(f"{len(req.features)} features: one steer edits at most {limits.max_features}.")
        for f in req.features:
            engine.check_feature(f)
        if req.max_new_tokens > limits.max_new_tokens:
            raise invalid(f"max_new_tokens {req.max_new_tokens} is over the cap of {limits.max_new_tokens}.")
        if abs(req.strength) > limits.max_strength:
            raise invalid(f"strength {req.strength:g} is over the cap of {limits.max_strength:g} in size.")
        events: queue.Queue = queue.Queue()
        stop = threading.Event()

        def job():
            try:
                engine.steer(req.prompt, req.features, req.mode, req.strength, req.max_new_tokens, req.seed,
                             req.temperature, events.put, stop.is_set)
            except BaseException as e:
                events.put(e)
            finally:
                events.put(END)

        worker.submit(job)
        first = events.get()
        if isinstance(first, BaseException):
            events.get()
            raise first

        def body():
            try:
                item: Any = first
                while item is not END:
                    if isinstance(item, BaseException):  # after the start: said in the stream
                        item = {"type": "error", "detail": str(item) if isinstance(item, RequestError) else "internal error"}
                    yield json.dumps(item, ensure_ascii=False) + "\n"
                    item = events.get()
            finally:
                stop.set()  # a client that went away stops the generation at the next token

        return StreamingResponse(body(), media_type="application/x-ndjson")

    @app.get("/api/features/{fid}")
    def feature(fid: int) -> dict:
        """One feature: its dashboard statistics and top examples (when the dashboard holds it),
        its logit effects (promoted and suppressed tokens) and nearest features by decoder cosine."""
        if not 0 <= fid < engine.d_sae:
            return _error(404, f"feature {fid} is not in this SAE, whose ids run 0..{engine.d_sae - 1}.")
        return worker.submit(engine.feature, fid).result()

    return app


def _check_prompt(prompt: str, limits) -> None:
    if len(prompt) > limits.max_prompt_chars:
        raise too_large(f"the prompt is {len(prompt):,} characters; this server takes at most "
                        f"{limits.max_prompt_tokens:,} tokens ({limits.max_prompt_chars:,} characters).")


def _listing(folder: Path) -> dict[str, Path]:
    """The files a route may serve, fixed at start: a request names one of these, never a path."""
    return {p.name: p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


def _file(files: dict[str, Path], name: str, csp: str | None) -> Response:
    path = files.get(name)
    if path is None:
        return _missing("no such file")
    return FileResponse(path, headers={"Content-Security-Policy": csp} if csp else None)


def _missing(message: str) -> Response:
    return _error(404, message + ".")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers={"Cache-Control": "no-store"})
