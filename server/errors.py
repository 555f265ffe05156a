"""Every error the HTTP side of llmgate answers with, in one tree.

The root and the engine's errors live in `router.errors`; what is about serving,
storing and administering is here. Each class carries its HTTP status and OpenAI error
``type``/``code``; the doors spell the body in their own shape (OpenAI's, or
Anthropic's on ``/v1/messages``), so no handler picks a status by hand. An error with a
``retry_after`` (seconds) is answered with a ``Retry-After`` header.

    LLMGateError                           (router.errors)
     ├── RequestError                 400  (router.errors) a bad request, naming its field
     │    ├── NoSuchModel             404  (router.errors)
     │    └── ThreadUnsupported       400  (server.api.anthropic.request) tool_runner's thread
     ├── ConfigError                  422  (router.errors) an invalid policy, at its key path
     ├── ProviderError                     (router.errors) every upstream failure
     ├── AuthError                    401  no client key, or an unknown one
     ├── RouteNotAllowed              403  the key may not use that route
     ├── BudgetExceeded               429  a route's or key's budget is spent
     ├── AdminAuthError               401  not the admin key
     ├── AdminDisabled                403  no admin key is configured
     ├── NoPolicyStore                503  serving a file: nothing to edit
     ├── NotFound                     404  no such route, provider, revision or key
     ├── ConflictError                409  the configuration changed since it was read
     ├── KeyNameTaken                 409  a key of that name exists
     ├── SchemaNotReady               503  the database is not migrated to this version
     └── DatabaseError                503  the database is unreachable or failed
"""

from __future__ import annotations

from router.errors import LLMGateError

__all__ = [
    "AdminAuthError",
    "AdminDisabled",
    "AuthError",
    "BudgetExceeded",
    "ConflictError",
    "DatabaseError",
    "KeyNameTaken",
    "NoPolicyStore",
    "NotFound",
    "RouteNotAllowed",
    "SchemaNotReady",
    "retry_after_of",
]


class AuthError(LLMGateError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class RouteNotAllowed(LLMGateError):
    status = 403
    type = "invalid_request_error"
    code = "route_not_allowed"


class BudgetExceeded(LLMGateError):
    """``scope`` names the budget (``route:chat``, ``key:key_...``), ``param`` its limit;
    ``retry_after`` says when its window resets, in seconds."""

    status = 429
    type = "rate_limit_error"
    code = "budget_exceeded"

    def __init__(self, message: str, retry_after: int, param: str, scope: str) -> None:
        super().__init__(message)
        self.param = param
        self.scope = scope
        self.retry_after = retry_after


class AdminAuthError(LLMGateError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_admin_key"


class AdminDisabled(LLMGateError):
    status = 403
    type = "invalid_request_error"
    code = "admin_disabled"


class NoPolicyStore(LLMGateError):
    """The gateway serves its configuration file, without a database to edit."""

    status = 503
    code = "no_policy_store"


class NotFound(LLMGateError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ConflictError(LLMGateError):
    """Optimistic concurrency: someone else wrote a revision since ``expected``."""

    status = 409
    type = "conflict_error"
    code = "revision_conflict"

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"the configuration is at revision {current}, not {expected} as expected: "
            f"someone else changed it; reload and apply your change again"
        )
        self.expected = expected
        self.current = current


class KeyNameTaken(LLMGateError):
    status = 409
    type = "invalid_request_error"
    code = "key_name_taken"


class SchemaNotReady(LLMGateError):
    status = 503
    code = "schema_not_ready"


class DatabaseError(LLMGateError):
    """The database could not be reached or failed a statement."""

    status = 503
    code = "database_error"


def retry_after_of(exc: LLMGateError) -> dict[str, str] | None:
    """The ``Retry-After`` header an error asks for, if any."""
    seconds = getattr(exc, "retry_after", None)
    if seconds is None:
        return None
    return {"retry-after": str(max(int(-(-seconds // 1)), 0))}
