"""`interp serve`: a local live dashboard of one SAE. Type text and see every feature on every
token, steer features and read the default and steered continuations side by side.

    app = create_app(Engine(model, sae, Limits()), Worker(queue_size=4), dashboard=Path("dash"))

On the top floor beside interp.pipelines: it composes analyses (the dashboard), sae (encoding,
steered generation) and the interp core (models, tokens)."""

from interp.server.app import create_app
from interp.server.engine import Engine
from interp.server.limits import Limits, RequestError
from interp.server.worker import Worker

__all__ = ["Engine", "Limits", "RequestError", "Worker", "create_app"]
