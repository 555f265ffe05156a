"""Each target's use of its rate limits over the last minute, as this process saw it.

A `Meter` counts the requests a target was sent and their tokens in a sliding minute:
a request counts when it starts, with an estimate of its tokens that its reported usage
corrects when it ends. `Meter.wait` says how long until a request of so many tokens
fits the target's `router.policy.Limit`. What the upstream says is left (`Quota`) and
a 429 make the target `pressed` until its reset: the engine then tries its pool's other
members first, without refusing it outright.
"""

from __future__ import annotations

from collections import deque

from router.events import Quota
from router.policy import Limit
from router.provider import EmbedRequest, ProviderRequest

__all__ = ["WINDOW_S", "Meter", "Metered", "estimate_tokens", "request_tokens"]

WINDOW_S = 60.0


class Metered:
    """One request's place in a meter: its start and its tokens (estimated, then
    reported)."""

    __slots__ = ("at", "counted", "tokens")

    def __init__(self, at: float, tokens: int) -> None:
        self.at = at
        self.tokens = tokens
        self.counted = True
        """Still inside the window (its tokens are in the meter's sum)."""


class Meter:
    """See the module docstring. Time is the engine's clock, in seconds."""

    __slots__ = ("_pressed_until", "_recent", "_tokens")

    def __init__(self) -> None:
        self._recent: deque[Metered] = deque()
        self._tokens = 0
        self._pressed_until = 0.0

    def _prune(self, now: float) -> None:
        cutoff = now - WINDOW_S
        recent = self._recent
        while recent and recent[0].at <= cutoff:
            old = recent.popleft()
            old.counted = False
            self._tokens -= old.tokens

    def wait(self, now: float, limit: Limit | None, tokens: int) -> float:
        """Seconds until a request of about ``tokens`` fits ``limit`` (0: now)."""
        if limit is None:
            return 0.0
        self._prune(now)
        recent, wait = self._recent, 0.0
        if limit.rpm is not None and len(recent) >= limit.rpm:
            # the oldest requests must leave the window until one more fits
            wait = recent[len(recent) - limit.rpm].at + WINDOW_S - now
        over = self._tokens + tokens - limit.tpm if limit.tpm is not None else 0
        if over > 0 and recent:
            freed = 0
            for entry in recent:
                freed += entry.tokens
                if freed >= over:
                    break
            wait = max(wait, entry.at + WINDOW_S - now)  # a request over tpm alone: all
        return max(wait, 0.0)

    def start(self, now: float, tokens: int) -> Metered:
        entry = Metered(now, tokens)
        self._recent.append(entry)
        self._tokens += tokens
        return entry

    def settle(self, entry: Metered, tokens: int) -> None:
        """The tokens ``entry`` really used (its usage), in place of its estimate."""
        if entry.counted:
            self._tokens += tokens - entry.tokens
        entry.tokens = tokens

    def heard(self, now: float, quota: Quota) -> None:
        """The upstream's own count: nothing left means pressed until its reset."""
        exhausted = (quota.requests_left is not None and quota.requests_left <= 0) or (
            quota.tokens_left is not None and quota.tokens_left <= 0
        )
        if exhausted and quota.reset_s is not None:
            self.press(now, quota.reset_s)

    def press(self, now: float, seconds: float) -> None:
        """The target answered 429 (or said it is spent): others first for ``seconds``."""
        self._pressed_until = max(self._pressed_until, now + seconds)

    def pressed(self, now: float) -> bool:
        return now < self._pressed_until


def estimate_tokens(messages: list[dict[str, object]], params: dict[str, object]) -> int:
    """A request's tokens before it runs: about four characters a prompt token, plus
    the completion it may ask for (``max_tokens``, else nothing: its usage settles it)."""
    chars = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(str(part)) for part in content)
    limit = params.get("max_completion_tokens") or params.get("max_tokens")
    return chars // 4 + 1 + (limit if isinstance(limit, int) else 0)


def request_tokens(request: ProviderRequest | EmbedRequest) -> int:
    """`estimate_tokens` of any request: an embeddings request's are its token arrays'
    length, or about four characters a token of its texts."""
    if not isinstance(request, EmbedRequest):
        return estimate_tokens(request.messages, request.params)
    if request.tokens:
        return sum(len(tokens) for tokens in request.inputs) + 1
    return sum(len(text) for text in request.inputs) // 4 + 1
