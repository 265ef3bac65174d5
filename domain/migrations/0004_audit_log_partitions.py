"""audit_logs becomes a table partitioned by month on occurred_at; existing rows move over.

PostgreSQL cannot turn a table into a partitioned one in place, so a partitioned copy is
built next to it and the two are swapped. The migration is not atomic: each step below is
a transaction of its own (step 2 and 3 several), so no lock is held from one to the next.

1. Create ``audit_logs_partitioned`` (``LIKE audit_logs``: same columns, types and
   defaults, an identity of its own), its secondary indexes (partitioned indexes, built
   while it has no partition) and the append-only trigger (cloned onto every partition).
2. Create its DEFAULT partition, one partition per month that holds rows (found by one
   probe of audit_occurred_idx per month, not a scan) and one for the current month and
   each of the next three; a transaction per partition. Each partition's indexes are
   named after their parent index and the partition (``audit_occurred_idx_p2025_07``),
   so that EXPLAIN says which index a scan uses.
3. Copy the rows in batches of BATCH, a transaction each: writes go on meanwhile. The
   copy stops at a horizon read under a brief SHARE lock (it waits for the writers in
   flight and holds off new ones for that instant), so every row up to it is committed.
4. Swap, under ACCESS EXCLUSIVE on audit_logs (bounded by lock_timeout): copy the rows
   written since the horizon, continue the identity after both the old sequence and the
   largest id, drop the old table and rename the new one, its key, sequence and indexes
   into place. Reads and writes of audit_logs wait for this transaction only.

Month partitions span UTC calendar months: ``audit_logs_p2025_07`` holds
``[2025-07-01 00:00+00, 2025-08-01 00:00+00)``; rows outside every month land in
``audit_logs_default``. ``manage.py manage_audit_partitions`` creates the next months,
moves rows out of the DEFAULT partition and applies retention (docs/scaling.md).

The primary key is ``(id, occurred_at)``: PostgreSQL requires the partition key in every
unique constraint of a partitioned table. ``id`` stays the model's primary key for Django;
it is unique in practice because only the identity assigns it (no code writes ids).

Reverse: a plain ``audit_logs_plain`` with ``PRIMARY KEY (id)`` is built, filled and
swapped in the same way. Rows of partitions that manage_audit_partitions has detached are
no longer part of audit_logs: they stay in their own tables.

Every step is skipped when audit_logs already has the shape the migration leads to, and
steps 1 to 3 can be re-run (IF NOT EXISTS; the copy resumes after the largest id copied),
so a run stopped half-way (lock timeout) is simply run again.
Requires PostgreSQL 14+ (CREATE OR REPLACE TRIGGER; row triggers on partitioned tables
need 13+); the project supports 15+.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from django.db import migrations, transaction
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from domain import migration_ops

#: Rows per copy transaction: short transactions, little WAL per commit.
BATCH = 10_000

#: The indexes of migration 0003, by name, and the primary key's.
SECONDARY_INDEXES = {
    "audit_entity_idx": "(entity_type, entity_id, occurred_at)",
    "audit_actor_idx": "(actor_id, occurred_at)",
    "audit_occurred_idx": "(occurred_at, id)",
    "audit_action_idx": "(action, occurred_at)",
}
PRIMARY_KEYS = {"partitioned": "id, occurred_at", "plain": "id"}


def _create(kind: str) -> list[str]:
    """Create audit_logs_<kind>, shaped like audit_logs, with its indexes and trigger."""
    table = f"audit_logs_{kind}"
    partition_by = " PARTITION BY RANGE (occurred_at)" if kind == "partitioned" else ""
    # Names end in _<kind> until the swap: the old table still holds the plain names.
    return [
        f"CREATE TABLE IF NOT EXISTS {table} (LIKE audit_logs INCLUDING DEFAULTS "
        "INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS, "
        f"CONSTRAINT audit_logs_pkey_{kind} PRIMARY KEY ({PRIMARY_KEYS[kind]})){partition_by};",
        *(
            f"CREATE INDEX IF NOT EXISTS {name}_{kind} ON {table} {columns};"
            for name, columns in SECONDARY_INDEXES.items()
        ),
        f"CREATE OR REPLACE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION audit_logs_refuse_change();",
    ]


# One transaction per partition (COMMIT in the loop), so that the locks taken never add
# up to one per partition and index.
CREATE_PARTITIONS = """
DO $$
DECLARE
    part record;
    ix record;
BEGIN
    FOR part IN
        SELECT 'audit_logs_default' AS name, 'DEFAULT' AS bounds
        UNION ALL
        SELECT 'audit_logs_p' || to_char(month, 'YYYY_MM'),
               format('FOR VALUES FROM (%L) TO (%L)',
                      to_char(month, 'YYYY-MM-DD') || ' 00:00:00+00',
                      to_char(month + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00')
        FROM (
            WITH RECURSIVE found(m) AS (
                SELECT date_trunc('month', min(occurred_at) AT TIME ZONE 'UTC')
                FROM audit_logs
                UNION ALL
                SELECT (SELECT date_trunc('month', a.occurred_at AT TIME ZONE 'UTC')
                        FROM audit_logs a
                        WHERE a.occurred_at >= (found.m + interval '1 month') AT TIME ZONE 'UTC'
                        ORDER BY a.occurred_at LIMIT 1)
                FROM found WHERE found.m IS NOT NULL
            )
            SELECT m FROM found WHERE m IS NOT NULL
            UNION
            SELECT generate_series(date_trunc('month', now() AT TIME ZONE 'UTC'),
                                   date_trunc('month', now() AT TIME ZONE 'UTC')
                                       + interval '3 months',
                                   interval '1 month')
        ) AS months(month)
    LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF audit_logs_partitioned %s',
                       part.name, part.bounds);
        FOR ix IN
            SELECT child.relname AS current_name,
                   regexp_replace(parent.relname, '_partitioned$', '')
                       || '_' || substr(part.name, length('audit_logs_') + 1) AS wanted_name
            FROM pg_index x
            JOIN pg_class child ON child.oid = x.indexrelid
            JOIN pg_inherits i ON i.inhrelid = child.oid
            JOIN pg_class parent ON parent.oid = i.inhparent
            WHERE x.indrelid = part.name::regclass
        LOOP
            IF ix.current_name <> ix.wanted_name THEN
                EXECUTE format('ALTER INDEX %I RENAME TO %I', ix.current_name, ix.wanted_name);
            END IF;
        END LOOP;
        COMMIT;
    END LOOP;
END
$$;
""".strip()


def _swap(kind: str) -> list[str]:
    """Move the last rows into audit_logs_<kind> and put it in audit_logs' place."""
    staging = f"audit_logs_{kind}"
    return [
        "LOCK TABLE audit_logs IN ACCESS EXCLUSIVE MODE;",
        # The rows written since the copy's horizon (every row up to it is in `staging`).
        f"INSERT INTO {staging} SELECT * FROM audit_logs "
        f"WHERE id > (SELECT coalesce(max(id), 0) FROM {staging});",
        CONTINUE_IDENTITY.replace("STAGING", staging),
        "DROP TABLE audit_logs;",
        f"ALTER TABLE {staging} RENAME TO audit_logs;",
        f"ALTER TABLE audit_logs RENAME CONSTRAINT audit_logs_pkey_{kind} TO audit_logs_pkey;",
        f"ALTER SEQUENCE {staging}_id_seq RENAME TO audit_logs_id_seq;",
        *(f"ALTER INDEX {name}_{kind} RENAME TO {name};" for name in SECONDARY_INDEXES),
    ]


# The new identity continues after the old one and after the largest id, whichever is
# further: an id handed out to a rolled-back insert is never reused.
CONTINUE_IDENTITY = """
DO $$
DECLARE
    next_last bigint;
    next_called boolean;
    top bigint;
BEGIN
    EXECUTE format('SELECT last_value, is_called FROM %s',
                   pg_get_serial_sequence('audit_logs', 'id'))
        INTO next_last, next_called;
    SELECT max(id) INTO top FROM STAGING;
    IF top > next_last OR (top = next_last AND NOT next_called) THEN
        next_last := top;
        next_called := true;
    END IF;
    PERFORM setval(pg_get_serial_sequence('STAGING', 'id'), next_last, next_called);
END
$$;
""".strip()


def _audit_logs_kind(schema_editor: BaseDatabaseSchemaEditor) -> str | None:
    """'p' when audit_logs is partitioned, 'r' when it is a plain table."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass('audit_logs')")
        row = cursor.fetchone()
    return None if row is None else str(row[0])


@contextmanager
def _own_transaction(schema_editor: BaseDatabaseSchemaEditor) -> Iterator[None]:
    if schema_editor.collect_sql:  # sqlmigrate: show (and let squawk see) the boundaries
        schema_editor.collected_sql.append("BEGIN;")
        yield
        schema_editor.collected_sql.append("COMMIT;")
        return
    with transaction.atomic(using=schema_editor.connection.alias):
        yield


class Step(migrations.RunSQL):
    """RunSQL, in one transaction of its own unless `atomic=False` (the SQL commits
    itself); skipped when audit_logs already has the shape the migration leads to
    (partitioned forwards, plain backwards): an earlier, interrupted run got that far."""

    def __init__(self, sql: Any, reverse_sql: Any, *, atomic: bool = True) -> None:
        super().__init__(sql, reverse_sql)
        self.own_transaction = atomic

    def _transaction(self, schema_editor: BaseDatabaseSchemaEditor) -> Any:
        return _own_transaction(schema_editor) if self.own_transaction else nullcontext()

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.collect_sql or _audit_logs_kind(schema_editor) != "p":
            with self._transaction(schema_editor):
                super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.collect_sql or _audit_logs_kind(schema_editor) != "r":
            with self._transaction(schema_editor):
                super().database_backwards(app_label, schema_editor, from_state, to_state)


def _copy(schema_editor: BaseDatabaseSchemaEditor, kind: str, done: str) -> None:
    """Copy audit_logs' committed rows into audit_logs_<kind> in batches, resuming after
    the largest id already there; nothing when audit_logs' relkind is already `done`."""
    if _audit_logs_kind(schema_editor) == done:
        return
    target = f"audit_logs_{kind}"
    alias = schema_editor.connection.alias
    with transaction.atomic(using=alias), schema_editor.connection.cursor() as cursor:
        # SHARE waits for the transactions writing audit_logs and holds off new ones
        # while it is held: every id up to the horizon is then committed or never will be.
        cursor.execute("LOCK TABLE audit_logs IN SHARE MODE")
        cursor.execute("SELECT coalesce(max(id), 0) FROM audit_logs")
        horizon = cursor.fetchone()[0]
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {target}")
        after = cursor.fetchone()[0]
    while after < horizon:
        with transaction.atomic(using=alias), schema_editor.connection.cursor() as cursor:
            cursor.execute(
                f"WITH moved AS (INSERT INTO {target} SELECT * FROM audit_logs "
                "WHERE id > %s AND id <= %s ORDER BY id LIMIT %s RETURNING id) "
                "SELECT max(id) FROM moved",
                [after, horizon, BATCH],
            )
            last = cursor.fetchone()[0]
        if last is None:
            break
        after = last


def copy_into_partitioned(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _copy(schema_editor, "partitioned", done="p")


def copy_into_plain(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _copy(schema_editor, "plain", done="r")


class Migration(migration_ops.Migration):
    # A transaction per step, per partition and per batch (see the module docstring).
    atomic = False
    # The swap is the point of the migration, so squawk's two rules against it are waived
    # (both directions). The indexes need no waiver: squawk sees their table created in
    # the same transaction (and an index on a partitioned table cannot be CONCURRENTLY).
    squawk_ignore = (
        # DROP TABLE audit_logs drops the old table once its rows are in the new one,
        # which takes its name in the same transaction: no row is lost.
        "ban-drop-table",
        # The renames put the new table (and its key, sequence and indexes) in the old
        # one's place in the transaction that drops the old one: every query sees either
        # the old table or the new one, under the same name and with the same columns.
        "renaming-table",
    )
    squawk_ignore_backwards = squawk_ignore

    dependencies = [
        ("domain", "0003_secondary_indexes"),
    ]

    # Backwards, the operations run last to first: _create("plain"), the copy, _swap.
    operations = [
        Step(_create("partitioned"), _swap("plain")),
        Step([CREATE_PARTITIONS], migrations.RunSQL.noop, atomic=False),
        migrations.RunPython(copy_into_partitioned, copy_into_plain, atomic=False),
        Step(_swap("partitioned"), _create("plain")),
    ]
