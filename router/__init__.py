"""The llmgate routing engine: pure logic over the `Provider` protocol.

Imports only the standard library and msgspec; time and randomness come in as
arguments.
"""

from router.engine import Engine
from router.errors import *  # noqa: F403
from router.errors import __all__ as _errors
from router.events import *  # noqa: F403
from router.events import __all__ as _events
from router.policy import BreakerPolicy, RoutePolicy, Target, parse_target
from router.provider import AttemptOptions, Provider, ProviderRequest
from router.table import ResolvedRoute, RoutingTable

__all__ = [
    "AttemptOptions",
    "BreakerPolicy",
    "Engine",
    "Provider",
    "ProviderRequest",
    "ResolvedRoute",
    "RoutePolicy",
    "RoutingTable",
    "Target",
    "parse_target",
    *_errors,
    *_events,
]
