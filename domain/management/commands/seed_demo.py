"""Fill the database with consistent, deterministic demo data: `manage.py seed_demo`.

See domain.demo for what is written and the invariants kept.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections, transaction
from django.utils import timezone

from domain.demo import DemoBuilder, analyze, demo_rows_present, insert
from domain.demo_audit import audit_trail, insert_audit
from domain.progress import progress_bar

#: The logger of the repository layer's slow-query warnings (named, not imported: domain
#: imports nothing from repositories).
SLOW_QUERY_LOGGER = "repositories.queries"


class _BulkLoadFilter(logging.Filter):
    """Drop slow-query records: a bulk load's multi-row INSERTs are slow by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("slow query")


@contextmanager
def quiet_slow_queries() -> Iterator[None]:
    """Keep the slow-query log out of the seeding output (other warnings still show)."""
    logger = logging.getLogger(SLOW_QUERY_LOGGER)
    quiet = _BulkLoadFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class Command(BaseCommand):
    help = "Create deterministic demo data (users, category tree, products, orders)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=200)
        parser.add_argument("--categories", type=int, default=20)
        parser.add_argument("--products", type=int, default=2000)
        parser.add_argument("--orders", type=int, default=5000)
        parser.add_argument("--seed", type=int, default=1, help="Random seed (default 1).")
        parser.add_argument("--database", default="default")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        using: str = options["database"]
        sizes = {k: options[k] for k in ("users", "categories", "products", "orders")}
        if any(v < 0 for v in sizes.values()):
            raise CommandError("Sizes must be zero or more.")
        with quiet_slow_queries(), transaction.atomic(using=using):
            # Concurrent runs (two `make run`s) queue here; the second then sees the data.
            with connections[using].cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext('seed_demo'))")
            existing = demo_rows_present(using)
            if any(existing.values()):
                summary = ", ".join(f"{v} {k}" for k, v in existing.items())
                self.stdout.write(f"Demo data already present ({summary}); nothing to do.")
                return
            anchor = datetime.combine(timezone.now().astimezone(UTC).date(), time.min, tzinfo=UTC)
            data = DemoBuilder(options["seed"], anchor).build(**sizes)
            total = sum(len(rows) for _, rows in data.tables())
            with progress_bar(
                total=total,
                desc="seed_demo",
                unit="rows",
                disable=options["no_progress"],
                file=sys.stderr,
            ) as progress:
                for label, rows in data.tables():
                    progress.set_postfix_str(label)
                    insert(rows, using, progress)
                trail = audit_trail(data)
                progress.total += len(trail)
                progress.set_postfix_str("audit log")
                insert_audit(trail, using, progress)
        with quiet_slow_queries():
            analyze(using)
        self.stdout.write(
            f"Seeded {len(data.users)} users, {len(data.categories)} categories, "
            f"{len(data.products)} products, {len(data.orders)} orders "
            f"({len(data.items)} items, {len(data.movements)} inventory movements, "
            f"{len(trail)} audit log entries)."
        )
