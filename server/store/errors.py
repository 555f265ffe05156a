"""Errors of the policy store, beside `router.errors.ConfigError` for invalid policies.

LLMGateError
 ├── ConfigError          (router.errors) the write would make the configuration invalid
 ├── ConflictError        409: the configuration changed since the revision the writer read
 ├── NotFound             404: no such route, provider or revision
 ├── SchemaNotReady       503: the database is not migrated to this version's schema
 └── DatabaseError        503: the database is unreachable or failed
"""

from __future__ import annotations

from router.errors import LLMGateError

__all__ = ["ConflictError", "DatabaseError", "NotFound", "SchemaNotReady"]


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


class NotFound(LLMGateError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class SchemaNotReady(LLMGateError):
    status = 503
    code = "schema_not_ready"


class DatabaseError(LLMGateError):
    """The database could not be reached or failed a statement."""

    status = 503
    code = "database_error"
