"""The route form: its fields, and reading and checking what was typed.

The form decodes through the same msgspec `RoutePolicy` as the TOML file and the admin
API, from the form's strings (``strict=False``). Each field is converted on its own, so
that every invalid field is named at once rather than the first, and then the targets
are validated against the providers as the store validates the whole configuration: an
error's key path (``$.max_retries``, ``routes.chat.targets[1]``) names the field its
message is shown next to, and every typed value is shown again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec
from litestar.datastructures import FormMultiDict

from providers.config import GatewayConfig
from router.errors import ConfigError
from router.policy import BUDGET_METRICS, BUDGET_PERIODS, RoutePolicy, TargetEntry
from server.dashboard.forms import (
    Form,
    config_message,
    error_field,
    field_of,
    flatten,
    parse_revision,
    show_value,
    validation_message,
)
from server.store.models import NAME_LENGTH
from server.store.schemas import canonical

__all__ = [
    "AFFINITIES",
    "DEFAULTS",
    "GROUPS",
    "MODES",
    "REASONS",
    "RouteForm",
    "TargetsField",
    "edit_rows",
]


class NumberField(NamedTuple):
    name: str
    label: str
    help: str


RETRIES = (
    NumberField("max_retries", "Max retries", "Retries of one target before the next."),
    NumberField("backoff_base_s", "Backoff base (s)", "The first wait; it doubles."),
    NumberField("backoff_max_s", "Backoff max (s)", "The longest wait between retries."),
    NumberField("max_retry_after_s", "Longest Retry-After (s)", "A longer Retry-After falls back."),
)
TIMEOUTS = (
    NumberField("connect_timeout_s", "Connect (s)", "To open the upstream connection."),
    NumberField("first_token_timeout_s", "First token (s)", "Until the first content."),
    NumberField("stall_timeout_s", "Stall (s)", "Longest silence once streaming."),
    NumberField("request_timeout_s", "Whole request (s)", "Every attempt together."),
)
BREAKER = (
    NumberField(
        "breaker.failure_threshold", "Failure threshold", "Consecutive failures that open it."
    ),
    NumberField("breaker.cooldown_s", "Cooldown (s)", "Skipped this long, then one probe."),
)
_UNITS = {"usd": "USD", "tokens": "Tokens", "requests": "Requests"}
BUDGET = (
    *(
        NumberField(f"budget.{metric}_per_{period}", f"{_UNITS[metric]} per {period}", "")
        for metric in BUDGET_METRICS
        for period in BUDGET_PERIODS
    ),
    NumberField("budget.timezone", "Time zone", "Whose calendar the windows follow (UTC)."),
    NumberField("budget.window", "Window", "calendar (the default) or rolling."),
    NumberField("budget.downgrade_to", "Downgrade to route", "Served instead once spent."),
)
POOLS = (
    NumberField(
        "affinity_ttl_s",
        "Affinity TTL (s)",
        "With session affinity: how long a session that had to leave its member stays "
        "where it went, after its last request.",
    ),
    NumberField(
        "hedge_after_s",
        "Hedge after (s)",
        "No content this long: ask the next candidate too, first answer wins. p95: the "
        "route's recent p95. Empty: never.",
    ),
)
GROUPS = (
    ("Pools", POOLS),
    ("Retries", RETRIES),
    ("Timeouts", TIMEOUTS),
    ("Circuit breaker", BREAKER),
    ("Budget (empty: no limit)", BUDGET),
)
"""The number fields beside the form's main column, by fieldset."""
SCALARS = (
    "stream_fallback_mode",
    "affinity",
    "embeddings",
    "stream_resume_prompt",
    *(f.name for _, fields in GROUPS for f in fields),
)
ROWS = ("targets",)


def _literals(struct: type[msgspec.Struct], name: str) -> tuple[str, ...]:
    """The values a Literal field (or a set of them) of ``struct`` accepts."""
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    kind = next(f.type for f in info.fields if f.name == name)
    while not isinstance(kind, msgspec.inspect.LiteralType):
        if isinstance(kind, msgspec.inspect.UnionType):
            kind = kind.types[0]
        elif isinstance(kind, msgspec.inspect.FrozenSetType):
            kind = kind.item_type
        else:
            raise TypeError(f"{struct.__name__}.{name} is not a Literal")
    return tuple(str(v) for v in kind.values)


MODES = _literals(RoutePolicy, "stream_fallback_mode")
AFFINITIES = _literals(RoutePolicy, "affinity")
REASONS = _literals(RoutePolicy, "fallback_on")
DEFAULTS = {key: show_value(value) for key, value in flatten(canonical(RoutePolicy()))}
"""Each field's default, shown greyed in an empty field."""


class TargetRow(NamedTuple):
    value: str
    error: str | None


@dataclass(frozen=True)
class TargetsField:
    """The targets fieldset: each row as typed with its error, and ``provider/``
    suggestions of the providers served."""

    rows: list[TargetRow]
    error: str | None
    """The field's own error (no target at all)."""
    options: list[str]

    @classmethod
    def of(cls, targets: list[str], errors: dict[str, str], options: list[str]) -> TargetsField:
        rows = [TargetRow(t, errors.get(f"targets[{i}]")) for i, t in enumerate(targets or [""])]
        return cls(rows, errors.get("targets"), options)


def edit_rows(targets: list[str], op: str) -> list[str]:
    """``targets`` with one row added, removed or moved: ``op`` is ``add``, ``remove:I``,
    ``up:I`` or ``down:I`` (anything else, or a row out of range, changes nothing)."""
    targets = list(targets)
    verb, _, arg = op.partition(":")
    i = int(arg) if arg.isascii() and arg.isdigit() else -1
    if verb == "add":
        targets.append("")
    elif verb == "remove" and 0 <= i < len(targets):
        del targets[i]
    elif verb == "up" and 0 < i < len(targets):
        targets[i - 1], targets[i] = targets[i], targets[i - 1]
    elif verb == "down" and 0 <= i < len(targets) - 1:
        targets[i], targets[i + 1] = targets[i + 1], targets[i]
    return targets


@dataclass(kw_only=True)
class RouteForm(Form):
    """A route form's values as typed (strings). Row errors of the targets are keyed
    ``targets[i]``."""

    section = "routes"
    rows = ROWS

    targets: list[str]
    values: dict[str, str]
    fallback_on: list[str] | None
    """Checked reasons; None when none is checked (unset: every fallback-able reason)."""

    @property
    def title(self) -> str:
        return "New route" if self.creating else f"Route {self.name}"

    @property
    def submit(self) -> str:
        return "Create route" if self.creating else "Save route"

    @classmethod
    def of(cls, name: str, policy: RoutePolicy, *, creating: bool, revision: int) -> RouteForm:
        flat = dict(flatten(canonical(policy)))
        return cls(
            name=name,
            creating=creating,
            targets=[_row_text(entry) for entry in policy.targets] or [""],
            values={key: show_value(flat.get(key)) for key in SCALARS},
            fallback_on=None if policy.fallback_on is None else sorted(policy.fallback_on),
            expected_revision=revision,
        )

    @classmethod
    def read(cls, form: FormMultiDict, *, name: str | None) -> RouteForm:
        """The submitted form; ``name`` is the route's for an edit, None for a new one.
        Empty target rows are dropped (one is left to type in)."""
        checked = [str(r) for r in form.getall("fallback_on", [])]
        targets = [str(t).strip() for t in form.getall("targets", [])]
        return cls(
            name=str(form.get("name") or "").strip() if name is None else name,
            creating=name is None,
            targets=[t for t in targets if t] or [""],
            values={key: str(form.get(key) or "") for key in SCALARS},
            fallback_on=checked or None,
            expected_revision=parse_revision(form.get("expected_revision")),
        )

    def targets_field(self, options: list[str]) -> TargetsField:
        return TargetsField.of(self.targets, self.errors, options)

    def data(self) -> dict[str, Any]:
        """The route's table, with the form's strings for `msgspec.convert` to read
        (``strict=False``). An empty field is left out: it takes its default."""
        data: dict[str, Any] = {"targets": [_row_value(t) for t in self.targets if t]}
        for key in SCALARS:
            raw = self.values.get(key, "")
            if not raw.strip():
                continue
            value = raw if key == "stream_resume_prompt" else raw.strip()
            head, dot, sub = key.partition(".")
            if dot:
                data.setdefault(head, {})[sub] = value
            else:
                data[key] = value
        if self.fallback_on:
            data["fallback_on"] = self.fallback_on
        return data

    def policy(self) -> RoutePolicy:
        policy: RoutePolicy = msgspec.convert(self.data(), RoutePolicy, strict=False)
        return policy

    def check(self, config: GatewayConfig) -> None:
        """Every field on its own, then the targets against ``config``'s providers as
        `GatewayConfig.validate` checks them (the store checks the whole again)."""
        if self.creating:
            self._check_name(config)
        data = self.data()
        for key, value in data.items():
            if key == "targets":
                for i, target in enumerate(value):
                    self._convert({"targets": [target]}, target, row=i)
            elif key in ("breaker", "budget"):
                for sub, item in value.items():
                    self._convert({key: {sub: item}}, item)
            else:
                self._convert({key: value}, value)
        if not any(key.startswith("targets") for key in self.errors):
            targets = msgspec.convert({"targets": data["targets"]}, RoutePolicy).targets
            embeds = "embeddings" not in self.errors and data.get("embeddings") == "true"
            probe = GatewayConfig(
                providers=config.providers,
                routes={"route": RoutePolicy(targets=targets, embeddings=embeds)},
            )
            try:
                probe.validate("config")
            except ConfigError as exc:
                where = error_field(exc, "routes.route", ROWS) or "targets"
                self.errors.setdefault(where, config_message(exc))

    def _check_name(self, config: GatewayConfig) -> None:
        name = self.name
        if not name:
            self.errors["name"] = "Enter a name: clients send it as the request's model."
        elif "/" in name:
            self.errors["name"] = "a route name must not contain '/'"
        elif len(name) > NAME_LENGTH:
            self.errors["name"] = f"a name must be 1 to {NAME_LENGTH} characters long"
        elif name in config.routes:
            self.errors["name"] = f"a route named {name!r} already exists: edit it instead"

    def _convert(self, data: dict[str, Any], value: object, row: int | None = None) -> None:
        try:
            msgspec.convert(data, RoutePolicy, strict=False)
        except msgspec.ValidationError as exc:
            message, path = validation_message(exc, value)
            name = field_of(path, ROWS)
            if row is not None and name.startswith("targets["):
                name = f"targets[{row}]"
            self.errors.setdefault(name, message)


def _row_text(entry: TargetEntry) -> str:
    """A target row as the form shows it: ``provider/model``, or a pool as its JSON
    table (``{"pool": ["a/m", "b/m"], "balance": "least_busy"}``)."""
    if isinstance(entry, str):
        return entry
    return json.dumps(msgspec.to_builtins(entry))


def _row_value(text: str) -> Any:
    """What a typed row stands for: a pool's table when it is one (JSON, as shown),
    else the target string (which validation then names as the row's error)."""
    if text.startswith("{"):
        try:
            return msgspec.json.decode(text)
        except msgspec.DecodeError:
            return text
    return text
