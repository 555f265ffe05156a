"""Dashboard: the routes with their live health, forms to change them, and the revision
history with rollback.

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
(`server.reload.Reloader.wrote`), as the admin API does.

The helpers at the top (error messages and key paths, redirects, notices) serve the
providers page too (`server.dashboard.providers`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

import msgspec
from litestar import Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.enums import MediaType
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import SQLAlchemyError

from providers.config import GatewayConfig
from router.errors import ConfigError
from router.policy import BUDGET_METRICS, BUDGET_PERIODS, RoutePolicy
from server.dashboard.common import Req, fragment, gateway, is_htmx, page, reloader, store
from server.observe.health import TargetHealth
from server.store import ConflictError, NotFound, PolicyStore, WriteResult
from server.store.diff import diff_configs
from server.store.models import NAME_LENGTH
from server.store.schemas import canonical

__all__ = [
    "ACTOR",
    "HANDLERS",
    "READ_ONLY",
    "STORE_DOWN",
    "UNAVAILABLE",
    "Current",
    "RouteForm",
    "config_message",
    "conflict_message",
    "current",
    "error_field",
    "field_of",
    "notice",
    "parse_revision",
    "redirect",
    "revision_diff",
    "show_value",
    "store_down_message",
    "validation_message",
    "with_status",
    "wrote",
]

log = logging.getLogger("llmgate.dashboard")

ACTOR = "dashboard"
"""Recorded as the actor of every revision written from the dashboard."""
ROUTES = "/admin/routes"
REVISIONS = "/admin/revisions"
STORE_DOWN: tuple[type[Exception], ...] = (SQLAlchemyError, OSError)

# --------------------------------------------------------------------------------------
# What the routes and providers pages share: messages, key paths, writes, responses.


def validation_message(exc: msgspec.ValidationError, value: object = None) -> tuple[str, str]:
    """``(message, key path after $)`` of a msgspec error, e.g. ``("Expected `int` <= 10",
    ".max_retries")``. A form's values are strings, so "got `str`" says little: it names
    the value typed instead."""
    detail, _, at = str(exc).rpartition(" - at `$")
    if not detail:
        detail, at = str(exc), ""
    if isinstance(value, str) and detail.endswith(", got `str`"):
        detail = detail.removesuffix("`str`") + repr(value)
    return detail, at.rstrip("`")


def config_message(exc: ConfigError) -> str:
    """A `ConfigError`'s message without its ``where`` prefix (shown next to the field)."""
    text = str(exc)
    prefix = f"{exc.where}: "
    return text.removeprefix(prefix) if exc.where else text


def field_of(path: str, rows: Collection[str] = ()) -> str:
    """The form field a key path inside one table names: ``.breaker.cooldown_s`` is
    ``breaker.cooldown_s``; ``.targets[1]`` is the row ``targets[1]`` when ``targets``
    is in ``rows``, and ``.fallback_on[0]`` or ``.headers[...]`` the whole field."""
    head, bracket, rest = path.lstrip(".").partition("[")
    index = rest.partition("]")[0]
    if bracket and head in rows and index.isdigit():
        return f"{head}[{index}]"
    return head


def error_field(exc: ConfigError, table: str, rows: Collection[str] = ()) -> str | None:
    """The field of ``table`` (``routes.chat``) the key path of a store's `ConfigError`
    names (``where`` is ``config: routes.chat.targets[1]``): ``name`` for the table
    itself, None for a path outside it (shown above the form)."""
    path = exc.where.partition(": ")[2]
    if path == table:
        return "name"
    if path.startswith(table) and path[len(table) : len(table) + 1] in (".", "["):
        return field_of(path[len(table) :], rows)
    return None


def conflict_message(exc: ConflictError) -> str:
    return (
        f"Someone else changed the configuration: it is now at revision {exc.current}, "
        f"and this page was loaded at revision {exc.expected}. Reload to see the current "
        f"version before you change it."
    )


def store_down_message(exc: Exception) -> str:
    log.warning("dashboard: the policy store failed: %s: %s", type(exc).__name__, exc)
    return (
        f"The policy store is unavailable ({type(exc).__name__}); nothing was saved. "
        f"See the server log."
    )


READ_ONLY = (
    "This gateway serves its configuration file without a database: routes and providers "
    "are read-only here."
)


def parse_revision(value: object) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


def with_status(template: Template, status: int) -> Template:
    template.status_code = status
    return template


def redirect(request: Req, url: str) -> Response[Any]:
    """Where a successful write goes: htmx follows ``HX-Redirect`` (a 3xx would be
    followed by its XHR and swapped into the form); a plain form post gets a 303."""
    if is_htmx(request):
        return Response(b"", media_type=MediaType.HTML, headers={"HX-Redirect": url})
    return Redirect(url, status_code=303)


def notice(
    request: Req, message: str, status: int, *, back: str = ROUTES, active: str = "routes"
) -> Template:
    """An error of a button (delete, roll back): for htmx the notice swapped in above
    the list (``#page-notice``); for a plain post or a page, a page saying it."""
    if is_htmx(request):
        return with_status(fragment("_route_notice.html", message=message, error=True), status)
    return with_status(
        page(request, "routes_error.html", active, message=message, back=back), status
    )


async def wrote(request: Req, result: WriteResult) -> None:
    """Serve the revision just written before answering, as the admin API does."""
    r = reloader(request)
    if r is not None:
        await r.wrote(result)


def _unavailable(request: Req, exc: Exception) -> Response[Any]:
    """A page whose store could not be read: a 503 saying so, never a bare 500."""
    if isinstance(exc, ConfigError):
        message = f"The stored configuration cannot be read: {exc}"
    else:
        message = store_down_message(exc).replace("; nothing was saved", "")
    path = request.url.path
    active = "providers" if path.startswith("/admin/providers") else "routes"
    return notice(request, message, 503, back="/admin", active=active)


UNAVAILABLE: ExceptionHandlersMap = {
    SQLAlchemyError: _unavailable,
    OSError: _unavailable,
    ConfigError: _unavailable,
}
"""Exception handlers of the GET pages that read the store."""


class Current(NamedTuple):
    """The configuration the pages show: the store's current revision, or the file."""

    revision: int
    config: GatewayConfig
    editable: bool


async def current(request: Req) -> Current:
    s = store(request)
    if s is None:
        gw = gateway(request)
        return Current(gw.table.revision, gw.config, False)
    revision, config = await s.load()
    return Current(revision, config, True)


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key path, value)`` of a table's plain data, nested tables by key."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def show_value(value: Any) -> str:
    """A value as the form shows it: ``8`` for 8.0, never ``None``."""
    if value is None:
        return ""
    if isinstance(value, float):
        text = repr(value)
        return text.removesuffix(".0")
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


# --------------------------------------------------------------------------------------
# The route form.


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


@get("/routes", exception_handlers=UNAVAILABLE)
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


@get("/routes/{name:str}/edit", exception_handlers=UNAVAILABLE)
async def edit_route(request: Req) -> Template:
    name: str = request.path_params["name"]
    now = await current(request)
    if not now.editable:
        return _read_only(request)
    policy = now.config.routes.get(name)
    if policy is None:
        return notice(request, f"There is no route named {name!r}.", 404)
    return _form_response(
        request, RouteForm.of(name, policy, creating=False, revision=now.revision)
    )


@post("/routes/{name:str}/edit", status_code=200)
async def update_route(request: Req) -> Response[Any]:
    return await _save(request, request.path_params["name"])


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


# --------------------------------------------------------------------------------------
# Revisions.


class DiffLine(NamedTuple):
    sign: str
    """``+`` added, ``-`` removed."""
    text: str


@dataclass(frozen=True)
class DiffEntry:
    label: str
    """``route chat``, ``provider mock``, ``defaults``."""
    action: str
    lines: list[DiffLine]


@dataclass(frozen=True)
class RevisionView:
    id: int
    created_at: Any
    actor: str
    summary: str
    diff: list[DiffEntry]
    error: str | None = None


def _shown(value: Any, path: str = "") -> str:
    """A value as the diff shows it; header values (often credentials) as ``•••``."""
    if value is None:
        return "(unset)"
    if path == "headers" or path.startswith("headers."):
        value = {k: "•••" for k in value} if isinstance(value, dict) else "•••"
    return msgspec.json.encode(value).decode()


def revision_diff(old: GatewayConfig, new: GatewayConfig) -> list[DiffEntry]:
    """What changed from ``old`` to ``new``, field by field (`server.store.diff`). An
    added or removed table lists the fields it sets apart from their defaults (and its
    targets or kind), which is what its author wrote."""
    entries = []
    for change in diff_configs(old, new).changes:
        lines: list[DiffLine] = []
        if change.action == "change":
            for f in change.fields:
                lines.append(DiffLine("-", f"{f.path} = {_shown(f.old, f.path)}"))
                lines.append(DiffLine("+", f"{f.path} = {_shown(f.new, f.path)}"))
        else:
            side = new if change.action == "add" else old
            table = getattr(side, change.section)[change.name]
            defaults = dict(flatten(canonical(type(table)())))
            sign = "+" if change.action == "add" else "-"
            lines = [
                DiffLine(sign, f"{p} = {_shown(v, p)}")
                for p, v in flatten(canonical(table))
                if p in ("targets", "kind") or defaults.get(p, ...) != v
            ]
        entries.append(DiffEntry(change.label, change.action, lines))
    return entries


async def _config_at(s: PolicyStore, revision: int) -> GatewayConfig:
    if revision < 1:
        return GatewayConfig()
    try:
        return await s.config_at(revision)
    except NotFound:  # before the first revision kept
        return GatewayConfig()


@get("/revisions", exception_handlers=UNAVAILABLE)
async def revisions_page(request: Req) -> Template:
    s = store(request)
    if s is None:
        return notice(request, READ_ONLY + " There is no revision history.", 404)
    limit = parse_revision(request.query_params.get("limit")) or 20
    limit = min(max(limit, 1), 200)
    infos = await s.revisions(limit)
    configs: dict[int, GatewayConfig] = {}
    views = []
    for info in infos:
        try:
            for rev in (info.id, info.id - 1):
                if rev not in configs:
                    configs[rev] = await _config_at(s, rev)
            diff, error = revision_diff(configs[info.id - 1], configs[info.id]), None
        except ConfigError as exc:  # recorded by an older schema
            diff, error = [], f"cannot be shown: {exc}"
        views.append(RevisionView(info.id, info.created_at, info.actor, info.summary, diff, error))
    q = request.query_params
    done = None
    if q.get("rolled_back"):
        done = (
            f"Nothing changed: revision {q['rolled_back']} is the current configuration."
            if q.get("unchanged")
            else f"Rolled back to revision {q['rolled_back']}: revision {q.get('revision')} "
            f"is served."
        )
    return page(
        request,
        "revisions.html",
        "revisions",
        revisions=views,
        current_revision=infos[0].id if infos else 0,
        limit=limit,
        more=len(infos) == limit,
        notice=done,
    )


@post("/revisions/{revision:int}/rollback", status_code=200)
async def rollback(request: Req) -> Response[Any]:
    """What ``POST /admin/api/revisions/{id}/rollback`` does: the configuration of that
    revision restored as a new revision, served before answering."""
    revision: int = request.path_params["revision"]
    s = store(request)
    if s is None:
        return _read_only(request)
    form = await request.form()
    expected = parse_revision(form.get("expected_revision"))
    try:
        result = await s.rollback(revision, actor=ACTOR, expected_revision=expected)
    except ConflictError as exc:
        return notice(request, conflict_message(exc), 409, back=REVISIONS)
    except NotFound:
        return notice(request, f"There is no revision {revision}.", 404, back=REVISIONS)
    except ConfigError as exc:
        return notice(request, f"Revision {revision} cannot be restored: {exc}", 422)
    except STORE_DOWN as exc:
        return notice(request, store_down_message(exc), 503, back=REVISIONS)
    await wrote(request, result)
    query = {"rolled_back": str(revision), "revision": str(result.revision)}
    if not result.written:
        query["unchanged"] = "1"
    return redirect(request, f"{REVISIONS}?{urlencode(query)}")


HANDLERS: list[Any] = [
    routes_page,
    new_route,
    create_route,
    route_targets,
    edit_route,
    update_route,
    delete_route,
    revisions_page,
    rollback,
]
