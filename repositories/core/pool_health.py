"""Django's psycopg pool after a mass loss of connections: one dead connection, check them all.

With `CONN_HEALTH_CHECKS = True` Django gives its pool psycopg_pool's
`ConnectionPool.check_connection` as `check` (Django 5.2 passes `check` itself, so it
cannot be set in `OPTIONS["pool"]`): each checkout costs one round trip and a connection
that died while idle is replaced instead of failing the caller's query. But the pool
retries a checkout whose connection failed its check with a growing pause (none, then
about 1 s, 2 s, 4 s): after the server dropped every connection (restart, failover,
`pg_terminate_backend`) a pool holding N dead idle connections stalls the next caller
about 2**(N-1) - 1 s, until the pool timeout.

`install()` (called by the app's `ready()`) gives each such pool `check_and_sweep` instead,
when it first hands out a connection: the first connection that fails its check makes the
pool check every idle connection at once (`ConnectionPool.check()`, which replaces the
dead ones), so the retry finds a live or a fresh connection with no pause.
`REPOSITORIES["SWEEP_POOL_ON_FAILED_CHECK"]` (default True) turns it off; pools without
checks are left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from psycopg_pool import ConnectionPool

from repositories.core.conf import CachedFlag

logger = logging.getLogger("repositories.core.pool_health")

_DISPATCH_UID = "repositories.core.pool_health"


def check_and_sweep(conn: Any) -> None:
    """Check a connection the pool is about to hand out; when it is dead, check the rest.

    Raises what `ConnectionPool.check_connection` raises, after `ConnectionPool.check()`
    has tested every idle connection and replaced the dead ones (one round trip each;
    a dead one fails at once).
    """
    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        # psycopg_pool marks a connection it hands out with its pool; Django's own
        # `DatabaseWrapper._close()` relies on the same attribute.
        pool = getattr(conn, "_pool", None)
        if isinstance(pool, ConnectionPool):
            logger.warning("pool %r handed out a dead connection: checking all", pool.name)
            try:
                pool.check()
            except Exception:
                logger.warning(
                    "pool %r: checking idle connections failed", pool.name, exc_info=True
                )
        raise


def sweep_on_failed_check(pool: Any) -> bool:
    """Make `pool` use `check_and_sweep` if it uses the plain check; return True if it does."""
    if not isinstance(pool, ConnectionPool):
        return False
    current = getattr(pool, "_check", None)
    if current is ConnectionPool.check_connection:
        pool._check = check_and_sweep
        return True
    return current is check_and_sweep


_enabled = CachedFlag("SWEEP_POOL_ON_FAILED_CHECK")


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    options = connection.settings_dict.get("OPTIONS") or {}
    if not options.get("pool"):
        return
    pool = getattr(connection, "pool", None)
    if _enabled and pool is not None:
        sweep_on_failed_check(pool)


def install() -> None:
    """Give Django's checked pools `check_and_sweep` when they first connect (idempotent)."""
    connection_created.connect(_on_connection_created, dispatch_uid=_DISPATCH_UID)
