"""Django's psycopg pool hands out clean sessions: each connection is reset when it goes back.

Django's pool never resets a session, so whatever one request left on its connection (a
session `SET statement_timeout`, `search_path` or `default_transaction_read_only`, a
prepared statement, a held advisory lock, a temporary table, an open cursor) is there for
the next request that checks it out. `install()` (called by the app's `ready()`) gives each
pool, when it first hands out a connection, `reset_session` as psycopg_pool's `reset`
callback: `DISCARD ALL` (which also clears psycopg's own prepared-statement cache), then
what Django sets up on a new connection again (its time zone and `OPTIONS["assume_role"]`,
which `DISCARD ALL` undid; settings from the connection string, `options=-c ...` included,
survive it). `REPOSITORIES["RESET_POOLED_SESSIONS"]` (default True) turns it off; a pool
configured with its own `reset` keeps it.

The pool runs the reset in its worker thread; a connection whose reset fails is closed by
the pool instead of being handed out again.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from psycopg import sql
from psycopg_pool import ConnectionPool

from repositories.core.conf import CachedFlag

_DISPATCH_UID = "repositories.core.session_reset"


class SessionReset:
    """psycopg_pool `reset` callback for the pool of one Django alias."""

    def __init__(self, wrapper: BaseDatabaseWrapper) -> None:
        # Django's time zone setup of a new connection (it only uses the connection given).
        self._configure_timezone = wrapper._configure_timezone  # type: ignore[attr-defined]
        # Django's `_configure_role` composes its SQL on the wrapper's own connection, which
        # the pool's worker thread must not use: the same statement, composed here.
        self._role: str | None = (wrapper.settings_dict.get("OPTIONS") or {}).get("assume_role")

    def __call__(self, conn: Any) -> None:
        """Discard the session state of `conn` (idle, back in the pool) and set it up again."""
        conn.autocommit = True  # DISCARD ALL cannot run inside a transaction block
        conn.execute("DISCARD ALL")
        self._configure_timezone(conn)
        if self._role:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Literal(self._role)))


def reset_on_return(pool: Any, wrapper: BaseDatabaseWrapper) -> bool:
    """Give `pool` a `SessionReset` unless it has a reset; return True if it resets ours."""
    if not isinstance(pool, ConnectionPool):
        return False
    current = getattr(pool, "_reset", None)
    if current is None:
        pool._reset = SessionReset(wrapper)
        return True
    return isinstance(current, SessionReset)


_enabled = CachedFlag("RESET_POOLED_SESSIONS")


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    options = connection.settings_dict.get("OPTIONS") or {}
    if not options.get("pool"):
        return
    pool = getattr(connection, "pool", None)
    if _enabled and pool is not None:
        reset_on_return(pool, connection)


def install() -> None:
    """Make Django's pools reset sessions given back to them (idempotent)."""
    connection_created.connect(_on_connection_created, dispatch_uid=_DISPATCH_UID)
