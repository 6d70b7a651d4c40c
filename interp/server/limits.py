"""What one request may ask of the server, and the errors that carry an HTTP status.

The caps keep one laptop safe: a prompt of at most `max_prompt_tokens` tokens (and a character cap
checked before the tokenizer runs), at most `max_new_tokens` generated, a strength of at most
`max_strength` in size, a few features per steer, and a bounded queue in front of the one model
worker."""

from __future__ import annotations

from dataclasses import dataclass

from interp.errors import InterpError


@dataclass(frozen=True)
class Limits:
    max_prompt_tokens: int = 1024
    max_new_tokens: int = 64
    max_strength: float = 200.0
    max_features: int = 8  # features edited by one steer
    max_top_k: int = 64  # features listed per token
    queue_size: int = 4  # requests waiting for the model worker (one more may be running)
    max_body_bytes: int = 1 << 20

    @property
    def max_prompt_chars(self) -> int:  # no tokenizer makes a token of more than this many characters on average
        return 64 * self.max_prompt_tokens


class RequestError(InterpError):
    """A request the server refuses: the HTTP status and one sentence saying what to change."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def too_large(message: str) -> RequestError:
    return RequestError(413, message)


def invalid(message: str) -> RequestError:
    return RequestError(422, message)


def busy(queue_size: int) -> RequestError:
    return RequestError(429, f"the model is busy ({queue_size} requests already wait for it); try again in a moment.")
