"""The project's index migration (0003, CREATE INDEX CONCURRENTLY) on the large catalog
while a separate process keeps inserting and updating products."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.context import BenchContext
from benchmarks.harness import ScenarioResult, Target, VariantResult, percentile

MIGRATION = ("domain", "0003")
MAX_WAIT_MS = 200.0


def run(ctx: BenchContext) -> ScenarioResult:
    scale = ctx.scale
    result = ScenarioResult(
        "migration",
        "index migration under writes",
        params={
            "products": scale.products,
            "migration": "domain " + " ".join(MIGRATION[1:]) + " (CREATE INDEX CONCURRENTLY)",
        },
    )
    with ctx.admin() as conn:
        conn.execute("VACUUM ANALYZE products")
    root = Path(__file__).resolve().parents[2]
    writer = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.writer", ctx.db.conninfo()],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stderr is not None and writer.stdin is not None
    writer.stderr.readline()  # "ready"
    time.sleep(scale.migration_writer_warmup_s)
    ctx.status("migration: building indexes concurrently under writes")
    began = time.time()
    ctx.db.migrate(*MIGRATION)
    ended = time.time()
    time.sleep(scale.migration_writer_warmup_s / 2)
    out, _ = writer.communicate("stop\n", timeout=60)
    data = json.loads(out)
    during = [w for w in data["writes"] if began <= w[0] <= ended]
    before = [w for w in data["writes"] if w[0] < began]
    duration_ms = (ended - began) * 1000
    migration = VariantResult("repository (migrate 0003)", samples_ms=[duration_ms])
    migration.queries_per_op = None
    writes_during = VariantResult("writes during migration", samples_ms=[w[2] for w in during])
    writes_before = VariantResult("writes before migration", samples_ms=[w[2] for w in before])
    result.variants = {
        migration.name: migration,
        writes_during.name: writes_during,
        writes_before.name: writes_before,
    }
    max_wait = max((w[2] for w in during), default=None)
    result.extra = {
        "migration_seconds": round(duration_ms / 1000, 2),
        "writes_during": len(during),
        "writes_before": len(before),
        "max_write_ms_during": round(max_wait, 2) if max_wait is not None else None,
        "p99_write_ms_during": round(percentile([w[2] for w in during], 99), 2) if during else None,
        "max_write_ms_before": round(max((w[2] for w in before), default=0.0), 2),
        "writer_errors": data["errors"][:10],
    }
    result.targets += [
        Target(
            "no write waits longer than 200 ms during the migration", max_wait, MAX_WAIT_MS, "<="
        ),
        Target("writer kept writing (writes during the migration)", float(len(during)), 1.0, ">="),
    ]
    if data["errors"]:
        result.notes.append(f"writer errors: {len(data['errors'])}")
    return result
