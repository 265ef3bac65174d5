"""Migrations are safe on a live database: bounded lock waits, short locks, safe re-runs.

Like test_migrations.py, these tests migrate the test database itself (transaction=True) and
always migrate it forward again. A second, independent connection plays the application:
it holds a write lock, or an old snapshot, while the migration runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import IntegrityError, OperationalError, ProgrammingError, connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings

from domain import migration_ops
from tests.factories import UserFactory

INDEX = "users_created_idx"  # one of 0003's indexes
INDEX_DEF = f"CREATE INDEX {INDEX} ON public.users USING btree (created_at, id)"


@pytest.fixture
def remigrate():
    """Leave the test database fully migrated whatever the test did."""
    yield
    call_command("migrate", verbosity=0)


@contextmanager
def other_connection() -> Iterator[psycopg.Connection[Any]]:
    """A connection of its own to the test database, outside Django and its pool."""
    params = connection.get_connection_params()
    for key in ("pool", "cursor_factory", "context"):
        params.pop(key, None)
    with psycopg.connect(**params, autocommit=True) as conn:
        yield conn


def show(setting: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {setting}")
        return cursor.fetchone()[0]


def index_state() -> tuple[bool, str] | None:
    """(valid, definition) of INDEX, or None when it does not exist."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indisvalid, pg_get_indexdef(indexrelid) FROM pg_index"
            " WHERE indexrelid = to_regclass(%s)",
            [INDEX],
        )
        row = cursor.fetchone()
    return None if row is None else (row[0], row[1])


def triggers() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        return {row[0] for row in cursor.fetchall()}


def applied(name: str) -> bool:
    return MigrationRecorder(connection).migration_qs.filter(app="domain", name=name).exists()


def sqlmigrate(name: str, *, backwards: bool) -> list[str]:
    """The statements of `manage.py sqlmigrate`, without comments and blank lines."""
    out = StringIO()
    call_command("sqlmigrate", "domain", name, backwards=backwards, stdout=out)
    lines = (line.strip() for line in out.getvalue().splitlines())
    return [line for line in lines if line and not line.startswith("--")]


DOMAIN_MIGRATIONS = sorted(
    name for app, name in MigrationLoader(None).disk_migrations if app == "domain"
)


# sqlmigrate of a non-atomic migration refuses to run inside a transaction (CONCURRENTLY).
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("name", DOMAIN_MIGRATIONS)
def test_every_migration_sets_its_timeouts_before_any_ddl(name, backwards):
    migration = MigrationLoader(None).disk_migrations["domain", name]
    assert isinstance(migration, migration_ops.Migration)
    statements = sqlmigrate(name, backwards=backwards)
    if migration.atomic:
        assert statements[0] == "BEGIN;"
        assert statements[-1] == "COMMIT;"
        statements = statements[1:-1]
        scope = "SET LOCAL"
    else:
        assert statements[-2:] == ["RESET lock_timeout;", "RESET statement_timeout;"]
        scope = "SET"
    assert statements[:2] == [
        f"{scope} lock_timeout = '{migration.lock_timeout}';",
        f"{scope} statement_timeout = '{migration.statement_timeout}';",
    ]


@pytest.mark.django_db(transaction=True)
def test_every_concurrent_index_build_drops_an_invalid_leftover_first():
    statements = sqlmigrate("0003_secondary_indexes", backwards=False)
    builds = [s for s in statements if s.startswith("CREATE INDEX CONCURRENTLY IF NOT EXISTS ")]
    assert len(builds) == 27
    for build in builds:
        match = re.match(r'CREATE INDEX CONCURRENTLY IF NOT EXISTS ("[^"]+")', build)
        assert match
        name = match[1]
        assert statements[statements.index(build) - 1] == (
            f"DROP INDEX CONCURRENTLY IF EXISTS {name};"
        )


def leave_invalid_index_by_unique_violation() -> None:
    """A build that fails while scanning the table (PostgreSQL's documented example)."""
    UserFactory.create_batch(2)  # both is_staff = false
    with pytest.raises(IntegrityError), connection.cursor() as cursor:
        cursor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {INDEX} ON users (is_staff)")


def leave_invalid_index_by_lock_timeout() -> None:
    """The build 0003 itself runs, cut off by lock_timeout while it waits for an old
    transaction (what this project's own lock_timeout can cause)."""
    with other_connection() as app:
        app.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        app.execute("SELECT count(*) FROM users")  # takes the snapshot the build waits for
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
            try:
                with pytest.raises(OperationalError, match="lock timeout"):
                    cursor.execute(f"CREATE INDEX CONCURRENTLY {INDEX} ON users (created_at, id)")
            finally:
                cursor.execute("RESET lock_timeout")
        app.execute("ROLLBACK")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "break_build",
    [leave_invalid_index_by_unique_violation, leave_invalid_index_by_lock_timeout],
    ids=["unique-violation", "lock-timeout"],
)
def test_concurrent_index_migration_reruns_over_an_invalid_index(remigrate, break_build):
    call_command("migrate", "domain", "0002", verbosity=0)
    assert index_state() is None

    break_build()  # as if a previous run of 0003 had failed on this index
    state = index_state()
    assert state is not None
    assert not state[0]  # INVALID
    # The state a plain AddIndexConcurrently cannot get past:
    with pytest.raises(ProgrammingError, match="already exists"), connection.cursor() as cursor:
        cursor.execute(f"CREATE INDEX CONCURRENTLY {INDEX} ON users (created_at, id)")

    call_command("migrate", "domain", "0003", verbosity=0)

    assert index_state() == (True, INDEX_DEF)
    assert applied("0003_secondary_indexes")
    assert (show("lock_timeout"), show("statement_timeout")) == ("0", "0")  # not leaked


@pytest.mark.django_db(transaction=True)
def test_trigger_migration_gives_up_on_a_busy_table_without_holding_the_other(
    remigrate, monkeypatch
):
    monkeypatch.setattr(migration_ops.Migration, "lock_timeout", "300ms")
    call_command("migrate", "domain", "0001", verbosity=0)

    with other_connection() as app:
        app.execute("BEGIN")
        app.execute("LOCK TABLE categories IN ROW EXCLUSIVE MODE")  # an UPDATE in flight
        with pytest.raises(OperationalError, match="lock timeout"):
            call_command("migrate", "domain", "0002", verbosity=0)
        # audit_logs' trigger was committed on its own, its lock long released: writes to
        # audit_logs never waited on categories' lock.
        assert triggers() >= {"audit_logs_append_only"}
        assert "categories_no_cycle" not in triggers()
        assert not applied("0002_audit_append_only")
        assert (show("lock_timeout"), show("statement_timeout")) == ("0", "0")  # reset
        app.execute("ROLLBACK")

    call_command("migrate", "domain", "0002", verbosity=0)  # re-run as is
    assert {"audit_logs_append_only", "categories_no_cycle"} <= triggers()
    assert applied("0002_audit_append_only")


@pytest.mark.django_db(transaction=True)
def test_reverse_of_trigger_migration_gives_up_on_a_busy_table(remigrate, monkeypatch):
    monkeypatch.setattr(migration_ops.Migration, "lock_timeout", "300ms")
    call_command("migrate", "domain", "0002", verbosity=0)

    with other_connection() as app:
        app.execute("BEGIN")
        app.execute("SELECT count(*) FROM audit_logs")  # even a reader blocks DROP TRIGGER
        with pytest.raises(OperationalError, match="lock timeout"):
            call_command("migrate", "domain", "0001", verbosity=0)
        assert "categories_no_cycle" not in triggers()  # dropped first, on its own
        assert "audit_logs_append_only" in triggers()
        app.execute("ROLLBACK")

    call_command("migrate", "domain", "0001", verbosity=0)  # re-run as is
    assert not {"audit_logs_append_only", "categories_no_cycle"} & triggers()


@pytest.mark.django_db
def test_a_timeout_must_be_a_duration(monkeypatch):
    monkeypatch.setattr(migration_ops.Migration, "lock_timeout", "5s'; DROP TABLE users; --")
    with pytest.raises(ValueError, match="bad lock_timeout"):
        sqlmigrate("0001_initial", backwards=False)


@pytest.mark.django_db(transaction=True)
def test_a_non_atomic_migration_refuses_to_run_behind_transaction_pooling():
    """Its SET/RESET and CREATE INDEX CONCURRENTLY need one session: behind PgBouncer in
    transaction mode the SET would land on some server session and stay there."""
    migration = MigrationLoader(connection).get_migration("domain", "0003_secondary_indexes")
    assert isinstance(migration, migration_ops.Migration) and not migration.atomic
    with (
        override_settings(REPOSITORIES={"TRANSACTION_POOLING": True}),
        connection.schema_editor(atomic=False) as editor,
        pytest.raises(ImproperlyConfigured, match="direct connection to PostgreSQL"),
    ):
        migration._set_timeouts(editor, ())
    assert (show("lock_timeout"), show("statement_timeout")) == ("0", "0")  # nothing sent
    # sqlmigrate (collecting SQL, running nothing) still works.
    with override_settings(REPOSITORIES={"TRANSACTION_POOLING": True}):
        statements = sqlmigrate("0003_secondary_indexes", backwards=False)
    assert any("CONCURRENTLY" in statement for statement in statements)
