"""The audit log partitioned by month: routing, the append-only rule, pruning, the
manage_audit_partitions command and migration 0004 both ways with data.

Most tests run in the test's transaction (DDL is transactional: their partitions vanish
with it). Those that need commits (DETACH ... CONCURRENTLY, migrations) run with
transaction=True and put the partitions back as the migration left them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import InternalError, OperationalError, ProgrammingError, connection, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from domain import audit_partitions, migration_ops
from domain.audit_partitions import Month
from domain.models import AuditLog
from repositories.audit_log import AuditLogRepository
from tests.factories import AuditLogFactory

TODAY = Month.of(timezone.now())
REFUSED = (ProgrammingError, InternalError)  # SQLSTATE 42501 from the trigger


def run(*args: str) -> str:
    out = StringIO()
    call_command("manage_audit_partitions", *args, stdout=out)
    return out.getvalue()


def rows_in(month: Month, count: int = 2, day: int = 3) -> list[AuditLog]:
    return AuditLogFactory.create_batch(count, occurred_at=month.start + dt.timedelta(days=day))


def sql(query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def home_of(row: AuditLog) -> str:
    """The partition holding `row`."""
    return sql("SELECT tableoid::regclass::text FROM audit_logs WHERE id = %s", [row.pk])[0][0]


def attached() -> set[str]:
    return set(audit_partitions.read_state().attached.values())


@contextmanager
def other_connection() -> Iterator[psycopg.Connection[Any]]:
    """A connection of its own to the test database, outside Django and its pool."""
    params = connection.get_connection_params()
    for key in ("pool", "cursor_factory", "context"):
        params.pop(key, None)
    with psycopg.connect(**params, autocommit=True) as conn:
        yield conn


# -- routing and the append-only rule --------------------------------------------------


@pytest.mark.django_db
def test_rows_of_each_month_land_in_its_partition_and_others_in_the_default():
    run("--ahead", "1")
    this_month = rows_in(TODAY, 1)[0]
    next_month = AuditLogFactory.create(occurred_at=TODAY.plus(1).start)  # lower bound
    last_instant = AuditLogFactory.create(occurred_at=TODAY.end - dt.timedelta(microseconds=1))
    old = rows_in(Month(2001, 3), 1)[0]

    assert home_of(this_month) == home_of(last_instant) == audit_partitions.partition_name(TODAY)
    assert home_of(next_month) == audit_partitions.partition_name(TODAY.plus(1))
    assert home_of(old) == "audit_logs_default"


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["audit_logs", "partition", "audit_logs_default"])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {} SET action = 'forged' WHERE id = %s",
        # Moving a row to another month's partition is an UPDATE too.
        "UPDATE {} SET occurred_at = occurred_at - interval '40 years' WHERE id = %s",
        "DELETE FROM {} WHERE id = %s",
    ],
    ids=["update", "move", "delete"],
)
def test_update_and_delete_are_refused_on_the_parent_and_on_each_partition(target, statement):
    run("--ahead", "0")
    row = rows_in(TODAY, 1)[0] if target != "audit_logs_default" else rows_in(Month(2001, 3))[0]
    table = audit_partitions.partition_name(TODAY) if target == "partition" else target
    with pytest.raises(REFUSED) as info, transaction.atomic():
        sql(statement.format(table), [row.pk])
    assert getattr(info.value.__cause__, "sqlstate", None) == "42501"
    assert AuditLog.objects.get(pk=row.pk).action == row.action


@pytest.mark.django_db
def test_inserts_through_the_orm_copy_and_the_repositories_keep_one_identity():
    run("--ahead", "0")
    first = AuditLogFactory.create()
    AuditLog.objects.bulk_create([AuditLog(action="a", entity_type="x", entity_id="1")] * 2)
    last = AuditLogFactory.create()
    ids = list(AuditLog.objects.order_by("id").values_list("id", flat=True))
    assert ids == list(range(first.pk, last.pk + 1))
    constraint = sql(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'audit_logs_pkey'"
    )
    assert constraint == [("PRIMARY KEY (id, occurred_at)",)]


# -- pruning ---------------------------------------------------------------------------


def explain_find_many(filters: dict[str, str]) -> tuple[list[AuditLog], str]:
    """Run AuditLogRepository.find_many and EXPLAIN the SELECT it sent."""
    with CaptureQueriesContext(connection) as captured:
        found = AuditLogRepository().find_many(filters)
    select = next(q["sql"] for q in captured.captured_queries if "audit_logs" in q["sql"])
    plan = "\n".join(row[0] for row in sql("EXPLAIN (COSTS OFF) " + select))
    return found, plan


def scanned(plan: str) -> set[str]:
    """The tables a plan reads."""
    return set(re.findall(r" on (audit_logs\w*)", plan))


@pytest.mark.django_db
def test_a_time_range_query_reads_only_the_partitions_of_its_months():
    months = [Month(2001, 2), Month(2001, 3), Month(2001, 4)]
    rows = {m: rows_in(m, 3, day=10) for m in months}
    run("--ahead", "0")  # gives each month with rows in the DEFAULT its partition
    sql("ANALYZE audit_logs")

    found, plan = explain_find_many(
        {"occurred_after": "2001-03-05T00:00:00Z", "occurred_before": "2001-03-20T00:00:00Z"}
    )
    assert {r.pk for r in found} == {r.pk for r in rows[Month(2001, 3)]}
    assert scanned(plan) == {"audit_logs_p2001_03"}, plan

    found, plan = explain_find_many(
        {"occurred_after": "2001-03-05T00:00:00Z", "occurred_before": "2001-04-20T00:00:00Z"}
    )
    assert len(found) == 6
    assert scanned(plan) == {"audit_logs_p2001_03", "audit_logs_p2001_04"}, plan

    # A range no month partition covers leaves only the DEFAULT to read.
    _, plan = explain_find_many(
        {"occurred_after": "1999-01-01T00:00:00Z", "occurred_before": "1999-02-01T00:00:00Z"}
    )
    assert scanned(plan) == {"audit_logs_default"}, plan


# -- the command -----------------------------------------------------------------------


@pytest.mark.django_db
def test_command_creates_the_coming_months_once():
    out = run("--ahead", "6")
    wanted = {audit_partitions.partition_name(TODAY.plus(k)) for k in range(7)}
    assert wanted <= attached()
    assert "Created " + audit_partitions.partition_name(TODAY.plus(6)) in out
    assert "0 created, 0 detached, 0 dropped" in run("--ahead", "6")


@pytest.mark.django_db
def test_command_moves_a_new_months_rows_out_of_the_default_first():
    far = TODAY.plus(9)
    rows = rows_in(far, 3)
    keep = rows_in(Month(2001, 3), 1)
    assert {home_of(r) for r in rows} == {"audit_logs_default"}

    out = run("--ahead", "0")

    name = audit_partitions.partition_name(far)
    assert f"Created {name}" in out and "3 rows moved from audit_logs_default" in out
    assert {home_of(r) for r in rows} == {name}  # same ids, same rows
    assert home_of(keep[0]) == "audit_logs_p2001_03"
    assert AuditLog.objects.count() == 4
    # The new partition has the parent's indexes, named after them, and the trigger.
    indexes = {r[0] for r in sql("SELECT indexname FROM pg_indexes WHERE tablename = %s", [name])}
    suffix = name.removeprefix("audit_logs_")
    assert indexes == {
        f"{i}_{suffix}"
        for i in (
            "audit_logs_pkey",
            "audit_entity_idx",
            "audit_actor_idx",
            "audit_occurred_idx",
            "audit_action_idx",
        )
    }
    with pytest.raises(REFUSED), transaction.atomic():
        sql(f"DELETE FROM {name}")
    # The DEFAULT's trigger is back on.
    rows_in(Month(1999, 1), 1)
    with pytest.raises(REFUSED), transaction.atomic():
        sql("DELETE FROM audit_logs_default")


@pytest.mark.django_db
def test_retention_detaches_old_months_and_drop_drops_them(settings):
    settings.AUDIT_LOG_RETENTION_MONTHS = 12
    expired = rows_in(TODAY.plus(-13)) + rows_in(TODAY.plus(-14))
    kept = rows_in(TODAY.plus(-12))

    out = run()
    gone = [audit_partitions.partition_name(TODAY.plus(-k)) for k in (14, 13)]
    for name in gone:
        assert f"Detached {name}." in out  # not concurrently: audit_logs has a DEFAULT
        assert name not in attached()
        assert sql(f"SELECT count(*) FROM {name}") == [(2,)]  # kept, outside audit_logs
    assert not AuditLog.objects.filter(pk__in=[r.pk for r in expired]).exists()
    assert AuditLog.objects.filter(pk__in=[r.pk for r in kept]).count() == 2
    assert "2 detached tables kept" in out

    out = run("--drop")
    assert all(f"Dropped {name}." in out for name in gone)
    assert not sql("SELECT 1 FROM pg_class WHERE relname = ANY(%s)", [gone])
    assert audit_partitions.partition_name(TODAY.plus(-12)) in attached()


@pytest.mark.django_db
def test_a_detached_months_new_rows_stay_in_the_default():
    rows_in(Month(2001, 3), 1)
    run("--ahead", "0", "--retention-months", "1")  # creates, then detaches 2001-03
    late = rows_in(Month(2001, 3), 1)[0]
    out = run("--ahead", "0")
    assert "Skipped 2001-03: a detached table audit_logs_p2001_03 exists" in out
    assert home_of(late) == "audit_logs_default"


@pytest.mark.django_db
def test_dry_run_changes_nothing():
    row = rows_in(Month(2001, 3), 1)[0]
    before = attached()
    out = run("--ahead", "8", "--retention-months", "1", "--drop", "--dry-run")
    assert "Would create audit_logs_p2001_03" in out
    assert "Would detach audit_logs_p2001_03." in out and "Would drop audit_logs_p2001_03." in out
    assert "dry run: nothing changed" in out
    assert attached() == before
    assert home_of(row) == "audit_logs_default"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "setting", "message"),
    [
        (["--drop"], None, "--drop needs a retention"),
        (["--retention-months", "0"], None, "1 or more"),
        ([], "twelve", "1 or more"),
        (["--ahead", "-1"], None, "0 or more"),
    ],
)
def test_command_refuses_bad_settings(settings, args, setting, message):
    settings.AUDIT_LOG_RETENTION_MONTHS = setting
    with pytest.raises(CommandError, match=message):
        run(*args)


@pytest.mark.django_db
def test_command_gives_up_on_a_busy_default_partition_within_lock_timeout():
    rows_in(Month(2001, 3), 1)
    with other_connection() as app:
        app.execute("BEGIN")
        app.execute("LOCK TABLE audit_logs_default IN ACCESS SHARE MODE")  # a reader
        with pytest.raises(CommandError, match="lock timeout"):
            run("--ahead", "0", "--lock-timeout", "200ms")
        app.execute("ROLLBACK")
    assert "audit_logs_p2001_03" not in attached()
    assert "Created audit_logs_p2001_03" in run("--ahead", "0")


@pytest.mark.django_db
def test_a_second_run_at_the_same_time_stops_at_once():
    with other_connection() as app:
        app.execute("SELECT pg_advisory_lock(hashtext('audit_logs partitions'))")
        with pytest.raises(CommandError, match="in progress"):
            run()


def test_plan_keeps_the_current_month_and_the_retention_before_it():
    state = audit_partitions.State(
        partitioned=True,
        attached={Month(2025, m): f"p{m}" for m in range(1, 8)},
        default="audit_logs_default",
        detached={Month(2024, 11): "old"},
    )
    todo = audit_partitions.plan(
        state,
        [Month(2024, 12), Month(2024, 11)],
        today=Month(2025, 7),
        ahead=2,
        retention=5,
        drop=True,
    )
    assert todo.create == (Month(2024, 12), Month(2025, 8), Month(2025, 9))
    assert todo.detach == (Month(2024, 12), Month(2025, 1))  # 2025-02 .. 2025-07 stay
    assert todo.drop == (Month(2024, 11), Month(2024, 12), Month(2025, 1))
    assert todo.blocked == (Month(2024, 11),)
    assert Month(2025, 1).plus(-1) == Month(2024, 12) and str(Month(2025, 1)) == "2025-01"


# -- with commits: CONCURRENTLY and the migration ---------------------------------------


@pytest.fixture
def restore_partitions():
    """Put audit_logs back as migration 0004 leaves an empty table: the DEFAULT attached,
    no month partition before the current one, no detached month table."""
    yield
    call_command("migrate", verbosity=0)
    state = audit_partitions.read_state()
    with connection.cursor() as cursor:
        for name in state.pending:
            cursor.execute(f"ALTER TABLE audit_logs DETACH PARTITION {name} FINALIZE")
        for month, name in {**state.attached, **state.detached}.items():
            if month < TODAY:
                cursor.execute(f"DROP TABLE {name}")
        if audit_partitions.read_state().default is None:
            cursor.execute("ALTER TABLE audit_logs ATTACH PARTITION audit_logs_default DEFAULT")


@pytest.mark.django_db(transaction=True)
def test_without_a_default_partition_detach_runs_concurrently_and_resumes(restore_partitions):
    rows_in(TODAY.plus(-14))
    rows_in(TODAY.plus(-15))
    run("--ahead", "0")  # their partitions
    sql("ALTER TABLE audit_logs DETACH PARTITION audit_logs_default")
    first, second = (audit_partitions.partition_name(TODAY.plus(-k)) for k in (15, 14))

    with other_connection() as app:
        app.execute("BEGIN")
        app.execute("SELECT count(*) FROM audit_logs")  # an old reader the detach waits for
        with pytest.raises(CommandError, match="lock timeout"):
            run("--retention-months", "12", "--lock-timeout", "300ms")
        assert audit_partitions.read_state().pending == (first,)  # half-detached
        app.execute("ROLLBACK")

    out = run("--retention-months", "12")
    assert f"Finalizing the detach of {first}." in out
    assert f"Detached {second} concurrently." in out
    assert not {first, second} & attached()
    assert AuditLog.objects.count() == 0


def applied(name: str) -> bool:
    return MigrationRecorder(connection).migration_qs.filter(app="domain", name=name).exists()


def relkind() -> str:
    return sql("SELECT relkind::text FROM pg_class WHERE oid = 'audit_logs'::regclass")[0][0]


def all_ids() -> list[int]:
    return [r[0] for r in sql("SELECT id FROM audit_logs ORDER BY id")]


@pytest.mark.django_db(transaction=True)
def test_migration_back_to_0003_and_forward_again_keeps_every_row(restore_partitions):
    for month in (TODAY, TODAY.plus(1), Month(2001, 3), Month(2001, 5)):
        rows_in(month, 3)
    ids = all_ids()
    assert home_of(AuditLog.objects.get(pk=ids[6])) == "audit_logs_default"  # 2001-03

    call_command("migrate", "domain", "0003", verbosity=0)
    assert relkind() == "r"
    assert all_ids() == ids
    assert sql(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'audit_logs_pkey'"
    ) == [("PRIMARY KEY (id)",)]
    indexes = sql("SELECT indexname FROM pg_indexes WHERE tablename = 'audit_logs'")
    assert {r[0] for r in indexes} == {
        "audit_logs_pkey",
        "audit_entity_idx",
        "audit_actor_idx",
        "audit_occurred_idx",
        "audit_action_idx",
    }
    assert {r[0] for r in sql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")} >= {
        "audit_logs_append_only"
    }
    plain = AuditLogFactory.create()
    assert plain.pk == ids[-1] + 1  # the identity continued

    call_command("migrate", "domain", "0004", verbosity=0)
    assert relkind() == "p"
    assert all_ids() == [*ids, plain.pk]
    assert home_of(AuditLog.objects.get(pk=ids[6])) == "audit_logs_p2001_03"  # a month with rows
    assert home_of(AuditLog.objects.get(pk=ids[0])) == audit_partitions.partition_name(TODAY)
    assert AuditLogFactory.create().pk == plain.pk + 1
    with pytest.raises(REFUSED), transaction.atomic():
        sql("UPDATE audit_logs SET action = 'forged'")


@pytest.mark.django_db(transaction=True)
def test_migration_gives_up_on_a_busy_table_and_is_run_again_as_is(restore_partitions, monkeypatch):
    call_command("migrate", "domain", "0003", verbosity=0)
    rows_in(TODAY, 5)
    monkeypatch.setattr(migration_ops.Migration, "lock_timeout", "300ms")

    with other_connection() as app:
        app.execute("BEGIN")
        app.execute("SELECT count(*) FROM audit_logs")  # a reader: the swap must wait
        with pytest.raises(OperationalError, match="lock timeout"):
            call_command("migrate", "domain", "0004", verbosity=0)
        app.execute("ROLLBACK")
        assert not applied("0004_audit_log_partitions")
        assert relkind() == "r"
        assert sql("SELECT count(*) FROM audit_logs_partitioned") == [(5,)]  # copied
        # Written after the copy: the re-run's swap brings it over.
        app.execute(
            "INSERT INTO audit_logs (action, entity_type, entity_id) VALUES ('a', 'x', '1')"
        )

    ids = all_ids()
    call_command("migrate", "domain", "0004", verbosity=0)
    assert applied("0004_audit_log_partitions")
    assert relkind() == "p"
    assert all_ids() == ids and len(ids) == 6
    assert sql("SHOW lock_timeout") == [("0",)]


def test_refuses_to_run_behind_transaction_pooling():
    """A session advisory lock and a session lock_timeout cannot work through PgBouncer in
    transaction mode (each statement may get another server session, and what is set
    stays on it for other clients)."""
    with (
        override_settings(REPOSITORIES={"TRANSACTION_POOLING": True}),
        pytest.raises(CommandError, match="direct connection to PostgreSQL"),
    ):
        run()
