"""An immutable routing table: providers and compiled routes of one revision."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from router.errors import ConfigError, NoSuchModel, RequestError
from router.policy import Balance, Limit, Pool, RoutePolicy, Target, TargetEntry, parse_target
from router.provider import Provider

__all__ = ["BARE_PREFIXES", "Entry", "ResolvedRoute", "RoutingTable", "bare_provider"]

# Model names without a provider resolve by prefix, as the seed library does.
BARE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("claude-", "anthropic"),
    ("gemini-", "gemini"),
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding-", "openai"),
)


def bare_provider(model: str) -> str | None:
    """The provider a bare model name (no ``provider/``) belongs to, if known."""
    for prefix, provider in BARE_PREFIXES:
        if model.startswith(prefix):
            return provider
    return None


class Entry(msgspec.Struct, frozen=True, gc=False):
    """One entry of a route's fallback order: a pool of one or more members."""

    key: str
    """``route#index``: names the entry's own balancing state (its round-robin turn)."""
    members: tuple[Target, ...]
    balance: Balance = "weighted"
    weights: tuple[float, ...] | None = None


class ResolvedRoute(msgspec.Struct, frozen=True, gc=False):
    name: str
    policy: RoutePolicy
    targets: tuple[Target, ...]
    """Every member of every entry, in order, each once."""
    entries: tuple[Entry, ...]


def _entry(route: str, index: int, entry: TargetEntry) -> Entry:
    if isinstance(entry, Pool):
        weights = None if entry.weights is None else tuple(entry.weights)
        members = tuple(parse_target(t) for t in entry.pool)
        return Entry(f"{route}#{index}", members, entry.balance, weights)
    return Entry(f"{route}#{index}", (parse_target(entry),))


def _flat(entries: tuple[Entry, ...]) -> tuple[Target, ...]:
    return tuple(dict.fromkeys(t for e in entries for t in e.members))


class RoutingTable:
    """Compiled once per configuration revision and then only read, so requests in
    flight keep the snapshot they started with while a new one is swapped in."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        routes: Mapping[str, RoutePolicy],
        *,
        default_policy: RoutePolicy | None = None,
        revision: int = 0,
        costs: Mapping[str, float] | None = None,
        limits: Mapping[str, Mapping[str, Limit]] | None = None,
    ) -> None:
        self.providers = dict(providers)
        self.revision = revision
        self.costs: Mapping[str, float] = dict(costs or {})
        """USD per million tokens (input and output together) of each priced target, for
        ``lowest_cost`` pools."""
        self._limits = {name: dict(table) for name, table in (limits or {}).items() if table}
        self.default_policy = default_policy or RoutePolicy()
        self.routes: dict[str, ResolvedRoute] = {}
        for name, policy in routes.items():
            if not policy.targets:
                raise ConfigError("expected at least one target", path=f"routes.{name}.targets")
            entries = tuple(_entry(name, i, e) for i, e in enumerate(policy.targets))
            for i, entry in enumerate(entries):
                for target in entry.members:
                    if target.provider not in self.providers:
                        raise ConfigError(
                            f"unknown provider {target.provider!r}; expected one of "
                            f"{sorted(self.providers)}",
                            path=f"routes.{name}.targets[{i}]",
                        )
            self.routes[name] = ResolvedRoute(name, policy, _flat(entries), entries)
        self.names = frozenset(self.model_ids())
        """Every configured route and target name (not the ``provider/model`` names a
        client may choose freely): what metrics label by name."""

    def limit(self, target: Target) -> Limit | None:
        """The rate limits of ``target``'s deployment (its model's, else its provider's
        ``"*"``), if any."""
        table = self._limits.get(target.provider)
        if table is None:
            return None
        return table.get(target.model) or table.get("*")

    def resolve(self, model: str) -> ResolvedRoute:
        """A route by name, or a single ``provider/model`` target with the default policy."""
        route = self.routes.get(model)
        if route is not None:
            return route
        provider, sep, name = model.partition("/")
        if not sep:
            provider, name = bare_provider(model) or "", model
        if name and provider in self.providers:
            target = Target(provider, name)
            policy = msgspec.structs.replace(self.default_policy, targets=[target.name])
            return ResolvedRoute(model, policy, (target,), (Entry(model, (target,)),))
        raise NoSuchModel(
            f"The model {model!r} does not exist: it is neither a route nor a "
            f"provider/model target of a configured provider.",
            param="model",
        )

    def doors(self, model: str) -> list[str]:
        """The endpoints ``model`` serves: every one that answers in text, and
        ``embeddings`` when all of its targets can embed."""
        route = self.resolve(model)
        doors = ["chat.completions", "responses", "messages"]
        if all(self.providers[t.provider].supports_embeddings for t in route.targets):
            doors.append("embeddings")
        return doors

    def resolve_embeddings(self, model: str) -> ResolvedRoute:
        """`resolve` for an embeddings request: raises `RequestError` (400) when a
        target of the route cannot embed, naming them, since their vectors could not
        stand in for one another anyway."""
        route = self.resolve(model)
        unable = [
            t.name for t in route.targets if not self.providers[t.provider].supports_embeddings
        ]
        if unable:
            raise RequestError(
                f"The model {model!r} cannot serve embeddings: {', '.join(unable)} cannot embed.",
                param="model",
                code="model_not_embeddable",
            )
        return route

    def model_ids(self) -> list[str]:
        """Routes first, then every distinct target they name."""
        ids = list(self.routes)
        seen = set(ids)
        for route in self.routes.values():
            for target in route.targets:
                if target.name not in seen:
                    seen.add(target.name)
                    ids.append(target.name)
        return ids
