"""Dashboard: the routes with their live health, and forms to change them (the
revision history is `server.dashboard.revisions`).

``/admin/routes`` lists every route's targets in order, with each target's circuit
breaker state (`router.engine.Engine.breaker_states`; a target never tried is closed)
and its attempts and failures of the last minutes (`server.observe.health.TargetHealth`,
``app.state.health``). With a policy store routes are created, edited and deleted here;
a gateway serving its file shows that file read-only.

The forms decode through the same msgspec `RoutePolicy` as the TOML file and the admin
API, from the form's strings (``strict=False``). Each field is converted on its own, so
that every invalid field is named at once rather than the first, and then the whole
configuration is validated as the store validates it: an error's key path
(``$.max_retries``, ``routes.chat.targets[1]``) names the field its message is shown
next to, and every typed value is shown again. A form sends the revision it was loaded
at, so a save over someone else's newer change is refused (409) instead of undoing it.

An invalid submission answers 422 and a conflict 409, with the form re-rendered; htmx 2
swaps no 4xx response by default, so the pages configure it to swap those
(``_routes_head.html``, read by htmx when the page loads). A saved change answers with
``HX-Redirect`` to the list, which this process already serves at the new revision
(`server.core.reload.Reloader.wrote`), as the admin API does.

The helpers shared with the other forms are in `server.dashboard.forms`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

import msgspec
from litestar import Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.response import Template

from providers.config import GatewayConfig
from router.errors import ConfigError
from router.policy import BUDGET_METRICS, BUDGET_PERIODS, RoutePolicy
from server.dashboard.common import Req, fragment, gateway, is_htmx, page, store
from server.dashboard.forms import (
    ACTOR,
    READ_ONLY,
    ROUTES,
    STORE_DOWN,
    UNAVAILABLE,
    config_message,
    conflict_message,
    current,
    error_field,
    field_of,
    flatten,
    notice,
    parse_revision,
    redirect,
    show_value,
    store_down_message,
    validation_message,
    with_status,
    wrote,
)
from server.errors import ConflictError, NotFound
from server.observe.health import TargetHealth
from server.store import WriteResult
from server.store.models import NAME_LENGTH
from server.store.schemas import canonical

__all__ = ["HANDLERS", "RouteForm"]


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
SCALARS = (
    "stream_fallback_mode",
    "stream_resume_prompt",
    *(f.name for f in (*RETRIES, *TIMEOUTS, *BREAKER, *BUDGET)),
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
REASONS = _literals(RoutePolicy, "fallback_on")
DEFAULTS = {key: show_value(value) for key, value in flatten(canonical(RoutePolicy()))}


@dataclass
class RouteForm:
    """A route form's values as typed (strings), its errors by field, and the revision
    it was loaded at. Row errors of the targets are keyed ``targets[i]``."""

    name: str
    creating: bool
    targets: list[str]
    values: dict[str, str]
    fallback_on: list[str] | None
    """Checked reasons; None when none is checked (unset: every fallback-able reason)."""
    expected_revision: int | None
    errors: dict[str, str] = field(default_factory=dict)
    banner: str | None = None

    @classmethod
    def of(cls, name: str, policy: RoutePolicy, *, creating: bool, revision: int) -> RouteForm:
        flat = dict(flatten(canonical(policy)))
        return cls(
            name=name,
            creating=creating,
            targets=list(policy.targets) or [""],
            values={key: show_value(flat.get(key)) for key in SCALARS},
            fallback_on=None if policy.fallback_on is None else sorted(policy.fallback_on),
            expected_revision=revision,
        )

    @classmethod
    def read(cls, form: FormMultiDict, *, name: str | None) -> RouteForm:
        """The submitted form; ``name`` is the route's for an edit, None for a new one."""
        checked = [str(r) for r in form.getall("fallback_on", [])]
        return cls(
            name=str(form.get("name") or "").strip() if name is None else name,
            creating=name is None,
            targets=[str(t).strip() for t in form.getall("targets", [])],
            values={key: str(form.get(key) or "") for key in SCALARS},
            fallback_on=checked or None,
            expected_revision=parse_revision(form.get("expected_revision")),
        )

    def data(self) -> dict[str, Any]:
        """The route's table, with the form's strings for `msgspec.convert` to read
        (``strict=False``). An empty field is left out: it takes its default."""
        data: dict[str, Any] = {"targets": [t for t in self.targets if t]}
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
            probe = GatewayConfig(
                providers=config.providers, routes={"route": RoutePolicy(targets=data["targets"])}
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

    def store_error(self, exc: ConfigError) -> None:
        """A store's refusal, next to its field or above the form."""
        where = error_field(exc, f"routes.{self.name}", ROWS)
        if where is None:
            self.banner = str(exc).removeprefix("config: ")
        else:
            self.errors.setdefault(where, config_message(exc))


def _target_options(request: Req) -> list[str]:
    """Suggestions for a target row: ``provider/`` of each provider served."""
    return [f"{name}/" for name in sorted(gateway(request).table.providers)]


def _form_response(request: Req, form: RouteForm, status: int = 200) -> Template:
    """The form alone for htmx (swapped in place of itself), else the whole page."""
    context = {
        "form": form,
        "modes": MODES,
        "reasons": REASONS,
        "defaults": DEFAULTS,
        "groups": (
            ("Retries", RETRIES),
            ("Timeouts", TIMEOUTS),
            ("Circuit breaker", BREAKER),
            ("Budget (empty: no limit)", BUDGET),
        ),
        "target_options": _target_options(request),
        "action": f"{ROUTES}/new" if form.creating else f"{ROUTES}/{quote(form.name)}/edit",
    }
    if is_htmx(request):
        return with_status(fragment("_route_form.html", **context), status)
    return with_status(page(request, "routes_form.html", "routes", **context), status)


def _read_only(request: Req) -> Template:
    return notice(request, READ_ONLY, 409)


async def _save(request: Req, name: str | None) -> Response[Any]:
    s = store(request)
    if s is None:
        return _read_only(request)
    form = RouteForm.read(await request.form(), name=name)
    form.targets = [t for t in form.targets if t] or [""]
    status = 422
    try:
        _, config = await s.load()
        form.check(config)
        if not form.errors:
            result = await s.put_route(
                form.name,
                form.policy(),
                actor=ACTOR,
                expected_revision=form.expected_revision,
            )
            await wrote(request, result)
            return redirect(request, _done_url(result, saved=form.name))
    except ConflictError as exc:
        form.banner, status = conflict_message(exc), 409
    except ConfigError as exc:
        form.store_error(exc)
    except msgspec.ValidationError as exc:  # every field passed alone: not expected
        form.banner = validation_message(exc)[0]
    except STORE_DOWN as exc:
        form.banner, status = store_down_message(exc), 503
    return _form_response(request, form, status)


def _done_url(result: WriteResult, **what: str) -> str:
    query = {**what, "revision": str(result.revision)}
    if not result.written:
        query["unchanged"] = "1"
    return f"{ROUTES}?{urlencode(query)}"


# --------------------------------------------------------------------------------------
# The list.


@dataclass(frozen=True)
class TargetView:
    name: str
    state: str
    attempts: int
    failures: int

    @property
    def rate(self) -> float | None:
        return self.failures / self.attempts if self.attempts else None


@dataclass(frozen=True)
class RouteView:
    name: str
    policy: RoutePolicy
    targets: list[TargetView]

    @property
    def timeouts(self) -> str:
        p = self.policy
        seconds = (p.connect_timeout_s, p.first_token_timeout_s, p.stall_timeout_s)
        return " / ".join(show_value(t) for t in (*seconds, p.request_timeout_s)) + " s"

    @property
    def breaker(self) -> str:
        b = self.policy.breaker
        return f"opens after {b.failure_threshold} failures, for {show_value(b.cooldown_s)} s"


def _health(request: Req) -> TargetHealth | None:
    health = getattr(request.app.state, "health", None)
    return health if isinstance(health, TargetHealth) else None


def _done_notice(request: Req) -> str | None:
    """What the redirect after a write says happened (its query)."""
    q = request.query_params
    revision = q.get("revision")
    if q.get("unchanged"):
        return f"Nothing changed: the configuration stays at revision {revision}."
    for key, verb in (("saved", "saved"), ("deleted", "deleted")):
        if q.get(key):
            return f"Route {q[key]!r} {verb}: revision {revision} is served."
    return None


@get("/routes", name="routes", exception_handlers=UNAVAILABLE)
async def routes_page(request: Req) -> Template:
    now = await current(request)
    states = gateway(request).engine.breaker_states()
    health = _health(request)
    routes = [
        RouteView(
            name,
            policy,
            [
                TargetView(
                    t, states.get(t, "closed"), *(health.error_rate(t) if health else (0, 0))
                )
                for t in policy.targets
            ],
        )
        for name, policy in sorted(now.config.routes.items())
    ]
    return page(
        request,
        "routes.html",
        "routes",
        routes=routes,
        current=now,
        served=gateway(request).table.revision,
        notice=_done_notice(request),
        window_min=round(health.window_s / 60) if health else None,
    )


@get("/routes/new", exception_handlers=UNAVAILABLE)
async def new_route(request: Req) -> Template:
    now = await current(request)
    if not now.editable:
        return _read_only(request)
    return _form_response(
        request, RouteForm.of("", RoutePolicy(), creating=True, revision=now.revision)
    )


@post("/routes/new", status_code=200)
async def create_route(request: Req) -> Response[Any]:
    return await _save(request, None)


@get("/routes/{route:str}/edit", name="routes.edit", exception_handlers=UNAVAILABLE)
async def edit_route(request: Req) -> Template:
    name: str = request.path_params["route"]
    now = await current(request)
    if not now.editable:
        return _read_only(request)
    policy = now.config.routes.get(name)
    if policy is None:
        return notice(request, f"There is no route named {name!r}.", 404)
    return _form_response(
        request, RouteForm.of(name, policy, creating=False, revision=now.revision)
    )


@post("/routes/{route:str}/edit", status_code=200)
async def update_route(request: Req) -> Response[Any]:
    return await _save(request, request.path_params["route"])


@post("/routes/targets", status_code=200)
async def route_targets(request: Req) -> Template:
    """The targets fieldset again, from the submitted form, with one row added, removed
    or moved (``op`` is ``add``, ``remove:I``, ``up:I`` or ``down:I``). Only the fieldset
    is swapped: the rest of the form keeps what was typed."""
    form = await request.form()
    targets = [str(t).strip() for t in form.getall("targets", [])]
    op, _, arg = str(form.get("op") or "").partition(":")
    i = int(arg) if arg.isascii() and arg.isdigit() else -1
    if op == "add":
        targets.append("")
    elif op == "remove" and 0 <= i < len(targets):
        del targets[i]
    elif op == "up" and 0 < i < len(targets):
        targets[i - 1], targets[i] = targets[i], targets[i - 1]
    elif op == "down" and 0 <= i < len(targets) - 1:
        targets[i], targets[i + 1] = targets[i + 1], targets[i]
    return fragment(
        "_route_targets.html",
        targets=targets or [""],
        errors={},
        target_options=_target_options(request),
    )


@post("/routes/{name:str}/delete", status_code=200)
async def delete_route(request: Req) -> Response[Any]:
    name: str = request.path_params["name"]
    s = store(request)
    if s is None:
        return _read_only(request)
    form = await request.form()
    try:
        result = await s.delete_route(
            name, actor=ACTOR, expected_revision=parse_revision(form.get("expected_revision"))
        )
    except ConflictError as exc:
        return notice(request, conflict_message(exc), 409)
    except NotFound:
        return notice(request, f"There is no route named {name!r} any more.", 404)
    except ConfigError as exc:
        return notice(request, str(exc).removeprefix("config: "), 422)
    except STORE_DOWN as exc:
        return notice(request, store_down_message(exc), 503)
    await wrote(request, result)
    return redirect(request, _done_url(result, deleted=name))


HANDLERS: list[Any] = [
    routes_page,
    new_route,
    create_route,
    route_targets,
    edit_route,
    update_route,
    delete_route,
]
