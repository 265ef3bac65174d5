"""Faster loading of `timestamptz` values on Django's psycopg connections.

Django loads every `timestamptz` with a Python subclass of psycopg's pure-Python
loader (to set the connection's time zone), which costs about 3.5 µs a value; psycopg's
C loader takes about 0.5 µs. A page of 50 orders with items and products carries some
1,000 timestamps (docs/performance.md). When Django keeps the session in UTC with
`USE_TZ` (the default), the C loader returns exactly what Django's returns (aware
datetimes in `datetime.timezone.utc`), so it is registered on such connections.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import psycopg
from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from psycopg import postgres
from psycopg.abc import AdaptContext
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg.types.datetime import TimestamptzLoader

__all__ = ["UtcTimestamptzLoader", "install", "use_fast_loaders"]

_TIMESTAMPTZ_OID = postgres.types["timestamptz"].oid
#: psycopg's own loader: the C one when psycopg's binary package is installed.
_NATIVE_LOADER: type[Loader] = psycopg.adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT)  # type: ignore[assignment]


class UtcTimestamptzLoader(TimestamptzLoader):
    """psycopg's native `timestamptz` text loader, shaped like Django's.

    Django's `create_cursor` reads the `timezone` attribute of the registered loader to
    decide whether to register its own; UTC here, so it keeps this one.
    """

    timezone = UTC

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        # The native loader reads the session time zone (UTC on these connections).
        self.load = _NATIVE_LOADER(oid, context).load  # type: ignore[method-assign]


def use_fast_loaders(connection: BaseDatabaseWrapper) -> bool:
    """Register the native loader on `connection` when it returns what Django's would.

    Only for a connected psycopg 3 connection whose session runs in UTC with USE_TZ;
    returns whether the loader is in place.
    """
    raw = getattr(connection, "connection", None)
    if (
        connection.vendor != "postgresql"
        or not isinstance(raw, psycopg.Connection)
        or not settings.USE_TZ
        or connection.timezone is not UTC
        or raw.info.parameter_status("TimeZone") != "UTC"
    ):
        return False
    current = raw.adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT)
    if current is not UtcTimestamptzLoader:
        raw.adapters.register_loader("timestamptz", UtcTimestamptzLoader)
    return True


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    use_fast_loaders(connection)


def install() -> None:
    """Register the loader on every new connection (pool checkouts included)."""
    connection_created.connect(_on_connection_created, dispatch_uid="repositories.adapters")
