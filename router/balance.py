"""How a pool orders its members for one request: the balancing strategies.

The engine asks `order` for each entry of a route at the start of a request and tries
the members in that order (skipping those whose breaker is open) before it moves on to
the next entry. Everything here is pure: the members' live `Load`, the prices, the
random source and the entry's round-robin turn come in as arguments.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from hashlib import blake2b
from math import log

from router.policy import Target
from router.table import Entry

__all__ = ["EXPLORE", "Load", "Sessions", "by_session", "order"]

EXPLORE = 0.05
"""``least_latency``: the share of requests that put a random member first, so that a
member once slow (or never measured) is measured again and comes back when it
recovers."""
_SMOOTHING = 0.3
"""Weight of the newest sample in a member's time to first token (an exponential
moving average: about the last five requests count)."""


class Load:
    """What the engine knows of one target across requests and revisions."""

    __slots__ = ("in_flight", "ttft_s")

    def __init__(self) -> None:
        self.in_flight = 0
        self.ttft_s: float | None = None
        """Recent time to first token; None until one was measured."""

    def first_token(self, seconds: float) -> None:
        """A measured time to first token (or, for an attempt that timed out before
        one, how long it waited: a member that stops answering must lose its place)."""
        if self.ttft_s is None:
            self.ttft_s = seconds
        else:
            self.ttft_s += _SMOOTHING * (seconds - self.ttft_s)


_IDLE = Load()


def order(
    entry: Entry,
    loads: Mapping[str, Load],
    costs: Mapping[str, float],
    rng: Callable[[], float],
    turn: int = 0,
) -> list[Target]:
    """The members of ``entry``, the one to try first first."""
    members = entry.members
    if len(members) == 1:
        return [members[0]]

    def load(t: Target) -> Load:
        return loads.get(t.name, _IDLE)

    match entry.balance:
        case "weighted":
            return _weighted(members, entry.weights or (1.0,) * len(members), rng)
        case "round_robin":
            k = turn % len(members)
            return [*members[k:], *members[:k]]
        case "least_busy":
            return sorted(members, key=lambda t: (load(t).in_flight, rng()))
        case "least_latency":
            # Unmeasured members first: they are measured on their first request.
            ranked = sorted(members, key=lambda t: (load(t).ttft_s or 0.0, rng()))
            if rng() < EXPLORE:
                first = ranked.pop(min(int(rng() * len(ranked)), len(ranked) - 1))
                ranked.insert(0, first)
            return ranked
        case "lowest_cost":
            inf = float("inf")  # an unpriced member comes after every priced one
            return sorted(members, key=lambda t: (costs.get(t.name, inf), load(t).in_flight, rng()))


def _weighted(
    members: Sequence[Target], weights: Sequence[float], rng: Callable[[], float]
) -> list[Target]:
    """A weighted draw of every member without replacement, each next one in proportion
    to its weight among those left (Efraimidis and Spirakis: sort by ``u ** (1 / w)``,
    here its logarithm): the first member is the ``weighted`` choice, the rest its
    fallbacks in the same proportions. One random number per member, then a sort."""
    keys = {t: log(1.0 - rng()) / w for t, w in zip(members, weights, strict=True)}
    return sorted(members, key=keys.__getitem__, reverse=True)


def by_session(entry: Entry, session: str) -> list[Target]:
    """The members of ``entry`` for one session, its own member first (``affinity =
    "session"``): rendezvous hashing, weighted by ``weights`` where the pool has them.

    Each member scores ``w / -ln(u)`` with ``u`` a hash of (session, member) in (0, 1):
    the order depends on nothing but those, so every process and node puts a session
    on the same member without sharing anything. When that member cannot be used
    (its breaker is open, it failed), the session goes to its second member, and only
    the sessions of that member move (the engine then keeps a moved session where it
    went for a while: `Sessions`). A member added to the pool takes over only the
    sessions it now wins."""
    weights = entry.weights or (1.0,) * len(entry.members)
    prefix = session.encode() + b"\0"

    def score(member: tuple[Target, float]) -> float:
        digest = blake2b(prefix + member[0].name.encode(), digest_size=8).digest()
        u = (int.from_bytes(digest, "big") + 0.5) / 2.0**64
        return -member[1] / log(u)

    ranked = sorted(zip(entry.members, weights, strict=True), key=score, reverse=True)
    return [target for target, _ in ranked]


class Sessions:
    """Sessions served away from their own member (`by_session`), per pool, until they
    have been idle for the route's ``affinity_ttl_s``: such a session stays on the member
    that served it, whose prompt cache now holds its conversation, rather than coming
    back the moment its own member recovers. A session served by its own member needs
    no entry. Per process, and bounded: past ``max_size`` the least recently served are
    forgotten (they then follow the hash again, as every other process does)."""

    __slots__ = ("_served", "max_size")

    def __init__(self, max_size: int = 100_000) -> None:
        self.max_size = max_size
        self._served: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    def member(self, pool: str, session: str, now: float) -> str | None:
        """The member that last served ``session`` in ``pool``, if within its time."""
        found = self._served.get((pool, session))
        if found is None:
            return None
        if found[1] <= now:
            del self._served[pool, session]
            return None
        return found[0]

    def served(self, pool: str, session: str, member: str, until: float) -> None:
        key = (pool, session)
        self._served[key] = (member, until)
        self._served.move_to_end(key)
        if len(self._served) > self.max_size:
            self._served.popitem(last=False)

    def forget(self, pool: str, session: str) -> None:
        self._served.pop((pool, session), None)

    def __len__(self) -> int:
        return len(self._served)
