"""What every HTTP adapter does, over the real client (both transports) and each
adapter's real loopback fake upstream.

Each test runs once per kit in `tests.providers._kits.KITS`; a wire format's own
behaviour (request translation, stop-reason maps, its error codes) is tested in its
own ``test_<kind>_adapter.py``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from providers import Upstream, build_provider, decode_config
from providers._adapter import HTTPAdapter
from router.engine import Engine
from router.errors import (
    AuthenticationFailed,
    ConfigError,
    ConnectFailed,
    ContextLengthExceeded,
    InvalidRequest,
    MalformedResponse,
    ModelNotFound,
    ProviderError,
    RateLimited,
    StreamInterrupted,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from router.events import (
    Chunk,
    Event,
    Failed,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from router.policy import RoutePolicy
from router.provider import AttemptOptions, ProviderRequest
from router.table import RoutingTable
from tests.fakes.openai_upstream import FakeUpstream, Reset, Status
from tests.providers._kits import KEY, KITS, Broken, InBand, Kit

MESSAGES = [{"role": "user", "content": "Say hello"}]
OPTIONS = AttemptOptions(connect_timeout_s=2.0)
TEXT = ["The quick ", "brown fox ", "jumps"]
"""A stream that breaks after its first two pieces delivered ``BEFORE``."""
BEFORE = "The quick brown fox "


@pytest.fixture(params=KITS, ids=lambda kit: kit.id)
def kit(request: pytest.FixtureRequest) -> Kit:
    k: Kit = request.param
    return k


@pytest.fixture
def upstream(kit: Kit) -> Iterator[FakeUpstream]:
    with kit.fake() as fake:
        yield fake


@pytest.fixture
def provider(kit: Kit, client: Upstream, upstream: FakeUpstream) -> HTTPAdapter[Any]:
    return kit.provider(client, upstream.base_url)


async def collect(
    provider: HTTPAdapter[Any],
    model: str,
    *,
    into: list[Chunk] | None = None,
    options: AttemptOptions = OPTIONS,
) -> list[Chunk]:
    """Every chunk; also appended to ``into`` as they arrive, to see what came before a
    failure."""
    chunks: list[Chunk] = [] if into is None else into
    async for batch in provider.stream(model, ProviderRequest(MESSAGES, {}), options):
        assert batch, "no empty batches"
        chunks.extend(batch)
    return chunks


def text_of(chunks: list[Chunk] | list[Event]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))


# --- answers --------------------------------------------------------------------------


async def test_streams_text_deltas_then_finish_then_usage(
    kit: Kit, provider: HTTPAdapter[Any], upstream: FakeUpstream
) -> None:
    upstream.script(kit.model, kit.answer(["Hel", "lo", ", world"], 0.001))
    chunks = await collect(provider, kit.model)
    assert text_of(chunks) == "Hello, world"
    assert chunks[-2:] == [Finish("stop"), Usage(10, 3, 13)]


async def test_streams_tool_calls_with_ids_names_and_arguments(
    kit: Kit, provider: HTTPAdapter[Any], upstream: FakeUpstream
) -> None:
    behaviour, calls = kit.tool_calls([("get_weather", {"city": "Paris"}), ("get_time", {})])
    upstream.script(kit.model, behaviour)
    chunks = await collect(provider, kit.model)
    deltas = [c for c in chunks if isinstance(c, ToolCallDelta)]
    assert {d.index for d in deltas} == {0, 1}
    rebuilt = [
        (
            next(d.id for d in deltas if d.index == i and d.id),
            next(d.name for d in deltas if d.index == i and d.name),
            "".join(d.arguments for d in deltas if d.index == i),
        )
        for i in range(len(calls))
    ]
    assert rebuilt == calls
    if kit.arguments_in_pieces:
        assert len(deltas) > len(calls), "arguments arrive in several pieces"
    else:
        assert len(deltas) == len(calls), "each call arrives whole"
    assert chunks[-2:] == [Finish("tool_calls"), Usage(10, 2, 12)]


async def test_reasoning_is_reasoning_deltas_not_answer_text(
    kit: Kit, provider: HTTPAdapter[Any], upstream: FakeUpstream
) -> None:
    behaviour, reasoning = kit.reasoning(["The user", " asks."], ["Paris."])
    upstream.script(kit.model, behaviour)
    chunks = await collect(provider, kit.model)
    assert [c for c in chunks if isinstance(c, ReasoningDelta)] == reasoning
    assert text_of(chunks) == "Paris."
    order = [type(c) for c in chunks if isinstance(c, ReasoningDelta | TextDelta)]
    assert order == [ReasoningDelta] * len(reasoning) + [TextDelta], "reasoning comes first"


async def test_many_concurrent_streams_each_get_their_own_answer(
    kit: Kit, provider: HTTPAdapter[Any], upstream: FakeUpstream
) -> None:
    for i in range(40):
        upstream.script(f"m{i}", kit.answer(["answer ", f"{i}"], 0.005))
    results = await asyncio.gather(*(collect(provider, f"m{i}") for i in range(40)))
    assert [text_of(r) for r in results] == [f"answer {i}" for i in range(40)]
    assert 1 < upstream.connections <= 40


# --- the connection and the request ---------------------------------------------------


async def test_reuses_the_connection_for_consecutive_requests(
    kit: Kit, provider: HTTPAdapter[Any], upstream: FakeUpstream
) -> None:
    upstream.script(kit.model, kit.answer(["one"], 0.0))
    for _ in range(3):
        await collect(provider, kit.model)
    assert upstream.connections == 1


async def test_sends_the_key_from_the_env_mapping_and_the_configured_headers(
    kit: Kit, client: Upstream, upstream: FakeUpstream
) -> None:
    provider = kit.provider(client, upstream.base_url, headers={"x-team": "search"})
    upstream.script(kit.model, kit.answer(["ok"], 0.0))
    await collect(provider, kit.model)
    [headers] = upstream.headers_for(kit.model)
    assert headers[kit.key_header] == kit.key_sent
    assert KEY not in upstream.paths[0], "the key never goes into the URL"
    assert headers["x-team"] == "search"
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "text/event-stream"


async def test_sends_no_key_when_the_key_variable_is_unset(
    kit: Kit, client: Upstream, upstream: FakeUpstream
) -> None:
    upstream.script(kit.model, kit.answer(["ok"], 0.0))
    await collect(kit.provider(client, upstream.base_url, env={}), kit.model)
    assert kit.key_header not in upstream.headers[0]


# --- failures before the first token --------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "error", "retry_after"),
    [
        pytest.param(
            Status(429, headers={"retry-after": "7"}), RateLimited, 7.0, id="429-retry-after"
        ),
        pytest.param(
            Status(429, headers={"retry-after-ms": "250"}),
            RateLimited,
            0.25,
            id="429-retry-after-ms",
        ),
        pytest.param(Status(429), RateLimited, None, id="429"),
        pytest.param(Status(500), UpstreamUnavailable, None, id="500"),
        pytest.param(Status(503, headers={"retry-after": "2"}), UpstreamUnavailable, 2.0, id="503"),
        pytest.param(Status(529), UpstreamUnavailable, None, id="529-overloaded"),
        pytest.param(Status(401), AuthenticationFailed, None, id="401"),
        pytest.param(Status(403), AuthenticationFailed, None, id="403"),
        pytest.param(Status(404), ModelNotFound, None, id="404"),
        pytest.param(Status(413), ContextLengthExceeded, None, id="413-request-too-large"),
        pytest.param(Status(400), InvalidRequest, None, id="400"),
        pytest.param(
            Status(400, {"detail": "not shaped like any API"}),
            InvalidRequest,
            None,
            id="400-foreign-body",
        ),
    ],
)
async def test_maps_each_error_status_to_one_error_type(
    kit: Kit,
    provider: HTTPAdapter[Any],
    upstream: FakeUpstream,
    behaviour: Status,
    error: type[ProviderError],
    retry_after: float | None,
) -> None:
    upstream.script(kit.model, behaviour)
    with pytest.raises(ProviderError) as info:
        await collect(provider, kit.model)
    assert type(info.value) is error
    assert info.value.provider == kit.id
    assert info.value.upstream_status == behaviour.code
    assert info.value.retry_after == retry_after
    assert f"HTTP {behaviour.code}" in str(info.value)


async def test_error_message_carries_the_upstream_message(
    kit: Kit, provider: HTTPAdapter[Any], upstream: FakeUpstream
) -> None:
    upstream.script(kit.model, kit.error(400, "temperature is out of range"))
    with pytest.raises(InvalidRequest, match="temperature is out of range"):
        await collect(provider, kit.model)


async def test_connection_reset_before_headers_is_connect_failed(
    kit: Kit, provider: HTTPAdapter[Any], upstream: FakeUpstream
) -> None:
    upstream.script(kit.model, Reset())
    with pytest.raises(ConnectFailed):
        await collect(provider, kit.model)


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_connect_failed(
    kit: Kit, client: Upstream, closed_port: int
) -> None:
    provider = kit.provider(client, f"http://127.0.0.1:{closed_port}{kit.base_path}")
    with pytest.raises(ConnectFailed):
        await collect(provider, kit.model)


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full: the kernel drops new SYNs, so a connect
    attempt hangs until the client's connect timeout (Linux loopback behaviour)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


async def test_connect_timeout_is_upstream_timeout_in_the_connect_phase(
    kit: Kit, client: Upstream, full_backlog: int
) -> None:
    provider = kit.provider(client, f"http://127.0.0.1:{full_backlog}{kit.base_path}")
    with pytest.raises(UpstreamTimeout) as info:
        await collect(provider, kit.model, options=AttemptOptions(connect_timeout_s=0.2))
    assert info.value.phase == "connect"


# --- failures after the first token ---------------------------------------------------

BROKEN: list[tuple[Broken, type[ProviderError]]] = [
    ("cut", StreamInterrupted),
    ("no_end", StreamInterrupted),
    ("malformed", MalformedResponse),
]


async def _fails_after_the_text_before_it(
    kit: Kit,
    provider: HTTPAdapter[Any],
    upstream: FakeUpstream,
    behaviour: Any,
    error: type[ProviderError],
) -> None:
    upstream.script(kit.model, behaviour)
    delivered: list[Chunk] = []
    with pytest.raises(ProviderError) as info:
        await collect(provider, kit.model, into=delivered)
    assert type(info.value) is error
    assert info.value.provider == kit.id
    # Burst: the failure arrives in the same read as the text, which still counts.
    assert text_of(delivered) == BEFORE
    assert not any(isinstance(c, Finish) for c in delivered)


@pytest.mark.parametrize(("how", "error"), BROKEN, ids=[how for how, _ in BROKEN])
@pytest.mark.parametrize("delay_s", [0.0, 0.001], ids=["burst", "paced"])
async def test_a_broken_stream_raises_after_delivering_the_text_before_it(
    kit: Kit,
    provider: HTTPAdapter[Any],
    upstream: FakeUpstream,
    how: Broken,
    error: type[ProviderError],
    delay_s: float,
) -> None:
    behaviour = kit.broken(TEXT, how, 2, delay_s)
    await _fails_after_the_text_before_it(kit, provider, upstream, behaviour, error)


def _in_band_cases() -> list[Any]:
    return [
        pytest.param(kit, stream, error, id=f"{kit.id}-{case}")
        for kit in KITS
        for case, stream, error in kit.in_band
    ]


@pytest.mark.parametrize(("kit", "stream", "error"), _in_band_cases())
@pytest.mark.parametrize("delay_s", [0.0, 0.001], ids=["burst", "paced"])
async def test_an_error_event_raises_its_error_type_after_the_text_before_it(
    kit: Kit,
    provider: HTTPAdapter[Any],
    upstream: FakeUpstream,
    stream: InBand,
    error: type[ProviderError],
    delay_s: float,
) -> None:
    behaviour = stream(TEXT, 2, delay_s)
    await _fails_after_the_text_before_it(kit, provider, upstream, behaviour, error)


async def test_a_stream_that_stalls_is_ended_by_the_engine_stall_timeout(
    kit: Kit, provider: HTTPAdapter[Any], upstream: FakeUpstream
) -> None:
    upstream.script(kit.model, kit.broken(TEXT, "stall", 1, 0.0))
    policy = RoutePolicy(targets=[f"{kit.id}/{kit.model}"], stall_timeout_s=0.2, max_retries=0)
    engine = Engine(clock=time.monotonic, rng=lambda: 0.0)
    table = RoutingTable({kit.id: provider}, {"r": policy})
    request = ProviderRequest(MESSAGES, {})
    events = [
        e async for batch in engine.stream(table, "r", request, request_id="t") for e in batch
    ]
    assert text_of(events) == "The quick "
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert isinstance(failed.error, UpstreamTimeout)
    assert failed.error.phase == "stall"
    assert failed.partial


# --- configuration and capabilities ---------------------------------------------------


def test_its_kind_table_decodes_and_builds_this_adapter(kit: Kit, client: Upstream) -> None:
    config = decode_config({"providers": {"p": {"kind": kit.id, **kit.example}}})
    assert config.providers["p"] == kit.config(**kit.example)
    assert type(build_provider("p", config.providers["p"], client, {})) is kit.adapter
    with pytest.raises(ConfigError, match=r"providers\.p"):
        decode_config({"providers": {"p": {"kind": kit.id, "no_such_key": 1}}})


def test_prefill_ok_is_the_kinds_default_and_follows_supports_prefill(
    kit: Kit, client: Upstream
) -> None:
    assert kit.provider(client, "http://unused").prefill_ok(kit.model) is kit.prefill
    flipped = kit.provider(client, "http://unused", supports_prefill=not kit.prefill)
    assert flipped.prefill_ok(kit.model) is (not kit.prefill)
