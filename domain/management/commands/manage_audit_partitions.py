"""Keep the audit log's monthly partitions: `manage.py manage_audit_partitions`.

Creates the partitions of the current month and the next `--ahead` ones (3), and of every
month with rows in the DEFAULT partition (moving those rows into it); with a retention
(`--retention-months`, else settings.AUDIT_LOG_RETENTION_MONTHS; unset keeps everything)
detaches the partitions of months past it, and with `--drop` drops them. Idempotent: run
it daily or monthly (cron, a scheduler); a second run at the same time exits at once.
domain.audit_partitions describes the locks each step takes.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone

from domain import audit_partitions as partitions
from domain.audit_partitions import Month
from domain.migration_ops import refuse_transaction_pooling

DEFAULT_AHEAD = 3


class Command(BaseCommand):
    help = (
        "Create the audit log's next monthly partitions (moving matching rows out of the "
        "DEFAULT partition); detach, and with --drop drop, those past the retention."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--ahead",
            type=int,
            default=DEFAULT_AHEAD,
            help=f"Months after the current one to create (default {DEFAULT_AHEAD}).",
        )
        parser.add_argument(
            "--retention-months",
            type=int,
            default=None,
            help="Keep the current month and this many before it; detach older partitions "
            "(default: settings.AUDIT_LOG_RETENTION_MONTHS; unset: keep everything).",
        )
        parser.add_argument(
            "--drop",
            action="store_true",
            help="Also drop the partitions past the retention once detached (their rows "
            "are gone for good: archive them first, e.g. pg_dump -t).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would be done; change nothing."
        )
        parser.add_argument(
            "--lock-timeout",
            default="5s",
            help="How long each step may wait for its lock before giving up (default 5s).",
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        ahead: int = options["ahead"]
        if ahead < 0:
            raise CommandError("--ahead must be 0 or more.")
        retention = _retention(options["retention_months"])
        if options["drop"] and retention is None:
            raise CommandError(
                "--drop needs a retention: --retention-months or AUDIT_LOG_RETENTION_MONTHS."
            )
        using: str = options["database"]
        try:
            # A session advisory lock and lock_timeout across statements, and DETACH
            # CONCURRENTLY outside a transaction.
            refuse_transaction_pooling("manage_audit_partitions")
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        try:
            with partitions.exclusive_run(using) as acquired:
                if not acquired:
                    raise CommandError("Another manage_audit_partitions run is in progress.")
                self._run(using, ahead, retention, options)
        except DatabaseError as error:  # a lock timeout, mostly: what was done stays done
            raise CommandError(f"Stopped: {error}".strip()) from error

    def _run(self, using: str, ahead: int, retention: int | None, options: Any) -> None:
        dry_run: bool = options["dry_run"]
        lock_timeout: str = options["lock_timeout"]
        state = partitions.read_state(using)
        if not state.partitioned:
            raise CommandError(
                f"{partitions.table()} is not partitioned: run `manage.py migrate` first."
            )
        for name in state.pending:
            self._say(f"{'Would finalize' if dry_run else 'Finalizing'} the detach of {name}")
            if not dry_run:
                partitions.finalize_detach(name, lock_timeout=lock_timeout, using=using)
        if state.pending and not dry_run:
            state = partitions.read_state(using)
        todo = partitions.plan(
            state,
            partitions.months_in_default(state, using),
            today=Month.of(timezone.now()),
            ahead=ahead,
            retention=retention,
            drop=options["drop"],
        )
        for month in todo.create:
            name = partitions.partition_name(month)
            if dry_run:
                self._say(f"Would create {name} [{month.start:%Y-%m-%d}, {month.end:%Y-%m-%d})")
                continue
            moved = partitions.create_partition(
                month, state, lock_timeout=lock_timeout, using=using
            )
            self._say(
                f"Created {name} [{month.start:%Y-%m-%d}, {month.end:%Y-%m-%d})"
                + (f", {moved} rows moved from {state.default}" if moved else "")
            )
        for month in todo.detach:
            name = partitions.partition_name(month)
            if dry_run:
                self._say(f"Would detach {name}")
                continue
            concurrently = partitions.detach_partition(
                name, state, lock_timeout=lock_timeout, using=using
            )
            self._say(f"Detached {name}" + (" concurrently" if concurrently else ""))
        for month in todo.drop:
            name = partitions.partition_name(month)
            if dry_run:
                self._say(f"Would drop {name}")
                continue
            partitions.drop_table(name, lock_timeout=lock_timeout, using=using)
            self._say(f"Dropped {name}")
        for month in todo.blocked:
            self._say(
                f"Skipped {month}: a detached table {partitions.partition_name(month)} "
                f"exists; rows of that month stay in {state.default}"
            )
        self._summary(todo, using, dry_run)

    def _summary(self, todo: partitions.Plan, using: str, dry_run: bool) -> None:
        state = partitions.read_state(using)
        months = sorted(state.attached)
        span = f" ({months[0]} to {months[-1]})" if months else ""
        kept = sorted(m for m in state.detached if m not in todo.drop)
        self.stdout.write(
            f"Audit log partitions: {len(todo.create)} created, {len(todo.detach)} detached, "
            f"{len(todo.drop)} dropped{' (dry run: nothing changed)' if dry_run else ''}; "
            f"{len(months)} attached{span}"
            + (" and the DEFAULT" if state.default else "")
            + (f"; {len(kept)} detached tables kept" if kept else "")
            + "."
        )

    def _say(self, line: str) -> None:
        self.stdout.write(line.strip() + ".")


def _retention(option: int | None) -> int | None:
    value = option if option is not None else getattr(settings, "AUDIT_LOG_RETENTION_MONTHS", None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CommandError(
            f"The retention must be a whole number of months, 1 or more (got {value!r})."
        )
    return value
