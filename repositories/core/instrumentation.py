"""Query instrumentation: SQL comments naming the repository method, slow-query log, counts."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from functools import lru_cache
from types import TracebackType
from typing import Any

from django.core.signals import setting_changed
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from repositories.core.conf import setting

logger = logging.getLogger("repositories.queries")

_label: ContextVar[str | None] = ContextVar("repositories_query_label", default=None)
_UNSAFE_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_.:\-]")

# Seconds; read once from settings and refreshed when a test overrides REPOSITORIES.
_slow_query_seconds: float | None = None


class query_label:  # lower case: used like a function, `with query_label(...)`
    """Attribute every SQL statement issued inside the block to `label`.

    Statements get a leading `/* repo:<label> */` comment (pg_stat_statements and the
    server log show it) and slow-query log records carry the label. The outermost label
    wins, so `OrderRepository.place_order` owns the queries of the calls it makes. Labels
    are reduced to letters, digits and `_.:-`, so they can never close the comment.
    A class rather than a generator: it wraps every repository call and must be cheap.
    """

    __slots__ = ("_label", "_token")

    def __init__(self, label: str) -> None:
        self._label = label
        self._token: Token[str | None] | None = None

    def __enter__(self) -> str:
        current = _label.get()
        if current is not None:
            return current
        label = _sanitize(self._label)
        self._token = _label.set(label)
        return label

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _label.reset(self._token)
            self._token = None


def current_label() -> str | None:
    """Return the active query label, or None outside any `query_label` block."""
    return _label.get()


@lru_cache(maxsize=1024)
def _sanitize(label: str) -> str:
    return _UNSAFE_LABEL_CHARS.sub("", label)[:120] or "unlabelled"


def instrument_query(
    execute: Callable[..., Any],
    sql: Any,
    params: Any,
    many: bool,
    context: dict[str, Any],
) -> Any:
    """Execute wrapper: prefix the label comment, time the statement, log it when slow."""
    label = _label.get()
    if label is not None and type(sql) is str:
        sql = f"/* repo:{label} */ {sql}"
    start = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        elapsed = time.perf_counter() - start
        threshold = _slow_query_seconds
        if threshold is None:
            threshold = _load_threshold()
        if elapsed >= threshold:
            _log_slow_query(elapsed, sql, label, many, context)


def _log_slow_query(
    elapsed: float, sql: Any, label: str | None, many: bool, context: dict[str, Any]
) -> None:
    # Parameters are left out on purpose: they may hold personal data or secrets.
    duration_ms = round(elapsed * 1000, 3)
    alias = getattr(context.get("connection"), "alias", None)
    logger.warning(
        "slow query: %.1f ms [%s] %s",
        duration_ms,
        label or "-",
        sql,
        extra={
            "duration_ms": duration_ms,
            "sql": str(sql),
            "label": label,
            "database": alias,
            "many": many,
        },
    )


def _load_threshold() -> float:
    global _slow_query_seconds
    _slow_query_seconds = setting("SLOW_QUERY_MS") / 1000.0
    return _slow_query_seconds


def _reset_threshold(*, setting: str, **kwargs: Any) -> None:
    global _slow_query_seconds
    if setting == "REPOSITORIES":
        _slow_query_seconds = None


def add_wrapper(connection: BaseDatabaseWrapper) -> None:
    """Install the execute wrapper on one connection (idempotent).

    It goes first in the list, so it is the outermost wrapper: wrappers pushed later by
    `connection.execute_wrapper()` (tests, `count_queries`) see the labelled SQL and pop
    their own entry, never this one.
    """
    if instrument_query not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, instrument_query)


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    add_wrapper(connection)


def install() -> None:
    """Wire the wrapper on every connection: open ones now, new ones as they connect."""
    connection_created.connect(
        _on_connection_created, dispatch_uid="repositories.core.instrumentation"
    )
    setting_changed.connect(_reset_threshold, dispatch_uid="repositories.core.instrumentation")
    for connection in connections.all(initialized_only=True):
        add_wrapper(connection)


class QueryCount:
    """The statements seen by `count_queries`: `.count` and `.queries` (dicts with "sql",
    "time" in seconds as text, like Django's `connection.queries`, and "duration_ms")."""

    def __init__(self) -> None:
        self.queries: list[dict[str, Any]] = []

    @property
    def count(self) -> int:
        return len(self.queries)

    def __len__(self) -> int:
        return len(self.queries)

    def __repr__(self) -> str:
        return f"<QueryCount {self.count}>"

    def _wrapper(
        self,
        execute: Callable[..., Any],
        sql: Any,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - start
            self.queries.append(
                {
                    "sql": str(sql),
                    "time": f"{elapsed:.3f}",
                    "duration_ms": elapsed * 1000,
                    "many": many,
                }
            )


@contextmanager
def count_queries(using: str = "default") -> Iterator[QueryCount]:
    """Count the statements sent on connection `using` inside the block (this thread).

    An `executemany` counts once (it is one call); unlike `CaptureQueriesContext` there
    is no cap on the number recorded and the debug cursor is not forced on.
    """
    counter = QueryCount()
    with connections[using].execute_wrapper(counter._wrapper):
        yield counter
