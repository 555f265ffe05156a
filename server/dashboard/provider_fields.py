"""The fields of a provider's form, read from its kind's config Struct.

A provider's form has the fields of its kind's config Struct (`providers.config`
``ProviderConfig``), read from the Struct itself, so a field added to a kind appears in
its form without a change here. Each field's type picks its widget: headers are
``key=value`` lines, lists one item a line, and a nested table (``prices``) JSON.
"""

from __future__ import annotations

from typing import Any, NamedTuple, get_args

import msgspec

from providers.config import ProviderConfig
from server.dashboard.forms import show_value

__all__ = ["FIRST_KIND", "KINDS", "MASKED", "SPECS", "FieldSpec", "text_of"]

MASKED = "••••••"
"""What a header's value shows as in the form; saved as it is, it keeps the stored value."""

KINDS: dict[str, type[msgspec.Struct]] = {
    str(cls.__struct_config__.tag): cls for cls in get_args(ProviderConfig)
}
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
    "headers": (
        "Extra headers",
        f"One key=value a line, sent with every request; a value shown as {MASKED} is kept.",
    ),
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

    @property
    def multiline(self) -> bool:
        """Typed in a textarea."""
        return self.widget in ("pairs", "lines", "json")

    @property
    def css(self) -> str:
        """The classes of the field's box: a textarea spans the form's width."""
        if self.multiline:
            return "field wide"
        return "field check-field" if self.widget == "check" else "field"

    @property
    def rows(self) -> int:
        """A textarea's height."""
        return 4 if self.widget == "json" else 3

    @property
    def placeholder(self) -> str:
        if self.widget == "pairs":
            return "X-Header=value"
        return "" if self.multiline else self.default


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


def text_of(spec: FieldSpec, value: Any) -> str:
    """A stored value as its form field shows it."""
    if spec.widget == "check":
        return "true" if value else ""
    if value is None:
        return ""
    if spec.widget == "pairs":  # header values may be secrets: never shown, kept as they are
        return "\n".join(f"{k}={MASKED}" for k in value)
    if spec.widget == "lines":
        return "\n".join(str(v) for v in value)
    if spec.widget == "json":
        return msgspec.json.format(msgspec.json.encode(value), indent=2).decode() if value else ""
    return show_value(value)
