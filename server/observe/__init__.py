"""Observability: what the engine's events leave behind once a response is sent.

Both are `server.core.gateway.Observer`s (called with every event batch, never blocking):

- `metrics`: `Metrics`, Prometheus counters and histograms in a registry of its own,
  rendered for ``GET /metrics``;
- `request_log`: `RequestLogWriter`, one `server.store.models.RequestLog` row per
  finished request, written in batches by a background task through a bounded queue.
"""

from __future__ import annotations

from server.observe.metrics import Metrics, RequestLogStats
from server.observe.request_log import RequestLogWriter, row_of

__all__ = ["Metrics", "RequestLogStats", "RequestLogWriter", "row_of"]
