"""interp serve: the live local dashboard (interp/server). Everything that can be wrong with the
start (the SAE folder, a model that does not fit it, a port in use, the dashboard folder) ends the
command in one line before the server listens."""

from __future__ import annotations

import socket
import sys
import tempfile
from pathlib import Path

import uvicorn

from interp.errors import InterpError
from interp.models import check_processing, find_model, load_model
from interp.server import Engine, Limits, Worker, create_app
from interp.server.dashboard import build_dashboard_at_start, open_dashboard
from interp.sites import hook_width
from sae import load_sae

LOCAL = ("127.0.0.1", "localhost", "::1")


def run(args) -> int:
    limits = _limits(args)
    sae = load_sae(args.sae_dir, device=args.device)
    sock = bind(args.host, args.port)
    with sock, tempfile.TemporaryDirectory(prefix="interp-serve-") as tmp:
        model = load_model(args.model or find_model(sae.cfg.model_name, sae.cfg.extra.get("model_path")),
                           device=args.device, processing=not args.no_processing)
        check_processing(f"the SAE at {args.sae_dir}", sae.cfg.extra.get("model_from_pretrained_kwargs"), model)
        model.requires_grad_(False)
        width = hook_width(model, sae.cfg.hook_name)
        if width != sae.cfg.d_in:
            raise InterpError(f"the SAE reads {sae.cfg.d_in} numbers at {sae.cfg.hook_name} but {model.cfg.model_name} "
                              f"has {width} there: the SAE belongs to another model or hook; give its own --model.")
        sae = sae.to(next(model.parameters()).device).requires_grad_(False)
        if args.dashboard:
            dashboard, stats = open_dashboard(args.dashboard)
        else:
            print(f"building the dashboard of features {args.features} from {args.tokens:,} held-out tokens "
                  f"(kept until the server stops; `interp dashboard` writes one to keep)...", flush=True)
            dashboard, stats = build_dashboard_at_start(model, sae, Path(tmp), args.text, args.tokens, args.features)
        engine = Engine(model, sae, limits, stats)
        worker = Worker(limits.queue_size, threads=args.threads)
        local = args.host in LOCAL
        hosts = None if not local else ["127.0.0.1", "localhost", "[::1]", "::1"]
        app = create_app(engine, worker, dashboard, allowed_hosts=hosts,
                         title=f"{Path(args.sae_dir).resolve().name}: live")
        if not local:
            print(f"interp serve: warning: listening on {args.host}, not only this machine: anyone who can reach it "
                  "can run the model (there is no login).", file=sys.stderr, flush=True)
        port = sock.getsockname()[1]
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(f"serving {model.cfg.model_name} {sae.cfg.hook_name} ({sae.cfg.d_sae:,} features) at "
              f"http://{shown}:{port}/  (ctrl-c stops it)", flush=True)
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
        uvicorn.Server(config).run(sockets=[sock])
        worker.close()
    return 0


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads so that a port in use is said at once."""
    if not 0 <= port <= 65535:
        raise InterpError(f"--port {port} is not a port number (0..65535; 0 picks a free one).")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InterpError(f"--host {host!r} is not an address of this machine; use 127.0.0.1 (the default).") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        if e.errno == 98 or "in use" in str(e):
            raise InterpError(f"port {port} on {host} is in use; stop what listens there or pick another --port.") from None
        raise InterpError(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --host or --port.") from None
    sock.set_inheritable(True)
    return sock


def _limits(args) -> Limits:
    for name in ("max_prompt_tokens", "max_new_tokens", "queue"):
        if getattr(args, name) < 1:
            raise InterpError(f"--{name.replace('_', '-')} must be at least 1.")
    if not args.max_strength > 0:
        raise InterpError("--max-strength must be a positive number.")
    if args.dashboard is None and args.tokens < 1:
        raise InterpError("--tokens must be at least 1.")
    return Limits(max_prompt_tokens=args.max_prompt_tokens, max_new_tokens=args.max_new_tokens,
                  max_strength=args.max_strength, queue_size=args.queue)
