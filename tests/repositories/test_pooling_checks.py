"""REPOSITORIES["TRANSACTION_POOLING"]: the startup check refuses settings that cannot work
behind PgBouncer in transaction mode, and place_order prepares no named statement."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.test import override_settings

from repositories.core.pooling_checks import _session_options
from tests.repositories.repository_calls import CALLS

POOLING = {"TRANSACTION_POOLING": True}
# The check only reads settings.DATABASES; no connection is made from the override.
pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def _databases(**changes: Any) -> dict[str, Any]:
    database = copy.deepcopy(connection.settings_dict)
    database["DISABLE_SERVER_SIDE_CURSORS"] = True
    options = dict(database.get("OPTIONS") or {})
    options.update(changes.pop("OPTIONS", {}))
    database["OPTIONS"] = options
    database.update(changes)
    return {"default": database}


def _ids(databases: dict[str, Any], repositories: dict[str, Any] = POOLING) -> list[str]:
    with override_settings(DATABASES=databases, REPOSITORIES=repositories):
        return sorted(
            message.id
            for message in run_checks(tags=["repositories"])
            if message.id and message.id.startswith("repositories.")
        )


def test_check_passes_a_pooler_safe_configuration():
    assert _ids(_databases()) == []
    # Allowed: server-side binding (unnamed statements) and persistent client connections.
    assert _ids(_databases(OPTIONS={"server_side_binding": True}, CONN_MAX_AGE=60)) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"OPTIONS": {"options": "-c statement_timeout=5000"}}, "repositories.E101"),
        ({"OPTIONS": {"options": "-csearch_path=app"}}, "repositories.E101"),
        ({"OPTIONS": {"options": "--default_transaction_read_only=on"}}, "repositories.E101"),
        ({"OPTIONS": {"assume_role": "reporting"}}, "repositories.E102"),
        ({"OPTIONS": {"prepare_threshold": 5}}, "repositories.E103"),
        ({"OPTIONS": {"prepare_threshold": 0}}, "repositories.E103"),
        ({"DISABLE_SERVER_SIDE_CURSORS": False}, "repositories.E104"),
    ],
)
def test_check_refuses_what_cannot_work_behind_transaction_pooling(changes, expected):
    assert _ids(_databases(**changes)) == [expected]
    # Off (the default): the same settings pass.
    assert _ids(_databases(**changes), {"TRANSACTION_POOLING": False}) == []


def test_check_names_every_alias():
    databases = _databases(OPTIONS={"assume_role": "x"})
    databases["replica"] = copy.deepcopy(databases["default"])
    assert _ids(databases) == ["repositories.E102", "repositories.E102"]


def test_session_options_parsing():
    assert _session_options("-c a=1 -cb=2 --c=3 -x") == ["a=1", "b=2", "c=3"]
    assert _session_options(None) == []


def _prepared() -> list[Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return cursor.fetchall()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pooling", [False, True])
def test_place_order_prepares_nothing_with_transaction_pooling(pooling):
    """A connection told to prepare at once: only the pooling setting stops it."""
    connection.ensure_connection()
    raw = connection.connection
    threshold = raw.prepare_threshold
    raw.prepare_threshold = 0
    try:
        with override_settings(REPOSITORIES={"TRANSACTION_POOLING": pooling}):
            for _ in range(2):
                CALLS[("OrderRepository", "place_order")]()()
        prepared = _prepared()
    finally:
        raw.prepare_threshold = threshold
        with connection.cursor() as cursor:
            cursor.execute("DEALLOCATE ALL")
    assert (prepared == []) is pooling
