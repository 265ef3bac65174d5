"""Delete expired login sessions in short batches: `manage.py cleanup_sessions`."""

from __future__ import annotations

from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from repositories.core.errors import RepositoryError
from repositories.sessions import SessionRepository


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


class Command(BaseCommand):
    help = "Delete expired sessions (revoked ones too, once expired), in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=_positive_int,
            default=1000,
            help="Rows deleted per transaction (default 1000).",
        )
        parser.add_argument("--database", default="default", help="Database alias.")

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size: int = options["batch_size"]
        try:
            deleted = SessionRepository(using=options["database"]).cleanup_expired(
                batch_size=batch_size
            )
        except RepositoryError as exc:
            raise CommandError(f"cleanup_sessions failed: {exc}") from exc
        noun = "session" if deleted == 1 else "sessions"
        self.stdout.write(f"Deleted {deleted} expired {noun} (batches of {batch_size}).")
