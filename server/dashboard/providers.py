"""Dashboard: the providers, which routes use each, and forms to add, edit and delete
them.

A provider's form has the fields of its kind's config Struct (`providers.config`
``ProviderConfig``), read from the Struct itself, so a field added to a kind appears in
its form without a change here; switching the kind fetches that kind's fields
(``hx-get``). Values decode as the route form's do (`server.dashboard.routes`): each
field through the Struct on its own (``strict=False``, from the form's strings), then
the whole provider, then `Gateway.check_provider` for what only building it rejects (a
``base_url`` httpx cannot parse), then the store's validation of the whole
configuration. Errors are shown next to their field with every typed value kept.

Headers are ``key=value`` lines, lists one item a line, and a nested table (``prices``)
JSON. An empty optional field is unset (``api_key_env`` empty: no key is sent); any
other empty field takes its default.

API keys are never stored: a provider names the environment variable holding its key
(``api_key_env``), and the pages only say whether this gateway's environment has it set,
never its value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple, get_args
from urllib.parse import quote, urlencode

import msgspec
from litestar import Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.response import Template

from providers.config import GatewayConfig, ProviderConfig
from router.errors import ConfigError
from server.dashboard.common import Req, fragment, gateway, is_htmx, page, store
from server.dashboard.forms import (
    ACTOR,
    READ_ONLY,
    STORE_DOWN,
    UNAVAILABLE,
    config_message,
    conflict_message,
    current,
    error_field,
    field_of,
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
from server.store import WriteResult
from server.store.models import NAME_LENGTH
from server.store.schemas import canonical

__all__ = ["HANDLERS", "ProviderForm"]

PROVIDERS = "/admin/providers"
KINDS: dict[str, type[msgspec.Struct]] = {
    str(cls.__struct_config__.tag): cls for cls in get_args(ProviderConfig)
}
NAME = re.compile(r"[A-Za-z0-9_.-]+")
"""What the provider part of a target (``provider/model``) may be."""
SHOWN_APART = ("base_url", "api_key_env", "headers")
"""Fields the list shows in their own columns; the others are its options summary."""

LABELS: dict[str, tuple[str, str]] = {
    "base_url": ("Base URL", ""),
    "api_key_env": (
        "API key variable",
        "The environment variable holding the key; each gateway process reads it.",
    ),
    "supports_prefill": (
        "Supports assistant prefill",
        "It continues a final assistant message (stream fallback mode prefill).",
    ),
    "stream_usage": ("Ask for usage in the stream", "stream_options.include_usage"),
    "headers": ("Extra headers", "One key=value a line, sent with every request."),
    "anthropic_version": ("anthropic-version header", ""),
    "default_max_tokens": ("Default max_tokens", "Sent when a request names none."),
    "no_prefill_models": ("Models without prefill", "Model name prefixes, one a line."),
    "api_version": ("API version", ""),
    "tokens": ("Answer length (words)", "max_tokens in a request lowers it."),
    "text": ("Fixed answer", "Instead of the generated one; empty: generated."),
    "token_latency_ms": ("Latency per word (ms)", ""),
    "first_token_latency_ms": ("First token latency (ms)", ""),
    "fail_status": ("Fail with HTTP status", "Before the first token; empty: never."),
    "fail_times": ("…for this many requests", "Then recover; empty: always."),
    "retry_after_s": ("Retry-After sent with a failure (s)", ""),
    "cut_after": ("Cut the stream after (words)", "Empty: never."),
    "stall_after": ("Go silent after (words)", "Until the gateway gives up; empty: never."),
    "overlap_words": ("Words a user-turn continuation repeats", ""),
    "prices": (
        "Prices (JSON)",
        'USD per million tokens by model ("*": every other), e.g. '
        '{"m": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}',
    ),
}


class FieldSpec(NamedTuple):
    """How one field of a kind's Struct is shown and read."""

    name: str
    widget: str
    """``check``, ``select``, ``number``, ``text``, ``pairs`` (key=value lines),
    ``lines`` (one item a line) or ``json``."""
    optional: bool
    default: str
    options: tuple[str, ...]
    hint: str
    """The range a number must be in, e.g. ``1 to 100000``."""
    label: str
    help: str


def _range(kind: Any) -> str:
    low = f"> {kind.gt}" if kind.gt is not None else (f"≥ {kind.ge}" if kind.ge is not None else "")
    high = (
        f"< {kind.lt}" if kind.lt is not None else (f"≤ {kind.le}" if kind.le is not None else "")
    )
    return ", ".join(part for part in (low, high) if part)


def _spec(f: msgspec.inspect.Field) -> FieldSpec:
    kind, optional = f.type, False
    if isinstance(kind, msgspec.inspect.UnionType):
        others = [t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)]
        optional = len(others) < len(kind.types)
        kind = others[0] if len(others) == 1 else kind
    default = f.default_factory() if f.default is msgspec.NODEFAULT else f.default
    options: tuple[str, ...] = ()
    hint = ""
    if isinstance(kind, msgspec.inspect.BoolType):
        widget = "check"
    elif isinstance(kind, msgspec.inspect.LiteralType):
        widget, options = "select", tuple(str(v) for v in kind.values)
    elif isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        widget, hint = "number", _range(kind)
    elif isinstance(kind, msgspec.inspect.StrType):
        widget = "text"
    elif isinstance(kind, msgspec.inspect.DictType) and isinstance(
        kind.value_type, msgspec.inspect.StrType
    ):
        widget = "pairs"
    elif isinstance(kind, msgspec.inspect.ListType) and isinstance(
        kind.item_type, msgspec.inspect.StrType
    ):
        widget = "lines"
    else:
        widget = "json"
    label, help = LABELS.get(f.name, (f.name.replace("_", " ").capitalize(), ""))
    shown = "" if default in (None, {}, []) else show_value(default)
    return FieldSpec(f.name, widget, optional, shown, options, hint, label, help)


def _specs(cls: type[msgspec.Struct]) -> tuple[FieldSpec, ...]:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return tuple(_spec(f) for f in info.fields)


SPECS = {kind: _specs(cls) for kind, cls in KINDS.items()}
FIRST_KIND = "mock" if "mock" in KINDS else next(iter(KINDS))


def _text_of(spec: FieldSpec, value: Any) -> str:
    """A stored value as its form field shows it."""
    if spec.widget == "check":
        return "true" if value else ""
    if value is None:
        return ""
    if spec.widget == "pairs":
        return "\n".join(f"{k}={v}" for k, v in value.items())
    if spec.widget == "lines":
        return "\n".join(str(v) for v in value)
    if spec.widget == "json":
        return msgspec.json.format(msgspec.json.encode(value), indent=2).decode() if value else ""
    return show_value(value)


@dataclass
class ProviderForm:
    """A provider form's values as typed, its errors by field, and the revision it was
    loaded at."""

    name: str
    creating: bool
    kind: str
    values: dict[str, str]
    expected_revision: int | None
    errors: dict[str, str] = field(default_factory=dict)
    banner: str | None = None

    @property
    def specs(self) -> tuple[FieldSpec, ...]:
        return SPECS[self.kind]

    @classmethod
    def of(cls, name: str, config: Any, *, creating: bool, revision: int) -> ProviderForm:
        data = canonical(config)
        kind = str(data.pop("kind"))
        values = {s.name: _text_of(s, data.get(s.name)) for s in SPECS[kind]}
        return cls(name, creating, kind, values, revision)

    @classmethod
    def blank(cls, kind: str, *, revision: int | None) -> ProviderForm:
        return cls.of("", KINDS[kind](), creating=True, revision=revision or 0)

    @classmethod
    def read(cls, form: FormMultiDict, *, name: str | None) -> ProviderForm:
        kind = str(form.get("kind") or "")
        errors: dict[str, str] = {}
        if kind not in KINDS:
            errors["kind"] = f"Invalid value {kind!r}; expected one of {', '.join(KINDS)}"
            kind = FIRST_KIND
        values = {}
        for spec in SPECS[kind]:
            raw = str(form.get(spec.name) or "")
            values[spec.name] = ("true" if raw else "") if spec.widget == "check" else raw
        return cls(
            name=str(form.get("name") or "").strip() if name is None else name,
            creating=name is None,
            kind=kind,
            values=values,
            expected_revision=parse_revision(form.get("expected_revision")),
            errors=errors,
        )

    def data(self) -> dict[str, Any]:
        """The provider's table for `msgspec.convert` (``strict=False``); a field that
        cannot be parsed (a header line without ``=``, bad JSON) is left out, with its
        error recorded."""
        data: dict[str, Any] = {"kind": self.kind}
        for spec in self.specs:
            raw = self.values.get(spec.name, "")
            if spec.widget == "check":
                data[spec.name] = raw == "true"
            elif not raw.strip():
                if spec.optional:
                    data[spec.name] = None
            elif spec.widget == "pairs":
                pairs = self._pairs(spec.name, raw)
                if pairs is not None:
                    data[spec.name] = pairs
            elif spec.widget == "lines":
                data[spec.name] = [line.strip() for line in raw.splitlines() if line.strip()]
            elif spec.widget == "json":
                try:
                    data[spec.name] = msgspec.json.decode(raw)
                except msgspec.DecodeError as exc:
                    self.errors.setdefault(spec.name, f"not valid JSON: {exc}")
            else:
                data[spec.name] = raw.strip()
        return data

    def _pairs(self, name: str, raw: str) -> dict[str, str] | None:
        pairs: dict[str, str] = {}
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            key, eq, value = line.partition("=")
            if not eq or not key.strip():
                self.errors.setdefault(name, f"line {n}: expected key=value, not {line.strip()!r}")
                return None
            pairs[key.strip()] = value.strip()
        return pairs

    def check(self, config: GatewayConfig) -> Any:
        """Every field on its own, then the whole provider and whether it can be built;
        the provider's config when all is well, else None (see ``errors``)."""
        if self.creating:
            self._check_name(config)
        data = self.data()
        for key, value in data.items():
            if key != "kind" and key not in self.errors:
                try:
                    msgspec.convert({"kind": self.kind, key: value}, ProviderConfig, strict=False)
                except msgspec.ValidationError as exc:
                    message, path = validation_message(exc, value)
                    self.errors.setdefault(field_of(path) or key, message)
        if self.errors:
            return None
        try:
            provider = msgspec.convert(data, ProviderConfig, strict=False)
        except msgspec.ValidationError as exc:  # every field passed alone: not expected
            message, path = validation_message(exc)
            self.errors[field_of(path) or "kind"] = message
            return None
        return provider

    def _check_name(self, config: GatewayConfig) -> None:
        name = self.name
        if not name:
            self.errors["name"] = "Enter a name: targets name it as provider/model."
        elif len(name) > NAME_LENGTH:
            self.errors["name"] = f"a name must be 1 to {NAME_LENGTH} characters long"
        elif not NAME.fullmatch(name):
            self.errors["name"] = (
                "a provider name may only use letters, digits, '_', '.' and '-': "
                "targets name it as provider/model"
            )
        elif name in config.providers:
            self.errors["name"] = f"a provider named {name!r} already exists: edit it instead"

    def store_error(self, exc: ConfigError) -> None:
        where = error_field(exc, f"providers.{self.name}")
        if where is None or (where == "name" and not self.creating):
            self.banner = str(exc).removeprefix("config: ")
        else:
            self.errors.setdefault(where, config_message(exc))


def _key_status(request: Req, kind: str, values: dict[str, str]) -> str | None:
    """``set`` or ``not set``: whether this gateway's environment has the variable the
    provider's key is read from (None: the kind takes no key). Never the value."""
    spec = next((s for s in SPECS[kind] if s.name == "api_key_env"), None)
    if spec is None:
        return None
    variable = values.get("api_key_env", "").strip() or (None if spec.optional else spec.default)
    if not variable:
        return "no key"
    return "set" if gateway(request).env.get(variable) else "not set"


def _form_response(request: Req, form: ProviderForm, status: int = 200) -> Template:
    context = {
        "form": form,
        "kinds": tuple(KINDS),
        "key_status": _key_status(request, form.kind, form.values),
        "action": f"{PROVIDERS}/new" if form.creating else f"{PROVIDERS}/{quote(form.name)}/edit",
    }
    if is_htmx(request):
        return with_status(fragment("_provider_form.html", **context), status)
    return with_status(page(request, "providers_form.html", "providers", **context), status)


def _notice(request: Req, message: str, status: int) -> Template:
    return notice(request, message, status, back=PROVIDERS, active="providers")


def _done_url(result: WriteResult, **what: str) -> str:
    query = {**what, "revision": str(result.revision)}
    if not result.written:
        query["unchanged"] = "1"
    return f"{PROVIDERS}?{urlencode(query)}"


async def _save(request: Req, name: str | None) -> Response[Any]:
    s = store(request)
    if s is None:
        return _notice(request, READ_ONLY, 409)
    form = ProviderForm.read(await request.form(), name=name)
    status = 422
    try:
        _, config = await s.load()
        provider = form.check(config)
        if provider is not None:
            try:
                gateway(request).check_provider(form.name, provider)
            except ConfigError as exc:
                where = "base_url" if "base_url" in form.values else None
                if where is None:
                    form.banner = config_message(exc)
                else:
                    form.errors[where] = config_message(exc)
                return _form_response(request, form, 422)
            result = await s.put_provider(
                form.name, provider, actor=ACTOR, expected_revision=form.expected_revision
            )
            await wrote(request, result)
            return redirect(request, _done_url(result, saved=form.name))
    except ConflictError as exc:
        form.banner, status = conflict_message(exc), 409
    except ConfigError as exc:
        form.store_error(exc)
    except STORE_DOWN as exc:
        form.banner, status = store_down_message(exc), 503
    return _form_response(request, form, status)


# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderView:
    name: str
    kind: str
    base_url: str | None
    key_env: str | None
    key_status: str | None
    headers: list[str]
    """Header names only: their values may be credentials."""
    options: list[str]
    routes: list[tuple[str, list[str]]]
    """``(route, [models])`` of every route with a target on this provider."""


def _options(config: Any) -> list[str]:
    """The fields that differ from the kind's defaults, except those shown apart."""
    data = canonical(config)
    defaults = canonical(type(config)())
    shown = []
    for key, value in data.items():
        if key == "kind" or key in SHOWN_APART or defaults.get(key) == value:
            continue
        if isinstance(value, dict | list):
            shown.append(f"{key}: {len(value)}")
        elif isinstance(value, str):
            text = value if len(value) <= 40 else value[:39] + "…"
            shown.append(f"{key}={text!r}")
        else:
            shown.append(f"{key}={show_value(value)}")
    return shown


def _view(request: Req, name: str, config: Any, all_config: GatewayConfig) -> ProviderView:
    data = canonical(config)
    kind = str(data["kind"])
    values = {s.name: _text_of(s, data.get(s.name)) for s in SPECS[kind]}
    routes = []
    for route, policy in sorted(all_config.routes.items()):
        models = [t.partition("/")[2] for t in policy.targets if t.partition("/")[0] == name]
        if models:
            routes.append((route, models))
    return ProviderView(
        name=name,
        kind=kind,
        base_url=data.get("base_url"),
        key_env=data.get("api_key_env"),
        key_status=_key_status(request, kind, values),
        headers=sorted(data.get("headers") or {}),
        options=_options(config),
        routes=routes,
    )


@get("/providers", name="providers", exception_handlers=UNAVAILABLE)
async def providers_page(request: Req) -> Template:
    now = await current(request)
    views = [_view(request, n, c, now.config) for n, c in sorted(now.config.providers.items())]
    q = request.query_params
    done = None
    if q.get("unchanged"):
        done = f"Nothing changed: the configuration stays at revision {q.get('revision')}."
    elif q.get("saved") or q.get("deleted"):
        verb, who = ("saved", q["saved"]) if q.get("saved") else ("deleted", q["deleted"])
        done = f"Provider {who!r} {verb}: revision {q.get('revision')} is served."
    return page(request, "providers.html", "providers", providers=views, current=now, notice=done)


@get("/providers/new", exception_handlers=UNAVAILABLE)
async def new_provider(request: Req) -> Template:
    now = await current(request)
    if not now.editable:
        return _notice(request, READ_ONLY, 409)
    kind = str(request.query_params.get("kind") or FIRST_KIND)
    form = ProviderForm.blank(kind if kind in KINDS else FIRST_KIND, revision=now.revision)
    return _form_response(request, form)


@get("/providers/fields")
async def provider_fields(request: Req) -> Template:
    """The fields of another kind, at its defaults, when the kind select changes."""
    kind = str(request.query_params.get("kind") or "")
    form = ProviderForm.blank(kind if kind in KINDS else FIRST_KIND, revision=None)
    return fragment(
        "_provider_fields.html",
        form=form,
        key_status=_key_status(request, form.kind, form.values),
    )


@post("/providers/new", status_code=200)
async def create_provider(request: Req) -> Response[Any]:
    return await _save(request, None)


@get("/providers/{name:str}/edit", exception_handlers=UNAVAILABLE)
async def edit_provider(request: Req) -> Template:
    name: str = request.path_params["name"]
    now = await current(request)
    if not now.editable:
        return _notice(request, READ_ONLY, 409)
    config = now.config.providers.get(name)
    if config is None:
        return _notice(request, f"There is no provider named {name!r}.", 404)
    return _form_response(
        request, ProviderForm.of(name, config, creating=False, revision=now.revision)
    )


@post("/providers/{name:str}/edit", status_code=200)
async def update_provider(request: Req) -> Response[Any]:
    return await _save(request, request.path_params["name"])


@post("/providers/{name:str}/delete", status_code=200)
async def delete_provider(request: Req) -> Response[Any]:
    """Refused by the store while a route names the provider; its message says which."""
    name: str = request.path_params["name"]
    s = store(request)
    if s is None:
        return _notice(request, READ_ONLY, 409)
    form = await request.form()
    try:
        result = await s.delete_provider(
            name, actor=ACTOR, expected_revision=parse_revision(form.get("expected_revision"))
        )
    except ConflictError as exc:
        return _notice(request, conflict_message(exc), 409)
    except NotFound:
        return _notice(request, f"There is no provider named {name!r} any more.", 404)
    except ConfigError as exc:
        return _notice(request, config_message(exc), 422)
    except STORE_DOWN as exc:
        return _notice(request, store_down_message(exc), 503)
    await wrote(request, result)
    return redirect(request, _done_url(result, deleted=name))


HANDLERS: list[Any] = [
    providers_page,
    new_provider,
    provider_fields,
    create_provider,
    edit_provider,
    update_provider,
    delete_provider,
]
