"""A connection given back to Django's pool is reset before anyone else gets it.

Each test adds an alias on the test database whose pool holds exactly one connection, so
the next checkout gets the same server session (same backend pid). One request leaves every
kind of session state behind (session SETs, a role, another time zone, a prepared
statement, a held cursor, an advisory lock, a temporary table); the next checkout must see
the session as a new connection had it, Django's time zone included. `assume_role` is
checked on a connection of its own: Django 5.2's pool cannot open a connection with it
(its setup composes SQL on the wrapper's connection, which waits for the pool). The
control, REPOSITORIES["RESET_POOLED_SESSIONS"] off, shows the same sequence leaking.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from django.db import connections
from django.db.utils import load_backend
from django.test import override_settings
from psycopg_pool import ConnectionPool

from repositories.core.conf import DEFAULTS
from repositories.core.session_reset import SessionReset
from tests.connection_faults import direct_connection, server_params
from tests.repositories.test_session_state import session_state

LEAKS = [
    "CREATE TEMPORARY TABLE leaked_table (id int)",
    "SELECT pg_advisory_lock({lock})",
    "PREPARE leaked_statement AS SELECT 1",
    "DECLARE leaked_cursor CURSOR WITH HOLD FOR SELECT 1",
    "SET TIME ZONE 'Asia/Tokyo'",
    "SET statement_timeout = '1234ms'",
    "SET lock_timeout = '4321ms'",
    "SET search_path = pg_catalog",
    "SET default_transaction_read_only = on",
    "SET application_name = 'leaked'",
    "SET ROLE {role}",
]


@pytest.fixture
def role(transactional_db: None) -> Iterator[str]:
    """A role of its own that the session assumes (created and dropped outside the test)."""
    name = f"reset_probe_{uuid.uuid4().hex[:8]}"
    with direct_connection(connections["default"]) as admin:
        admin.execute(f'CREATE ROLE "{name}" NOLOGIN')
        admin.execute(f'GRANT ALL ON SCHEMA public TO "{name}"')
    yield name
    with direct_connection(connections["default"]) as admin:
        admin.execute(f'REVOKE ALL ON SCHEMA public FROM "{name}"')
        admin.execute(f'DROP ROLE "{name}"')


@pytest.fixture
def single_connection_alias(transactional_db: None) -> Iterator[Callable[[], str]]:
    """Return `add()`: an alias whose pool holds one connection (the same session each
    checkout); its pool is closed at teardown."""
    added: list[str] = []

    def add() -> str:
        alias = f"reset_{uuid.uuid4().hex[:10]}"
        settings_dict = copy.deepcopy(connections["default"].settings_dict)
        # The server itself: the subject is the session Django's pool keeps.
        direct = server_params(connections["default"])
        settings_dict.update(HOST=direct["host"], PORT=str(direct["port"]))
        settings_dict["CONN_MAX_AGE"] = 0
        settings_dict["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 1, "timeout": 5}
        connections[alias] = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(
            settings_dict, alias
        )
        added.append(alias)
        return alias

    yield add
    for alias in added:
        wrapper: Any = connections[alias]
        wrapper.close()
        wrapper.close_pool()
        del connections[alias]


def _leave_state_behind(alias: str, role: str) -> int:
    """One request: leave every kind of session state on the connection, give it back;
    return its backend pid."""
    with connections[alias].cursor() as cursor:
        for statement in LEAKS:
            cursor.execute(statement.format(role=f'"{role}"', lock=uuid.uuid4().int % 2**31))
        cursor.execute("SELECT pg_backend_pid()")
        pid = int(cursor.fetchone()[0])
    connections[alias].close()  # back to the pool
    return pid


def test_next_checkout_gets_the_session_a_new_connection_had(single_connection_alias, role):
    alias = single_connection_alias()
    fresh = session_state(connections[alias])
    connections[alias].close()

    pid = _leave_state_behind(alias, role)

    after = session_state(connections[alias])
    assert after["backend"] == pid  # the very same server session
    assert after == fresh
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT current_setting('TimeZone')")
        assert cursor.fetchone()[0] == "UTC"  # Django's, set up again after DISCARD ALL
    pool = cast(Any, connections[alias]).pool
    assert isinstance(pool, ConnectionPool) and isinstance(pool._reset, SessionReset)


def test_without_the_reset_the_next_checkout_inherits_the_state(single_connection_alias, role):
    with override_settings(REPOSITORIES={**DEFAULTS, "RESET_POOLED_SESSIONS": False}):
        alias = single_connection_alias()
        fresh = session_state(connections[alias])
        connections[alias].close()

        pid = _leave_state_behind(alias, role)

        after = session_state(connections[alias])
        assert after["backend"] == pid
        assert after != fresh
        assert after["values"][0][:3] == ("pg_catalog", "on", "1234ms")
        assert after["prepared"] and after["cursors"] and after["advisory_locks"]
        assert after["temp_tables"] == [("leaked_table",)]
        assert after["roles"][0][0] == role
        pool = cast(Any, connections[alias]).pool
        assert isinstance(pool, ConnectionPool) and pool._reset is None
        # Clean up what the control left, so the connection can go.
        with connections[alias].cursor() as cursor:
            cursor.execute("CLOSE ALL")
            cursor.execute("DISCARD ALL")


def test_a_pool_with_its_own_reset_keeps_it(single_connection_alias):
    calls: list[Any] = []
    alias = single_connection_alias()
    connections[alias].settings_dict["OPTIONS"]["pool"]["reset"] = calls.append
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
    connections[alias].close()
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
    pool = cast(Any, connections[alias]).pool
    assert pool is not None and pool._reset == calls.append
    assert len(calls) == 1


def test_the_reset_assumes_the_configured_role_again(role):
    """`OPTIONS["assume_role"]`: after DISCARD ALL (which drops any SET ROLE) the session
    has the configured role again, not the one a request switched to."""
    wrapper: Any = copy.copy(connections["default"])
    wrapper.settings_dict = {
        **wrapper.settings_dict,
        "OPTIONS": {**wrapper.settings_dict["OPTIONS"], "assume_role": role},
    }
    reset = SessionReset(wrapper)
    with direct_connection(connections["default"]) as conn:
        conn.execute("SET ROLE NONE")
        conn.execute("SET TIME ZONE 'Asia/Tokyo'")
        conn.autocommit = False  # as Django may give it back
        reset(conn)
        assert conn.info.transaction_status.name == "IDLE"
        row = conn.execute("SELECT current_user, current_setting('TimeZone')").fetchone()
        assert row == (role, "UTC")
