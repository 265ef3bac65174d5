"""The audit log's monthly partitions: read them, plan, create, detach and drop them.

audit_logs is partitioned by range on occurred_at (migration 0004): one partition per UTC
calendar month, named ``audit_logs_pYYYY_MM``, and ``audit_logs_default`` for rows of
any month without one. ``manage.py manage_audit_partitions`` drives this module.

Locks, each step in a transaction of its own and waiting at most `lock_timeout`:

- Creating a month builds a standalone table, moves the month's rows out of the DEFAULT
  partition into it (they would otherwise make ATTACH fail: "updated partition constraint
  for default partition would be violated") and attaches it. ATTACH takes SHARE UPDATE
  EXCLUSIVE on audit_logs, which no read or write waits for, and ACCESS EXCLUSIVE on the
  DEFAULT partition (taken first here, so no row can land there meanwhile): only queries
  whose plan keeps the DEFAULT wait, for as long as the move takes.
- Detaching uses ``DETACH PARTITION ... CONCURRENTLY`` when audit_logs has no DEFAULT
  partition; PostgreSQL refuses it when there is one, so then the plain DETACH runs, which
  holds ACCESS EXCLUSIVE on audit_logs for a catalog update (milliseconds once granted).
- Dropping a detached table locks that table only.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, transaction

from domain.models import AuditLog

#: The trigger of migration 0002 that refuses UPDATE and DELETE, cloned onto each partition.
APPEND_ONLY_TRIGGER = "audit_logs_append_only"
_MONTH_NAME = re.compile(r"_p(\d{4})_(\d{2})$")


@dataclass(frozen=True, order=True)
class Month:
    """A UTC calendar month, the span of one partition."""

    year: int
    month: int

    @classmethod
    def of(cls, moment: dt.datetime) -> Month:
        """Return the UTC month `moment` (an aware datetime) falls in."""
        utc = moment.astimezone(dt.UTC)
        return cls(utc.year, utc.month)

    def plus(self, months: int) -> Month:
        """Return the month `months` later (earlier when negative)."""
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(self.year, self.month, 1, tzinfo=dt.UTC)

    @property
    def end(self) -> dt.datetime:
        return self.plus(1).start

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def table() -> str:
    """Return the partitioned table: the audit model's."""
    return str(AuditLog._meta.db_table)


def partition_name(month: Month) -> str:
    """Return the name of `month`'s partition: audit_logs_p2025_07."""
    return f"{table()}_p{month.year:04d}_{month.month:02d}"


def default_name() -> str:
    """Return the name of the DEFAULT partition."""
    return f"{table()}_default"


def month_of_name(name: str) -> Month | None:
    """Return the month a partition name stands for, None for any other name."""
    match = _MONTH_NAME.search(name)
    if match is None or name != partition_name(Month(int(match[1]), int(match[2]))):
        return None
    return Month(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class State:
    """audit_logs' partitions as the catalog has them."""

    partitioned: bool
    attached: dict[Month, str] = field(default_factory=dict)
    default: str | None = None
    #: Partitions left half-detached by an interrupted DETACH ... CONCURRENTLY.
    pending: tuple[str, ...] = ()
    #: Tables named like a month's partition that are not attached: detached earlier.
    detached: dict[Month, str] = field(default_factory=dict)
    #: Attached partitions of other names (made by hand); never touched.
    unmanaged: tuple[str, ...] = ()


PARTITIONS_SQL = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', i.inhdetachpending
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = %s::regclass
ORDER BY c.relname
"""
DETACHED_SQL = """
SELECT c.relname
FROM pg_class c
WHERE c.relkind = 'r' AND NOT c.relispartition
  AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = %s::regclass)
  AND starts_with(c.relname, %s)
"""


def read_state(using: str = "default") -> State:
    """Return audit_logs' partitions, pending detaches and detached month tables."""
    connection = connections[using]
    parent = connection.ops.quote_name(table())
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [parent])
        row = cursor.fetchone()
        if row is None or row[0] != "p":
            return State(partitioned=False)
        cursor.execute(PARTITIONS_SQL, [parent])
        rows = cursor.fetchall()
        cursor.execute(DETACHED_SQL, [parent, f"{table()}_p"])
        detached_names = [name for (name,) in cursor.fetchall()]
    attached: dict[Month, str] = {}
    default = None
    unmanaged = []
    for name, is_default, _pending in rows:
        month = month_of_name(name)
        if is_default:
            default = name
        elif month is not None:
            attached[month] = name
        else:
            unmanaged.append(name)
    detached = {m: n for n in detached_names if (m := month_of_name(n)) is not None}
    return State(
        partitioned=True,
        attached=attached,
        default=default,
        pending=tuple(name for name, _default, pending in rows if pending),
        detached=detached,
        unmanaged=tuple(unmanaged),
    )


# One index probe per month (audit_occurred_idx on the DEFAULT), not a scan of its rows.
MONTHS_IN_DEFAULT_SQL = """
WITH RECURSIVE found(m) AS (
    SELECT date_trunc('month', min({col}) AT TIME ZONE 'UTC') FROM {default}
    UNION ALL
    SELECT (SELECT date_trunc('month', d.{col} AT TIME ZONE 'UTC') FROM {default} d
            WHERE d.{col} >= (found.m + interval '1 month') AT TIME ZONE 'UTC'
            ORDER BY d.{col} LIMIT 1)
    FROM found WHERE found.m IS NOT NULL
)
SELECT m FROM found WHERE m IS NOT NULL
"""


def months_in_default(state: State, using: str = "default") -> list[Month]:
    """Return the months that have rows in the DEFAULT partition, oldest first."""
    if state.default is None:
        return []
    connection = connections[using]
    quote = connection.ops.quote_name
    sql = MONTHS_IN_DEFAULT_SQL.format(col=quote(_key_column()), default=quote(state.default))
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [Month(m.year, m.month) for (m,) in cursor.fetchall()]


@dataclass(frozen=True)
class Plan:
    """What a run does, in this order: create, detach, drop."""

    create: tuple[Month, ...]
    detach: tuple[Month, ...]
    drop: tuple[Month, ...]
    #: Months whose partition cannot be created: a detached table of that name exists.
    #: Their rows, if any, stay in (or go to) the DEFAULT partition.
    blocked: tuple[Month, ...]


def plan(
    state: State,
    in_default: Iterable[Month],
    *,
    today: Month,
    ahead: int,
    retention: int | None,
    drop: bool,
) -> Plan:
    """Return the partitions to create, detach and drop.

    Created: the month of `today` and the `ahead` next ones, and every month with rows in
    the DEFAULT partition. With `retention` (months, at least 1), a partition is detached
    once its whole month lies more than `retention` months before the start of `today`'s
    month, so the current month and the `retention` previous ones stay; with `drop`, the
    detached tables of such months are dropped too (those detached by earlier runs as well).
    """
    wanted = {today.plus(k) for k in range(ahead + 1)} | set(in_default)
    blocked = wanted & state.detached.keys()
    create = sorted(wanted - blocked - state.attached.keys())
    if retention is None:
        return Plan(tuple(create), (), (), tuple(sorted(blocked)))
    cutoff = today.plus(-retention)
    detach = sorted(m for m in (*state.attached, *create) if m < cutoff)
    dropped = sorted({*detach, *(m for m in state.detached if m < cutoff)}) if drop else []
    return Plan(tuple(create), tuple(detach), tuple(dropped), tuple(sorted(blocked)))


def create_partition(
    month: Month, state: State, *, lock_timeout: str, using: str = "default"
) -> int:
    """Create and attach `month`'s partition, moving its rows out of the DEFAULT first.

    Returns the number of rows moved. One transaction; see the module docstring for locks.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    parent, name, key = quote(table()), quote(partition_name(month)), quote(_key_column())
    bounds = f"'{month.start.isoformat()}'", f"'{month.end.isoformat()}'"
    in_range = f"{key} >= {bounds[0]} AND {key} < {bounds[1]}"
    moved = 0
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])
        cursor.execute(f"LOCK TABLE ONLY {parent} IN SHARE UPDATE EXCLUSIVE MODE")
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {parent} INCLUDING DEFAULTS INCLUDING STORAGE "
            "INCLUDING COMPRESSION INCLUDING COMMENTS)"
        )
        # A CHECK matching the bounds lets ATTACH skip scanning the new table.
        check = quote(f"{partition_name(month)}_bounds")
        cursor.execute(f"ALTER TABLE {name} ADD CONSTRAINT {check} CHECK ({in_range})")
        if state.default is not None:
            default = quote(state.default)
            cursor.execute(f"LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE")
            columns = ", ".join(quote(str(f.column)) for f in AuditLog._meta.concrete_fields)
            cursor.execute(
                f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {default} "  # noqa: S608
                f"WHERE {in_range}"
            )
            moved = cursor.rowcount
            if moved:
                # The rows were copied just above, in this transaction: the append-only
                # trigger is off for this DELETE only (no other session sees it off:
                # this transaction holds the DEFAULT's ACCESS EXCLUSIVE lock).
                trigger = quote(APPEND_ONLY_TRIGGER)
                cursor.execute(f"ALTER TABLE {default} DISABLE TRIGGER {trigger}")
                cursor.execute(f"DELETE FROM {default} WHERE {in_range}")  # noqa: S608
                cursor.execute(f"ALTER TABLE {default} ENABLE TRIGGER {trigger}")
        cursor.execute(
            f"ALTER TABLE {parent} ATTACH PARTITION {name} "
            f"FOR VALUES FROM ({bounds[0]}) TO ({bounds[1]})"
        )
        cursor.execute(f"ALTER TABLE {name} DROP CONSTRAINT {check}")
        _name_indexes(cursor, partition_name(month), quote)
    return moved


def _name_indexes(cursor: Any, partition: str, quote: Any) -> None:
    """Name the partition's indexes after their parent index: audit_occurred_idx_p2025_07
    (as migration 0004 does), so that EXPLAIN says which index a scan uses."""
    suffix = partition.removeprefix(f"{table()}_")
    cursor.execute(
        "SELECT child.relname, parent.relname FROM pg_index x "
        "JOIN pg_class child ON child.oid = x.indexrelid "
        "JOIN pg_inherits i ON i.inhrelid = child.oid "
        "JOIN pg_class parent ON parent.oid = i.inhparent "
        "WHERE x.indrelid = %s::regclass",
        [quote(partition)],
    )
    for current, parent in cursor.fetchall():
        if current != f"{parent}_{suffix}":
            cursor.execute(f"ALTER INDEX {quote(current)} RENAME TO {quote(f'{parent}_{suffix}')}")


def detach_partition(name: str, state: State, *, lock_timeout: str, using: str = "default") -> bool:
    """Detach partition `name`; return True when it was detached CONCURRENTLY.

    CONCURRENTLY needs audit_logs without a DEFAULT partition and no enclosing
    transaction; otherwise the plain DETACH runs (see the module docstring).
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    sql = f"ALTER TABLE {quote(table())} DETACH PARTITION {quote(name)}"
    if state.default is None and not connection.in_atomic_block:
        with _session_lock_timeout(connection, lock_timeout), connection.cursor() as cursor:
            cursor.execute(f"{sql} CONCURRENTLY")
        return True
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])
        cursor.execute(sql)
    return False


def finalize_detach(name: str, *, lock_timeout: str, using: str = "default") -> None:
    """Complete a DETACH ... CONCURRENTLY that was interrupted (the partition is pending)."""
    connection = connections[using]
    quote = connection.ops.quote_name
    with _session_lock_timeout(connection, lock_timeout), connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {quote(table())} DETACH PARTITION {quote(name)} FINALIZE")


def drop_table(name: str, *, lock_timeout: str, using: str = "default") -> None:
    """Drop a detached month table (never an attached partition: see plan())."""
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])
        cursor.execute(f"DROP TABLE {connection.ops.quote_name(name)}")


@contextmanager
def exclusive_run(using: str = "default") -> Iterator[bool]:
    """Hold a session advisory lock for the block; yield False if another run holds it."""
    connection = connections[using]
    key = f"{table()} partitions"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])


@contextmanager
def _session_lock_timeout(connection: Any, value: str) -> Iterator[None]:
    """Set lock_timeout for the session (statements outside a transaction), then restore it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout')")
        previous = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('lock_timeout', %s, false)", [value])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [previous])


def _key_column() -> str:
    return str(AuditLog._meta.get_field("occurred_at").column)
