"""The one thread that runs the model. Requests wait in a bounded queue; when it is full a new
request is refused at once (HTTP 429) instead of piling up. One thread means the model, its hooks
and the tokenizer are never used by two requests at the same time."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable

import torch

from interp.server.limits import busy


class Worker:
    def __init__(self, queue_size: int, threads: int | None = None):
        self.queue_size = queue_size
        self._jobs: queue.Queue = queue.Queue(maxsize=queue_size)
        self._threads = threads
        self._thread = threading.Thread(target=self._loop, name="interp-model-worker", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue fn(*args) for the worker; RequestError(429) when the queue is full."""
        future: Future = Future()
        try:
            self._jobs.put_nowait((future, fn, args))
        except queue.Full:
            raise busy(self.queue_size) from None
        return future

    def waiting(self) -> int:
        return self._jobs.qsize()

    def close(self) -> None:
        self._jobs.put(None)

    def _loop(self) -> None:
        if self._threads:
            torch.set_num_threads(self._threads)
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as e:  # handed to the request that asked
                future.set_exception(e)
