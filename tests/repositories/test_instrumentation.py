"""Query labels, the execute wrapper, slow-query logging and count_queries."""

from __future__ import annotations

import logging
import os
import threading

import pytest
from django.db import DatabaseError, connection, connections
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext

from domain.models import SystemConfig
from repositories.core import instrumentation
from repositories.core.instrumentation import count_queries, current_label, query_label
from tests.factories import SystemConfigFactory


def test_query_label_outermost_wins():
    with query_label("Outer.method") as outer:
        with query_label("Inner.method") as inner:
            assert current_label() == "Outer.method"
        assert (outer, inner) == ("Outer.method", "Outer.method")
    assert current_label() is None


def test_query_label_strips_comment_terminators_and_unsafe_characters():
    with query_label("Evil */ DROP TABLE users; --") as label:
        assert label == "EvilDROPTABLEusers--"
    with query_label("*/") as label:
        assert label == "unlabelled"
    with query_label("Repo.%s{x}\n" + "a" * 200) as label:
        assert label == "Repo.sx" + "a" * 113  # no placeholder, no newline, capped at 120


@pytest.mark.django_db
def test_label_with_placeholder_characters_does_not_break_parameter_binding():
    SystemConfigFactory.create(key="pct")
    with query_label("Repo.%s%(x)s"):
        assert SystemConfig.objects.filter(key="pct").exists()


def test_query_label_resets_after_an_exception():
    with pytest.raises(RuntimeError), query_label("Repo.fail"):
        raise RuntimeError
    assert current_label() is None


@pytest.mark.django_db
def test_queries_carry_the_label_comment_when_a_label_is_active():
    with CaptureQueriesContext(connection) as captured, query_label("ProductRepository.find"):
        list(SystemConfig.objects.all())
    assert captured.captured_queries[-1]["sql"].startswith(
        "/* repo:ProductRepository.find */ SELECT"
    )


@pytest.mark.django_db
def test_queries_carry_no_comment_without_a_label():
    with CaptureQueriesContext(connection) as captured:
        list(SystemConfig.objects.all())
    assert captured.captured_queries[-1]["sql"].startswith("SELECT")


@pytest.mark.django_db
def test_labelled_query_returns_the_same_rows():
    SystemConfigFactory.create(key="a.b", value={"x": 1})
    with query_label("X.y"):
        row = SystemConfig.objects.values_list("key", "value").get(key="a.b")
    assert row == ("a.b", {"x": 1})


@pytest.mark.django_db
def test_slow_query_is_logged_with_duration_sql_and_label(settings, caplog):
    settings.REPOSITORIES = {**settings.REPOSITORIES, "SLOW_QUERY_MS": 0}
    with (
        caplog.at_level(logging.WARNING, logger="repositories.queries"),
        query_label("SystemConfigRepository.find_many"),
    ):
        list(SystemConfig.objects.filter(key="nothing"))
    record = caplog.records[-1]
    assert record.name == "repositories.queries"
    assert record.levelno == logging.WARNING
    assert record.label == "SystemConfigRepository.find_many"
    assert record.sql.startswith("/* repo:SystemConfigRepository.find_many */ SELECT")
    assert record.duration_ms >= 0
    assert record.database == "default"
    assert "SystemConfigRepository.find_many" in record.getMessage()


@pytest.mark.django_db
def test_slow_query_is_logged_when_it_takes_longer_than_the_threshold(settings, caplog):
    settings.REPOSITORIES = {**settings.REPOSITORIES, "SLOW_QUERY_MS": 50}
    with caplog.at_level(logging.WARNING, logger="repositories.queries"):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        fast = len(caplog.records)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.08)")
    assert fast == 0
    assert len(caplog.records) == 1
    assert caplog.records[0].duration_ms >= 50
    assert "pg_sleep" in caplog.records[0].sql


@pytest.mark.django_db
def test_slow_query_is_logged_when_the_statement_fails(settings, caplog):
    settings.REPOSITORIES = {**settings.REPOSITORIES, "SLOW_QUERY_MS": 0}
    with (
        caplog.at_level(logging.WARNING, logger="repositories.queries"),
        pytest.raises(DatabaseError, match="no_such_table"),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT * FROM no_such_table")
    assert "no_such_table" in caplog.records[-1].sql


@pytest.mark.django_db
def test_count_queries_counts_and_records_statements():
    SystemConfigFactory.create_batch(3)
    with count_queries() as counted:
        list(SystemConfig.objects.all())
        SystemConfig.objects.count()
    assert counted.count == 2
    assert len(counted) == 2
    assert counted.queries[0]["sql"].startswith('SELECT "system_config"')
    assert float(counted.queries[0]["time"]) >= 0
    assert repr(counted) == "<QueryCount 2>"


@pytest.mark.django_db
def test_count_queries_sees_the_labelled_sql():
    with count_queries() as counted, query_label("A.b"):
        SystemConfig.objects.exists()
    assert counted.queries[0]["sql"].startswith("/* repo:A.b */ ")


@pytest.mark.django_db
def test_count_queries_counts_executemany_once():
    with count_queries() as counted, connection.cursor() as cursor:
        cursor.executemany("SELECT %s", [(1,), (2,), (3,)])
    assert counted.count == 1
    assert counted.queries[0]["many"] is True


@pytest.mark.django_db
def test_wrapper_is_installed_once_and_first_on_the_connection():
    connection.ensure_connection()
    instrumentation.add_wrapper(connection)
    connection_created.send(sender=type(connection), connection=connection)
    assert connection.execute_wrappers.count(instrumentation.instrument_query) == 1
    with count_queries():
        assert connection.execute_wrappers[0] is instrumentation.instrument_query
    assert connection.execute_wrappers == [instrumentation.instrument_query]


@pytest.mark.django_db(transaction=True)
def test_wrapper_is_installed_on_a_new_threads_connection():
    seen: list[object] = []

    def work() -> None:
        try:
            with query_label("Thread.work"), count_queries() as counted:
                SystemConfig.objects.exists()
            seen.append(connections["default"].execute_wrappers[0])
            seen.append(counted.queries[0]["sql"])
        finally:
            connections["default"].close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen[0] is instrumentation.instrument_query
    assert str(seen[1]).startswith("/* repo:Thread.work */ ")


def test_install_wraps_already_open_connections(monkeypatch):
    class FakeConnection:
        def __init__(self) -> None:
            self.execute_wrappers: list[object] = []

    fake = FakeConnection()
    monkeypatch.setattr(instrumentation.connections, "all", lambda initialized_only: [fake])
    instrumentation.install()
    assert fake.execute_wrappers == [instrumentation.instrument_query]


def test_slow_query_threshold_follows_settings_changes(settings):
    settings.REPOSITORIES = {**settings.REPOSITORIES, "SLOW_QUERY_MS": 1234}
    assert instrumentation._load_threshold() == pytest.approx(1.234)
    settings.REPOSITORIES = {**settings.REPOSITORIES, "SLOW_QUERY_MS": 5}
    assert instrumentation._slow_query_seconds is None


@pytest.mark.django_db
def test_connection_pool_is_in_use_when_db_pool_is_on(settings):
    pool_on = os.environ.get("DB_POOL", "1").strip().lower() in {"", "1", "true", "yes", "on"}
    connection.ensure_connection()
    assert ("pool" in settings.DATABASES["default"]["OPTIONS"]) is pool_on
    pool = getattr(connection, "pool", None)  # the PostgreSQL backend's psycopg pool
    assert (pool is not None) is pool_on
    if pool is not None:
        assert settings.DATABASES["default"]["CONN_MAX_AGE"] == 0
        assert pool.get_stats()["pool_size"] >= 1
        # The test database, not the development one, is behind the pool.
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone()[0] == connection.settings_dict["NAME"]
