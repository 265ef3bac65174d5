"""Transaction scopes: `atomic` (isolation, read-only, timeouts) and retrying `transactional`."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import random
import sys
import time
from collections.abc import Callable
from contextlib import ContextDecorator
from types import TracebackType
from typing import ParamSpec, TypeVar, overload

from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from repositories.core.error_mapping import (
    DATABASE_ERRORS,
    is_retryable,
    raise_typed,
    sqlstate_of,
    translate_errors,
)
from repositories.core.errors import (
    DatabaseUnavailableError,
    RepositoryError,
    TransactionConflictError,
    TransactionUsageError,
)

logger = logging.getLogger("repositories.core.transactions")

P = ParamSpec("P")
R = TypeVar("R")

ISOLATION_LEVELS = {
    "read committed": "READ COMMITTED",
    "repeatable read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}

_MAX_TIMEOUT_MS = 2**31 - 1  # PostgreSQL's limit for both settings

BACKOFF_BASE_SECONDS = 0.02
BACKOFF_MAX_SECONDS = 1.0

Timeout = dt.timedelta | int | None


class Atomic(ContextDecorator):
    """The block behind `atomic()`; use that function rather than this class."""

    def __init__(
        self,
        using: str | None,
        *,
        isolation: str | None,
        read_only: bool,
        statement_timeout: Timeout,
        lock_timeout: Timeout,
    ) -> None:
        self.using = using
        self.isolation = _isolation_sql(isolation)
        self.read_only = bool(read_only)
        self.statement_timeout = _timeout_ms("statement_timeout", statement_timeout)
        self.lock_timeout = _timeout_ms("lock_timeout", lock_timeout)
        # One frame per entry, so the same block object may be entered again inside itself.
        self._frames: list[tuple[transaction.Atomic, BaseDatabaseWrapper, dict[str, str]]] = []

    def _recreate_cm(self) -> Atomic:
        # A decorated function may run in several threads or recursively: a fresh
        # block per call keeps their state apart.
        return Atomic(
            self.using,
            isolation=self.isolation,
            read_only=self.read_only,
            statement_timeout=self.statement_timeout,
            lock_timeout=self.lock_timeout,
        )

    def __enter__(self) -> Atomic:
        connection = transaction.get_connection(self.using)
        outermost = not connection.in_atomic_block
        django_block = transaction.atomic(using=self.using)
        with translate_errors(using=connection.alias):
            if self.isolation or self.read_only:
                self._check_running_transaction(connection)
            # BEGIN: connecting (or a pool checkout that times out) happens here.
            django_block.__enter__()
        try:
            with translate_errors(using=connection.alias):
                if outermost and (self.isolation or self.read_only):
                    self._set_transaction(connection)
                previous = self._set_timeouts(connection)
        except BaseException:
            with translate_errors(using=connection.alias):
                django_block.__exit__(*sys.exc_info())  # ROLLBACK (to the savepoint)
            raise
        # The outermost block's settings end with its transaction; a savepoint's must be
        # put back by hand (SET LOCAL in a savepoint outlives RELEASE).
        self._frames.append((django_block, connection, {} if outermost else previous))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        django_block, connection, restore = self._frames.pop()
        # Callbacks to run even if the COMMIT below is sent but its answer is lost.
        pending = _unknown_outcome_callbacks(connection) if exc_type is None else []
        try:
            self._leave(django_block, connection, restore, (exc_type, exc, tb))
        except DatabaseUnavailableError:
            if pending and not connection.in_atomic_block:
                # The COMMIT may have succeeded: invalidations must not be skipped.
                for callback in pending:
                    callback()
            raise
        if isinstance(exc, DATABASE_ERRORS):
            # A database error raised by the block's own statements leaves typed too.
            raise_typed(exc, using=connection.alias)

    @staticmethod
    def _leave(
        django_block: transaction.Atomic,
        connection: BaseDatabaseWrapper,
        restore: dict[str, str],
        exc_info: tuple[type[BaseException] | None, BaseException | None, TracebackType | None],
    ) -> None:
        with translate_errors(using=connection.alias):
            if not any(exc_info) and restore and not connection.needs_rollback:
                # SET LOCAL in a savepoint outlives RELEASE: put the enclosing values back.
                # (A rollback to the savepoint undoes it by itself.)
                try:
                    _set_config(connection, restore)
                except BaseException:
                    django_block.__exit__(*sys.exc_info())  # ROLLBACK TO SAVEPOINT
                    raise
            # COMMIT (or ROLLBACK) happens here.
            django_block.__exit__(*exc_info)

    def _check_running_transaction(self, connection: BaseDatabaseWrapper) -> None:
        if all(block._from_testcase for block in connection.atomic_blocks):  # type: ignore[attr-defined]
            # No transaction yet (this block opens it), or only the test case's own
            # wrapping one, whose level cannot change any more: refusing would make every
            # such test fail. Tests of isolation use transactional test cases.
            return
        with connection.cursor() as cursor:
            cursor.execute(
                # SQL and setting names are case-insensitive: a change of case is no mutant.
                "SELECT upper(current_setting('transaction_isolation')), "  # pragma: no mutate
                "current_setting('transaction_read_only') = 'on'"  # pragma: no mutate
            )
            current_isolation, current_read_only = cursor.fetchone()
        if self.isolation and self.isolation != current_isolation:
            raise TransactionUsageError(
                f"isolation {self.isolation.lower()!r} requested inside a running "
                f"{current_isolation.lower()!r} transaction; set it on the outermost block"
            )
        if self.read_only and not current_read_only:
            raise TransactionUsageError(
                "read_only requested inside a running read-write transaction; "
                "set it on the outermost block"
            )

    def _set_transaction(self, connection: BaseDatabaseWrapper) -> None:
        modes = [f"ISOLATION LEVEL {self.isolation}"] if self.isolation else []
        if self.read_only:
            modes.append("READ ONLY")  # pragma: no mutate - SQL is case-insensitive
        with connection.cursor() as cursor:
            # Literal values from a whitelist: SET takes no parameters.
            cursor.execute(f"SET TRANSACTION {', '.join(modes)}")

    def _set_timeouts(self, connection: BaseDatabaseWrapper) -> dict[str, str]:
        """SET LOCAL the block's timeouts, if any; return the values they replace."""
        values = {
            name: f"{ms}ms"
            for name, ms in (
                # Setting names are case-insensitive: a change of case is no mutant.
                ("statement_timeout", self.statement_timeout),  # pragma: no mutate
                ("lock_timeout", self.lock_timeout),  # pragma: no mutate
            )
            if ms is not None
        }
        return _set_config(connection, values) if values else {}


@overload
def atomic(
    using: str | None = None,
    *,
    isolation: str | None = None,
    read_only: bool = False,
    statement_timeout: Timeout = None,
    lock_timeout: Timeout = None,
) -> Atomic: ...


@overload
def atomic(using: Callable[P, R]) -> Callable[P, R]: ...


def atomic(
    using: str | Callable[P, R] | None = None,
    *,
    isolation: str | None = None,
    read_only: bool = False,
    statement_timeout: Timeout = None,
    lock_timeout: Timeout = None,
) -> Atomic | Callable[P, R]:
    """Run a block (or, as a decorator, a function) in a transaction; nested → savepoint.

    - `isolation` ("read committed", "repeatable read", "serializable") and `read_only`
      are sent as `SET TRANSACTION`, the first statement of the outermost block. Asked
      inside a running transaction, the same setting is accepted and a different one
      raises `TransactionUsageError` (Django's test-case wrapper transaction excepted).
    - `statement_timeout` / `lock_timeout` (`timedelta` or int milliseconds; 0 disables)
      are `SET LOCAL` for the block; a nested block restores the enclosing values when
      it ends. A timeout that fires raises `QueryTimeoutError` ("statement" / "lock").
    - Invalid options raise `ValueError` at call time.
    """
    if callable(using):
        return atomic()(using)
    return Atomic(
        using,
        isolation=isolation,
        read_only=read_only,
        statement_timeout=statement_timeout,
        lock_timeout=lock_timeout,
    )


def transactional(
    *, isolation: str | None = None, max_attempts: int = 3, using: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the function in a transaction, retrying it whole on serialization failures.

    When it opens the outermost transaction, a serialization failure or deadlock
    (SQLSTATE 40001 / 40P01) rolls back and runs the function again after a jittered,
    growing pause, up to `max_attempts` runs in all; then `TransactionConflictError`
    (the last error as `__cause__`). Any other error propagates at once. Inside an
    enclosing transaction it is a savepoint and never retries: the conflict aborts the
    enclosing transaction, which is the one to retry. `on_commit` callbacks of a failed
    attempt are discarded; those of the successful one run once, after the commit.
    """
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be a positive integer, not {max_attempts!r}")
    _isolation_sql(isolation)

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            if transaction.get_connection(using).in_atomic_block:
                with atomic(using, isolation=isolation):
                    return func(*args, **kwargs)
            for attempt in range(1, max_attempts + 1):
                try:
                    with atomic(using, isolation=isolation):
                        return func(*args, **kwargs)
                except (DatabaseError, RepositoryError) as exc:
                    # Raw or already typed (TransactionConflictError keeps the SQLSTATE
                    # in its cause): a serialization failure or deadlock is retried.
                    if not is_retryable(exc):
                        raise
                    if attempt == max_attempts:
                        # Chained to the database's own error, not to a typed wrapper.
                        cause = exc.__cause__ if isinstance(exc, RepositoryError) else exc
                        raise TransactionConflictError(max_attempts) from cause
                    pause = backoff_seconds(attempt)
                    logger.info(
                        "retrying %s after %s (attempt %d of %d, pause %.3f s)",
                        func.__qualname__,
                        sqlstate_of(exc),
                        attempt,
                        max_attempts,
                        pause,
                    )
                    time.sleep(pause)
            raise AssertionError("unreachable")  # pragma: no cover

        return run

    return decorate


def on_commit_or_unknown(func: Callable[[], object], using: str | None = None) -> None:
    """Run `func` after the transaction commits, and also when the outermost `atomic()`
    loses the connection while committing (the COMMIT may have succeeded).

    For invalidations, which may run once too often but never too rarely. Only blocks
    opened with this module's `atomic()` run it on an unknown outcome; under Django's
    own `transaction.atomic` it is a plain `on_commit`.
    """

    transaction.on_commit(_RunWhenOutcomeUnknown(func), using=using)


class _RunWhenOutcomeUnknown:
    """An `on_commit` callback that `atomic()` also runs when the COMMIT's outcome is unknown."""

    def __init__(self, func: Callable[[], object]) -> None:
        self.func = func

    def __call__(self) -> None:
        self.func()


def _unknown_outcome_callbacks(connection: BaseDatabaseWrapper) -> list[Callable[[], object]]:
    """The `on_commit_or_unknown` callbacks pending on `connection` (Django keeps pending
    callbacks as (savepoint ids, callback, robust) in `run_on_commit`)."""
    return [
        entry[1]
        for entry in connection.run_on_commit
        if isinstance(entry[1], _RunWhenOutcomeUnknown)
    ]


def check_deferred_constraints(using: str | None = None) -> None:
    """Check deferred constraints (Django's foreign keys) now when a caller's transaction
    is open, so a violation fails inside the repository call that caused it rather than
    at the caller's COMMIT, outside any repository.

    When the repository's own block is the outermost one its COMMIT checks them (inside
    the error mapping), so nothing is sent.
    """
    connection = transaction.get_connection(using)
    if len(connection.atomic_blocks) <= 1:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SET CONSTRAINTS ALL IMMEDIATE; SET CONSTRAINTS ALL DEFERRED"  # pragma: no mutate
        )


def backoff_seconds(attempt: int) -> float:
    """Return the pause after failed attempt `attempt` (1-based): doubling, ±50 % jitter."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return ceiling * (0.5 + random.random())  # noqa: S311 - jitter, not cryptography


def _isolation_sql(isolation: str | None) -> str | None:
    if isolation is None:
        return None
    key = isolation.strip().lower() if isinstance(isolation, str) else None
    if key in ISOLATION_LEVELS:
        return ISOLATION_LEVELS[key]
    raise ValueError(
        f"isolation must be one of {', '.join(map(repr, ISOLATION_LEVELS))}, not {isolation!r}"
    )


def _timeout_ms(name: str, value: Timeout) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        ms = value / dt.timedelta(milliseconds=1)
        if ms != int(ms):
            raise ValueError(f"{name} must be a whole number of milliseconds, not {value!r}")
        value = int(ms)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TIMEOUT_MS:
        raise ValueError(
            f"{name} must be a timedelta or milliseconds in 0..{_MAX_TIMEOUT_MS}, not {value!r}"
        )
    return value


def _set_config(connection: BaseDatabaseWrapper, values: dict[str, str]) -> dict[str, str]:
    """SET LOCAL each setting (one round trip); return the values they had before."""
    names = list(values)
    # The MATERIALIZED CTE is read before the outer row's set_config() calls run, so
    # `old` holds the values from before this statement.
    selects = ", ".join(
        f"old.v{i}, set_config(%s, %s, true)"  # names come from a fixed pair
        for i in range(len(names))
    )
    olds = ", ".join(f"current_setting(%s) AS v{i}" for i in range(len(names)))
    params: list[str] = [*names]
    for name in names:
        params += [name, values[name]]
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH old AS MATERIALIZED (SELECT {olds}) SELECT {selects} FROM old",  # noqa: S608
            params,
        )
        row = cursor.fetchone()
    return {name: row[2 * i] for i, name in enumerate(names)}
