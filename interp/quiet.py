"""Keep other libraries' progress bars, advice and warnings off the command line's terminal, so that
what the user reads is ours: our progress bars, our results, and a bad input's one line."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

OURS = r"(interp|sae|analyses)(\.|$)"  # modules whose own UserWarnings still show


@contextlib.contextmanager
def quiet_third_parties() -> Iterator[None]:
    """Enter before transformers or huggingface_hub is imported (they read these variables at
    import); warning filters and the root log level are restored on exit."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # "Loading weights", downloads
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        # deprecations are for developers, and third-party ones are attributed to our calling line
        warnings.filterwarnings("default", category=UserWarning, module=OURS)
        root.setLevel(logging.ERROR)  # TransformerLens and torch give advice at WARNING
        try:
            yield
        finally:
            root.setLevel(level)
