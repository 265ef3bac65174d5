"""The native timestamptz loader registered on Django's connections (repositories.adapters)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from django.test import override_settings
from psycopg import postgres
from psycopg.pq import Format

from repositories.adapters import UtcTimestamptzLoader, use_fast_loaders

pytestmark = pytest.mark.django_db

_OID = postgres.types["timestamptz"].oid
SAMPLES = [
    "2026-11-25 10:00:00+00",
    "2026-11-25 10:00:00.123456+00",
    "1999-12-31 23:59:59.999999+00",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "2024-02-29 12:30:45.5+00",
]


def _loader_class() -> type:
    connection.ensure_connection()
    return connection.connection.adapters.get_loader(_OID, Format.TEXT)


def test_connections_get_the_native_loader_and_django_keeps_it():
    assert _loader_class() is UtcTimestamptzLoader
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz", ["2026-11-25 10:00:00.5+01"])
        (value,) = cursor.fetchone()
    assert value == datetime(2026, 11, 25, 9, 0, 0, 500000, tzinfo=UTC)
    assert value.tzinfo is UTC


def test_native_loader_returns_what_djangos_loader_returns():
    class DjangoLoader(BaseTzLoader):
        timezone = UTC

    with connection.cursor() as cursor:
        for text in SAMPLES:
            cursor.execute("SELECT %s::timestamptz::text", [text])
            (wire,) = cursor.fetchone()
            data = wire.encode()
            ours = UtcTimestamptzLoader(_OID, connection.connection).load(data)
            django_value = DjangoLoader(_OID, connection.connection).load(data)
            assert ours == django_value
            assert ours.tzinfo is django_value.tzinfo is UTC


def test_loader_is_registered_only_when_it_matches_django():
    assert use_fast_loaders(connection) is True
    with override_settings(USE_TZ=False):
        assert use_fast_loaders(connection) is False
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Europe/Paris'")
        try:
            assert use_fast_loaders(connection) is False
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")


def test_loader_is_skipped_without_a_psycopg_connection():
    class NotConnected:
        vendor = "postgresql"
        connection = None

    assert use_fast_loaders(NotConnected()) is False  # type: ignore[arg-type]
