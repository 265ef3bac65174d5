"""Read replicas: which alias a read goes to, read-your-writes, and replica health.

Opt-in: nothing here routes anything unless `REPOSITORIES["READ_REPLICAS"]` names aliases.
Then a read outside a transaction goes to a healthy replica, while writes, everything
inside `atomic()` on the primary, and the reads of a context that wrote (until a replica has
replayed the write) go to the primary. Repositories built without `using=` follow it (the
boundary asks `call_alias()` per public method); plain ORM code follows it through
`ReplicaRouter` in `DATABASE_ROUTERS`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.http import HttpRequest, HttpResponseBase

from repositories.core.conf import setting

__all__ = [
    "PRIMARY",
    "ConsistencyScopeMiddleware",
    "ReplicaRouter",
    "call_alias",
    "consistency_scope",
    "mark_down",
    "note_write",
    "primary",
    "read_alias",
    "replica_health",
]

PRIMARY = DEFAULT_DB_ALIAS
logger = logging.getLogger("repositories.routing")

_HEALTH_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE COALESCE(EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)


@dataclass
class _Scope:
    """What a context (request, task, explicit scope) wrote: `pending` until the primary's
    WAL position after the write is known, then `lsn` until a replica has replayed it."""

    pending: bool = False
    lsn: int | None = None


_scope: ContextVar[_Scope | None] = ContextVar("repositories_routing_scope", default=None)
_forced: ContextVar[bool] = ContextVar("repositories_routing_primary", default=False)
_call: ContextVar[str | None] = ContextVar("repositories_routing_call", default=None)


def replicas() -> tuple[str, ...]:
    """Return the replica aliases reads may go to (none: routing is off)."""
    return setting("READ_REPLICAS")


@contextlib.contextmanager
def consistency_scope() -> Iterator[None]:
    """Track read-your-writes for the block alone (a request, a task): writes made before
    it do not keep its reads on the primary, and its writes do not outlive it."""
    token = _scope.set(_Scope())
    try:
        yield
    finally:
        _scope.reset(token)


@contextlib.contextmanager
def primary() -> Iterator[None]:
    """Send every routed read in the block to the primary (a read that must be fresh)."""
    token = _forced.set(True)
    try:
        yield
    finally:
        _forced.reset(token)


def note_write(alias: str = PRIMARY) -> None:
    """Record that the current context writes on `alias`: its reads stay on the primary
    until a replica has replayed the write."""
    if alias != PRIMARY or not replicas():
        return
    scope = _scope.get()
    if scope is None:
        scope = _Scope()
        _scope.set(scope)
    scope.pending = True


def call_alias(*, writes: bool) -> str:
    """Return the alias for a public repository method: the primary for one that writes,
    the alias of the enclosing call for a nested read (one method reads consistently),
    otherwise `read_alias()`."""
    if writes:
        note_write()
        return PRIMARY
    outer = _call.get()
    return outer if outer is not None else read_alias()


@contextlib.contextmanager
def routed_call(alias: str) -> Iterator[None]:
    """Run a public repository method's queries on `alias` (see `call_alias`)."""
    token = _call.set(alias)
    try:
        yield
    finally:
        _call.reset(token)


def current_call_alias() -> str | None:
    """Return the alias of the public repository method running now, if any."""
    return _call.get()


def read_alias() -> str:
    """Return where a read goes now: a healthy replica that has replayed this context's
    writes, else the primary (inside `atomic()` on it, under `primary()`, or when no
    replica qualifies; the fallback is logged)."""
    aliases = replicas()
    if not aliases or _forced.get() or connections[PRIMARY].in_atomic_block:
        return PRIMARY
    needed = _needed_lsn()
    for alias in _rotation(aliases):
        health = replica_health(alias)
        if not health.usable:
            continue
        if needed is None or _caught_up(alias, health, needed):
            if needed is not None:
                _clear_needed()
            return alias
    if needed is None:
        logger.warning("no usable replica among %s: reading on the primary", ", ".join(aliases))
    return PRIMARY


_counter = itertools.count()


def _rotation(aliases: tuple[str, ...]) -> list[str]:
    start = next(_counter) % len(aliases)
    return [*aliases[start:], *aliases[:start]]


def _needed_lsn() -> int | None:
    """Return the WAL position this context's reads must see, reading the primary's
    position once after a write (outside atomic() the write has committed by now)."""
    scope = _scope.get()
    if scope is None:
        return None
    if scope.pending:
        with connections[PRIMARY].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
            row = cursor.fetchone()
        scope.lsn = max(scope.lsn or 0, parse_lsn(row[0]))
        scope.pending = False
    return scope.lsn


def _clear_needed() -> None:
    scope = _scope.get()
    if scope is not None and not scope.pending:
        scope.lsn = None


def _caught_up(alias: str, health: ReplicaHealth, needed: int) -> bool:
    """Return whether `alias` has replayed `needed`, asking it again (up to
    READ_YOUR_WRITES_WAIT_MS) when its cached position is behind."""
    if health.replay_lsn >= needed:
        return True
    deadline = time.monotonic() + setting("READ_YOUR_WRITES_WAIT_MS") / 1000
    while True:
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT pg_last_wal_replay_lsn()::text")
                row = cursor.fetchone()
        except DatabaseError as exc:
            mark_down(alias, f"unreachable ({type(exc).__name__})")
            return False
        replayed = parse_lsn(row[0]) if row and row[0] else 0
        health.replay_lsn = max(health.replay_lsn, replayed)
        if replayed >= needed:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def parse_lsn(text: str | None) -> int:
    """Return a pg_lsn's text form ('16/B374D848') as a number (None: 0)."""
    if not text:
        return 0
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


# --- health --------------------------------------------------------------------------------
@dataclass
class ReplicaHealth:
    """One replica's state as last checked: `usable` when up, in recovery and lagging no
    more than REPLICA_MAX_LAG_SECONDS."""

    usable: bool
    reason: str
    lag_seconds: float
    replay_lsn: int
    checked_at: float


_health: dict[str, ReplicaHealth] = {}
_health_lock = threading.Lock()


def replica_health(alias: str) -> ReplicaHealth:
    """Return `alias`'s health, checked at most once per REPLICA_HEALTH_SECONDS (on a
    separate short-lived connection with the alias's connect_timeout)."""
    now = time.monotonic()
    cached = _health.get(alias)
    if cached is not None and now - cached.checked_at < setting("REPLICA_HEALTH_SECONDS"):
        return cached
    with _health_lock:
        cached = _health.get(alias)
        if cached is not None and now - cached.checked_at < setting("REPLICA_HEALTH_SECONDS"):
            return cached
        health = _check(alias)
        previous = _health.get(alias)
        _health[alias] = health
    if not health.usable and (previous is None or previous.usable):
        logger.warning("replica %s skipped: %s; its reads go elsewhere", alias, health.reason)
    elif health.usable and previous is not None and not previous.usable:
        logger.warning("replica %s usable again", alias)
    return health


def mark_down(alias: str, reason: str) -> None:
    """Skip `alias` until its next health check (a read on it could not connect)."""
    with _health_lock:
        _health[alias] = ReplicaHealth(False, reason, 0.0, 0, time.monotonic())
    logger.warning("replica %s skipped: %s; reading on the primary", alias, reason)


def forget_health() -> None:
    """Drop every cached health (the next read checks each replica again)."""
    with _health_lock:
        _health.clear()


def _check(alias: str) -> ReplicaHealth:
    now = time.monotonic()
    try:
        with psycopg.connect(**_conninfo(alias), autocommit=True) as conn:
            row = conn.execute(_HEALTH_SQL).fetchone()
    except psycopg.Error as exc:
        return ReplicaHealth(False, f"unreachable ({type(exc).__name__})", 0.0, 0, now)
    if row is None:  # a SELECT without FROM returns one row; kept for the type checker
        return ReplicaHealth(False, "no answer", 0.0, 0, now)
    in_recovery, replay, lag = row
    lag = float(lag or 0)
    if not in_recovery:
        return ReplicaHealth(False, "not in recovery (promoted?)", 0.0, 0, now)
    if lag > setting("REPLICA_MAX_LAG_SECONDS"):
        return ReplicaHealth(False, f"lagging {lag:.1f} s", lag, parse_lsn(replay), now)
    return ReplicaHealth(True, "ok", lag, parse_lsn(replay), now)


def _conninfo(alias: str) -> dict[str, Any]:
    entry = connections.databases[alias]
    options = entry.get("OPTIONS") or {}
    info: dict[str, Any] = {
        "dbname": entry.get("NAME") or "postgres",
        "connect_timeout": options.get("connect_timeout", 2),
    }
    for key, name in (("HOST", "host"), ("PORT", "port"), ("USER", "user")):
        if entry.get(key):
            info[name] = entry[key]
    if entry.get("PASSWORD"):
        info["password"] = entry["PASSWORD"]
    return info


# --- Django's router -----------------------------------------------------------------------
class ReplicaRouter:
    """Route plain ORM code like the repositories: `db_for_read` picks `read_alias()`,
    `db_for_write` the primary (and notes the write for read-your-writes). Migrations run
    on the primary only; replicas receive them through replication."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return current_call_alias() or read_alias()

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        note_write()
        return PRIMARY

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        known = {PRIMARY, *replicas()}
        return (obj1._state.db in known and obj2._state.db in known) or None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return db not in replicas()


# --- requests ------------------------------------------------------------------------------
#: The cookie carrying a client's last write position to its next requests (read-your-writes
#: across a redirect after a POST); it can only make that client's reads more conservative.
WAL_COOKIE = "repositories_wal"


class ConsistencyScopeMiddleware:
    """Run each request in its own `consistency_scope()`, seeded from the client's
    `repositories_wal` cookie; a request that wrote sets the cookie to the primary's WAL
    position after the write, for REPLICA_MAX_LAG_SECONDS (at least 5 s)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not replicas():
            return self.get_response(request)
        scope = _Scope(lsn=_cookie_lsn(request.COOKIES.get(WAL_COOKIE, "")))
        seeded = scope.lsn
        token = _scope.set(scope)
        try:
            response = self.get_response(request)
            if scope.pending and not connections[PRIMARY].in_atomic_block:
                _needed_lsn()
        finally:
            _scope.reset(token)
        if scope.lsn is not None and scope.lsn != seeded:
            max_age = max(5, int(setting("REPLICA_MAX_LAG_SECONDS")))
            response.set_cookie(
                WAL_COOKIE, f"{scope.lsn:x}", max_age=max_age, httponly=True, samesite="Lax"
            )
        return response


def _cookie_lsn(text: str) -> int | None:
    if not 0 < len(text) <= 16:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None
