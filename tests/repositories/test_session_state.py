"""No public repository method leaves session state behind on its connection.

Behind PgBouncer in transaction mode, or with Django's pool, the next client gets the
same server session: a `SET` (not `SET LOCAL`), a role, a prepared statement, an open
cursor or a session advisory lock left by one call would change or break the next
caller's queries. For every (class, method) of CALLS (tests/repositories/
repository_calls.py), with a real commit (transactional test), the session's state is
read before and after the call and must be identical.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from tests.connection_faults import behind_pooler
from tests.repositories.repository_calls import CALLS, Key

_STATE_SQL = {
    "settings": "SELECT name, setting FROM pg_settings WHERE source = 'session' ORDER BY name",
    "roles": "SELECT current_user, session_user",
    "values": (
        "SELECT current_setting('search_path'), "
        "current_setting('default_transaction_read_only'), "
        "current_setting('statement_timeout'), current_setting('lock_timeout'), "
        "current_setting('idle_in_transaction_session_timeout'), "
        "current_setting('default_transaction_isolation')"
    ),
    "prepared": "SELECT name, statement FROM pg_prepared_statements ORDER BY name",
    "cursors": "SELECT name FROM pg_cursors ORDER BY name",
    "advisory_locks": (
        "SELECT classid, objid, objsubid FROM pg_locks "
        "WHERE locktype = 'advisory' AND pid = pg_backend_pid() ORDER BY 1, 2, 3"
    ),
    "temp_tables": (
        "SELECT relname FROM pg_class WHERE relnamespace = pg_my_temp_schema() ORDER BY 1"
    ),
}


def session_state(conn: BaseDatabaseWrapper = connection) -> dict[str, Any]:
    """Return what a later client of this server session would inherit.

    Read in one transaction, so from one server session also behind PgBouncer, where the
    backend pid is left out: consecutive transactions may run on different server
    sessions there, and each of them must be clean.
    """
    state: dict[str, Any] = {
        "in_atomic_block": conn.in_atomic_block,
        "autocommit": conn.get_autocommit(),
    }
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        if not behind_pooler(conn):
            cursor.execute("SELECT pg_backend_pid()")
            state["backend"] = cursor.fetchone()[0]
        for name, sql in _STATE_SQL.items():
            cursor.execute(sql)
            state[name] = cursor.fetchall()
    return state


def _id(key: Key) -> str:
    return ".".join(key)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("key", sorted(CALLS), ids=_id)
def test_public_method_leaves_session_state_as_it_found_it(key):
    call = CALLS[key]()
    before = session_state()
    # Refusals by design raise: the session must be clean after them too.
    with contextlib.suppress(Exception):
        call()
    after = session_state()
    assert after == before


@pytest.mark.django_db(transaction=True)
def test_place_order_repeated_prepares_no_statement():
    """Six calls on one connection: more than psycopg's default prepare threshold (5)."""
    call_key = ("OrderRepository", "place_order")
    before = session_state()
    for _ in range(6):
        CALLS[call_key]()()
    after = session_state()
    assert after["prepared"] == before["prepared"] == []
    assert after == before


@pytest.mark.django_db(transaction=True)
def test_session_state_notices_a_leak():
    """The comparison sees a session-level SET and a prepared statement."""
    before = session_state()
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 1234")
        cursor.execute("PREPARE leak_probe AS SELECT 1")
    try:
        after = session_state()
        assert after["settings"] != before["settings"]
        assert after["prepared"] != before["prepared"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
            cursor.execute("DEALLOCATE leak_probe")
    assert session_state() == before
