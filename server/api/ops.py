"""Operations: ``GET /healthz`` and ``GET /metrics``."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from server.core.gateway import Gateway
from server.observe import Metrics
from server.version import VERSION

__all__ = ["OPS_HANDLERS"]


@get("/healthz")
async def healthz(gateway: NamedDependency[Gateway]) -> dict[str, Any]:
    """llmgate's version, the revision this process serves and each target's circuit
    breaker."""
    return {
        "status": "ok",
        "version": VERSION,
        "revision": gateway.table.revision,
        "breakers": gateway.engine.breaker_states(),
    }


@get("/metrics")
async def metrics(metrics: NamedDependency[Metrics]) -> Response[bytes]:
    """Prometheus text format: requests, attempts, fallbacks, switches, latencies."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


OPS_HANDLERS = [healthz, metrics]
