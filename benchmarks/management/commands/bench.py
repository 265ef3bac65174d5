"""Run the benchmark: naive ORM vs repositories vs raw psycopg, on a database of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from benchmarks.config import SCALES
from benchmarks.harness import VariantMismatchError
from benchmarks.runner import (
    RESULTS_PATH,
    SCENARIOS,
    format_markdown,
    format_report,
    run_benchmarks,
)


class Command(BaseCommand):
    help = "Benchmark every scenario in three variants; write benchmarks/results/latest.json."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scale", choices=sorted(SCALES), default="full")
        parser.add_argument(
            "--only", default="", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}"
        )
        parser.add_argument("--database-name", default=None, help="default: <dbname>_bench")
        parser.add_argument("--keep-db", action="store_true", help="keep the bench database")
        parser.add_argument("--output", default=str(RESULTS_PATH))
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument(
            "--soak-seconds", type=float, default=None, help="soak duration (default: the scale's)"
        )
        parser.add_argument(
            "--soak-threads", type=int, default=None, help="soak threads (default: the scale's)"
        )
        parser.add_argument(
            "--markdown",
            default=None,
            help="render an existing JSON report (the --output path) as Markdown and exit",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["markdown"]:
            report = json.loads(Path(options["markdown"]).read_text(encoding="utf-8"))
            self.stdout.write(format_markdown(report))
            return
        only = [s.strip() for s in options["only"].split(",") if s.strip()]
        try:
            report = run_benchmarks(
                scale_name=options["scale"],
                only=only or None,
                db_name=options["database_name"],
                keep_db=options["keep_db"],
                output=Path(options["output"]),
                progress=not options["no_progress"],
                soak_seconds=options["soak_seconds"],
                soak_threads=options["soak_threads"],
            )
        except (ValueError, VariantMismatchError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(format_report(report))
        self.stdout.write(f"\nJSON: {options['output']}")
        failed = [name for name, s in report["scenarios"].items() if s.get("error")]
        if failed:
            raise CommandError(f"scenarios failed: {', '.join(failed)}")
