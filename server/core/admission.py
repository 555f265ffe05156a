"""Who may ask for what: client keys, route allow-lists and budgets, before anything
runs. Holds the keys a process accepts (the master key from the environment, virtual
keys swapped in by the reloader) and, while serving from a database, the budget gate.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from providers.config import ServerSettings
from router.table import RoutingTable
from server.core.budgets import BudgetGate, Limit, limits_of
from server.core.keys import ApiKey, KeyRing, bearer_token
from server.errors import AuthError, BudgetExceeded, RouteNotAllowed

__all__ = ["Admission"]


class Admission:
    """``authorize`` (who is asking), ``allowed`` (may they use that route) and ``admit``
    (do the budgets let them, or send them to a cheaper route)."""

    def __init__(self, settings: ServerSettings, env: Mapping[str, str]) -> None:
        self.master_key = env.get(settings.master_key_env) or None
        """The client key that may use everything."""
        self.admin_key = env.get(settings.admin_key_env) or None
        """The admin API's key (`server.admin.guard`)."""
        self.keys = KeyRing()
        """The active virtual keys (`server.store.keys`)."""
        self.budgets: BudgetGate | None = None
        """While serving from a database (`server.core.budgets`)."""
        self._limits: dict[str, list[Limit]] = {}
        self._limits_of: RoutingTable | None = None

    def use_keys(self, ring: KeyRing) -> None:
        """Accept these virtual keys from now on (a new version from the database)."""
        self.keys = ring

    def use_budgets(self, gate: BudgetGate | None) -> None:
        """Admit through this budget gate (None: no budgets are enforced)."""
        self.budgets = gate

    def authorize(self, authorization: str | None) -> ApiKey | None:
        """Who is asking: None for the master key (or when no key is required), else the
        virtual key. Raises `AuthError` for a missing or unknown key."""
        if self.master_key is None and self.keys.version == 0:
            return None  # no key was ever made: open (and `serve` keeps to loopback)
        token = bearer_token(authorization)
        if token is None:
            raise AuthError("You didn't provide an API key. Send 'Authorization: Bearer <key>'.")
        if self.master_key is not None and hmac.compare_digest(
            token.encode(), self.master_key.encode()
        ):
            return None
        key = self.keys.find(token)
        if key is None:
            raise AuthError("Incorrect API key provided.")
        return key

    def allowed(self, key: ApiKey | None, table: RoutingTable, model: str) -> None:
        """Raise `RouteNotAllowed` unless ``key`` may use the route ``model`` names."""
        if key is None or key.routes is None:
            return
        route = table.resolve(model).name
        if not key.allows(route):
            raise RouteNotAllowed(
                f"The key {key.name!r} may only use the routes {', '.join(key.routes)}; "
                f"not {route!r}."
            )

    async def admit(
        self, key: ApiKey | None, table: RoutingTable, model: str, request_id: str
    ) -> str:
        """Check the budgets of the route ``model`` names and of ``key``; return the
        model to serve: ``model``, or the cheaper route its spent budget downgrades to.
        Raises `BudgetExceeded`. Without budgets, it costs a dictionary lookup."""
        gate = self.budgets
        if gate is None:
            return model
        if table is not self._limits_of:  # a new revision: its budgets may differ
            self._limits, self._limits_of = {}, table
        route = table.resolve(model)
        key_limits = (
            limits_of(f"key:{key.id}", f"key {key.name!r}", key.budget)
            if key is not None and key.budget is not None
            else []
        )
        name, policy = route.name, route.policy
        for _ in range(len(table.routes) + 1):
            limits = self._limits.get(name)
            if limits is None:
                limits = self._limits[name] = limits_of(
                    f"route:{name}", f"route {name!r}", policy.budget
                )
            if not limits and not key_limits:
                return model if name == route.name else name
            try:
                await gate.admit(request_id, [*limits, *key_limits])
            except BudgetExceeded as exc:
                budget = policy.budget
                if exc.scope.startswith("route:") and budget is not None and budget.downgrade_to:
                    name = budget.downgrade_to
                    policy = table.routes[name].policy
                    continue
                raise
            return model if name == route.name else name
        raise AssertionError("downgrade_to chains are checked for loops")
