"""The typed errors every repository raises; all derive from RepositoryError."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class RepositoryError(Exception):
    """Base class for errors raised by repositories."""


class NotFoundError(RepositoryError):
    """The row does not exist, is soft-deleted, or the key is malformed."""

    def __init__(self, entity: str, key: object) -> None:
        super().__init__(f"{entity} {key!r} does not exist")
        self.entity = entity
        self.key = key


class ConflictError(RepositoryError):
    """A unique rule was violated; `fields` names the columns that clash."""

    def __init__(
        self,
        message: str,
        *,
        fields: Sequence[str] = (),
        constraint: str | None = None,
        with_deleted_row: bool = False,
    ) -> None:
        super().__init__(message)
        self.fields = tuple(fields)
        self.constraint = constraint
        self.with_deleted_row = with_deleted_row


class ValidationError(RepositoryError):
    """Input broke a rule (CHECK, NOT NULL, foreign key, type); `errors` maps field → messages."""

    def __init__(self, errors: Mapping[str, Sequence[str]], message: str | None = None) -> None:
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in errors.items()}
        summary = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.errors.items())
        super().__init__(message or f"invalid data ({summary})")


class InvalidQueryError(RepositoryError):
    """A filter, sort, page or cursor the repository refuses; `errors` maps field → messages."""

    def __init__(self, errors: Mapping[str, Sequence[str]] | str) -> None:
        if isinstance(errors, str):
            errors = {"__all__": [errors]}
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in errors.items()}
        summary = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.errors.items())
        super().__init__(f"invalid query ({summary})")


class StaleObjectError(RepositoryError):
    """The row's version moved since the caller read it (optimistic locking)."""

    def __init__(
        self, entity: str, key: object, expected_version: int, actual_version: int | None = None
    ) -> None:
        detail = f", now {actual_version}" if actual_version is not None else ""
        super().__init__(f"{entity} {key!r} is no longer at version {expected_version}{detail}")
        self.entity = entity
        self.key = key
        self.expected_version = expected_version
        self.actual_version = actual_version


class TransactionConflictError(RepositoryError):
    """A serialization failure or deadlock (SQLSTATE 40001/40P01) that was not retried
    away: every attempt of `transactional` failed, or it happened inside a transaction
    the caller opened (`attempts` 1; the caller's outermost `transactional`, if any,
    retries it, as its `__cause__` keeps the SQLSTATE)."""

    def __init__(self, attempts: int) -> None:
        super().__init__(f"transaction conflicted on all {attempts} attempts")
        self.attempts = attempts


class QueryTimeoutError(RepositoryError):
    """A statement or lock timeout fired; `kind` is "statement" or "lock"."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(message or f"{kind} timeout")
        self.kind = kind


class DatabaseUnavailableError(RepositoryError):
    """The connection was lost or none could be obtained (pool exhausted, server down)."""


class ReadOnlyDatabaseError(RepositoryError):
    """A write reached a read-only server or transaction (SQLSTATE 25006): a standby,
    `default_transaction_read_only`, or `atomic(read_only=True)`."""


class TransactionUsageError(RepositoryError):
    """A transaction option that cannot apply where it was asked for (e.g. a different
    isolation level, or read-only, inside an already running transaction)."""
