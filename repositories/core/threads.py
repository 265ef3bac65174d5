"""Database connections of threads: given back when a thread ends, or when its work ends.

Django keeps one connection per alias per thread and gives it back (to the pool, or to the
server) only on `connection.close()`; its request cycle does that, but a thread of your own
that ends without it leaves the connection behind. With Django's pool that connection's
slot is never returned: psycopg_pool counts it as checked out forever, and after `max_size`
such threads every checkout waits `timeout` and fails. Without the pool the server
backend stays open until the garbage collector happens to collect the connection.

- `install()` (called by the app's `ready()`): every connection opened in a thread is noted
  in that thread's `threading.local`; when the thread ends, Python drops that thread-local
  and the connections the thread left open are closed, returning pooled ones to the pool.
  `REPOSITORIES["RECLAIM_THREAD_CONNECTIONS"]` (default True) turns it off.
- `database_worker`: decorator / context manager for work run on long-lived threads
  (ThreadPoolExecutor, a consumer loop): closes the thread's connections when the work ends.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import ContextDecorator
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from repositories.core.conf import CachedFlag

logger = logging.getLogger("repositories.core.threads")

P = ParamSpec("P")
R = TypeVar("R")

_DISPATCH_UID = "repositories.core.threads"


class _ThreadConnections:
    """The connections one thread opened, held weakly in that thread's `threading.local`.

    CPython clears a thread's thread-locals in that thread, after its last line of Python
    and before `join()` returns: the instance is released then and `__del__` closes what
    the thread left open. Nothing may hold a reference to it (a cycle would postpone
    `__del__` to the garbage collector), hence the slots and the weak references.
    """

    __slots__ = ("refs",)

    def __init__(self) -> None:
        self.refs: dict[int, weakref.ref[BaseDatabaseWrapper]] = {}

    def note(self, wrapper: BaseDatabaseWrapper) -> None:
        ref = self.refs.get(id(wrapper))
        if ref is not None and ref() is wrapper:
            return  # the usual case: the thread's wrapper checks out again
        if len(self.refs) >= _PRUNE_AT:
            # Wrappers of ended contexts (async code runs many in one thread).
            self.refs = {key: ref for key, ref in self.refs.items() if ref() is not None}
        self.refs[id(wrapper)] = weakref.ref(wrapper)

    def __del__(self) -> None:
        if sys.is_finalizing():
            return  # interpreter shutdown: the pools are being torn down too
        for ref in list(self.refs.values()):
            wrapper = ref()
            if wrapper is not None:
                _give_back(wrapper)


_PRUNE_AT = 64
_threads = threading.local()
_enabled = CachedFlag("RECLAIM_THREAD_CONNECTIONS")


def _give_back(wrapper: BaseDatabaseWrapper) -> None:
    """Close a connection its thread left open (a pooled one goes back to the pool)."""
    if wrapper.connection is None or wrapper.allow_thread_sharing:
        return  # closed already, or shared with other threads, whose owner closes it
    try:
        wrapper.close()
    except Exception:
        logger.warning(
            "could not close the %r connection of a finished thread", wrapper.alias, exc_info=True
        )


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if not _enabled:
        return
    try:
        opened: _ThreadConnections = _threads.connections
    except AttributeError:
        opened = _threads.connections = _ThreadConnections()
    opened.note(connection)


def install() -> None:
    """Close, when a thread ends, the connections it opened and left open (idempotent)."""
    connection_created.connect(_on_connection_created, dispatch_uid=_DISPATCH_UID)


def _wrappers(using: str | Iterable[str] | None) -> Iterator[BaseDatabaseWrapper]:
    if using is None:
        # The aliases of DATABASES this thread has used.
        yield from connections.all(initialized_only=True)
        return
    for alias in [using] if isinstance(using, str) else using:
        yield connections[alias]


def close_thread_connections(using: str | Iterable[str] | None = None) -> None:
    """Close this thread's open connections (`using`: one alias or several; default every
    alias of DATABASES).

    A pooled connection goes back to the pool; the next query checks one out again. A
    connection inside an `atomic` block is left alone: the transaction that holds it
    closes it. Errors while closing are logged, not raised.
    """
    for wrapper in _wrappers(using):
        if wrapper.connection is None or wrapper.in_atomic_block:
            continue
        try:
            wrapper.close()
        except DatabaseError:
            logger.warning("could not close the %r connection", wrapper.alias, exc_info=True)


class DatabaseWorker(ContextDecorator):
    """The block behind `database_worker()`; use that function rather than this class."""

    def __init__(self, using: str | Iterable[str] | None = None) -> None:
        self.using = using if using is None or isinstance(using, str) else tuple(using)

    def __enter__(self) -> DatabaseWorker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        close_thread_connections(self.using)


@overload
def database_worker(func: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def database_worker(*, using: str | Iterable[str] | None = None) -> DatabaseWorker: ...
def database_worker(
    func: Callable[P, R] | None = None, /, *, using: str | Iterable[str] | None = None
) -> Callable[P, R] | DatabaseWorker:
    """Close this thread's database connections when a unit of work ends, however it ends.

    For work run on threads that outlive it (`ThreadPoolExecutor`, a queue consumer): a
    worker thread otherwise keeps its connection, and with the pool its slot, between
    tasks, so more workers than `max_size` wedge the pool. Use it as `@database_worker`,
    `@database_worker(using="replica")`, `executor.submit(database_worker(task), ...)` or
    `with database_worker(): ...`. Connections inside an `atomic` block are left open
    (see `close_thread_connections`).
    """
    if func is None:
        return DatabaseWorker(using)
    worker = DatabaseWorker(using)

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with worker:
            return func(*args, **kwargs)

    return run
