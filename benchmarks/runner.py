"""Run the selected scenarios on a fresh bench database and report them (table + JSON)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from tqdm import tqdm  # type: ignore[import-untyped]

from benchmarks import seed
from benchmarks.config import SCALES
from benchmarks.context import BenchContext
from benchmarks.database import BenchDatabase, machine_info
from benchmarks.harness import NAIVE, RAW, ScenarioResult, VariantMismatchError

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "latest.json"

#: Run order; each scenario names the data set it needs (loaded once, in this order).
SCENARIOS: dict[str, str] = {
    "migration": "catalog",
    "pk_lookup": "catalog",
    "deep_page": "catalog",
    "connections": "catalog",
    "search": "search",
    "bulk_insert": "empty",
    "order_history": "orders",
    "analytics": "orders",
    "place_order": "orders",
    "soak": "orders",
}
#: Stock each orderable product starts with: the throughput runs never sell out.
ORDER_STOCK = 1_000_000


def run_benchmarks(
    *,
    scale_name: str,
    only: list[str] | None = None,
    db_name: str | None = None,
    keep_db: bool = False,
    output: Path | None = RESULTS_PATH,
    stream: TextIO | None = None,
    progress: bool = True,
    soak_seconds: float | None = None,
    soak_threads: int | None = None,
) -> dict[str, Any]:
    """Create the bench database, seed it, run the scenarios; return the JSON report.

    `soak_seconds` / `soak_threads` override the scale's soak duration and threads.
    """
    scale = SCALES[scale_name]
    if soak_seconds is not None and not soak_seconds > 0:
        raise ValueError(f"soak seconds must be positive, not {soak_seconds}")
    if soak_threads is not None and soak_threads < 1:
        raise ValueError(f"soak threads must be at least 1, not {soak_threads}")
    if soak_seconds is not None:
        scale = dataclasses.replace(scale, soak_seconds=soak_seconds)
    if soak_threads is not None:
        scale = dataclasses.replace(scale, soak_threads=soak_threads)
    selected = [name for name in SCENARIOS if not only or name in only]
    unknown = set(only or ()) - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenarios: {', '.join(sorted(unknown))}")
    db = BenchDatabase.from_settings(db_name)
    started = time.perf_counter()
    # DEBUG's query log would tax the ORM variants only; the harness counts queries itself.
    debug, settings.DEBUG = settings.DEBUG, False
    # The naive variants are slow on purpose; keep their slow-query warnings off the table
    # (the instrumentation still runs: its cost is part of what is measured).
    query_log = logging.getLogger("repositories.queries")
    query_log_level = query_log.level
    query_log.setLevel(logging.ERROR)
    bar = tqdm(
        total=len(selected) + 1, desc="bench", unit="step", disable=not progress, file=stream
    )
    ctx = BenchContext(db=db, scale=scale, progress=bar)
    results: list[ScenarioResult] = []
    report: dict[str, Any] = {}
    try:
        with ctx.phase("create database, migrate to domain 0002"):
            db.recreate()
            db.migrate()
            db.migrate("domain", "0002")  # secondary indexes come with the migration scenario
        with ctx.admin() as conn, ctx.phase(f"seed users and {scale.products:,} products"):
            seed.seed_people(conn, users=scale.users)
            seed.seed_catalog(conn, products=scale.products)
        ctx.dataset = "catalog"
        if "migration" in selected:
            ctx.status("migration")
            results.extend(_run_scenario("migration", ctx))
            selected.remove("migration")
        with ctx.phase("migrate to latest, VACUUM ANALYZE"):
            db.migrate()
            db.analyze()
        server = db.server_settings()
        bar.update(1)
        for name in selected:
            _load_dataset(ctx, SCENARIOS[name])
            ctx.status(name)
            results.extend(_run_scenario(name, ctx))
            bar.update(1)
        ctx.status("done")
    finally:
        bar.close()
        ctx.close()
        settings.DEBUG = debug
        query_log.setLevel(query_log_level)
        if keep_db:
            db.unregister()
        else:
            db.drop()
    report = {
        "scale": scale_name,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "database": db.name,
        "machine": machine_info(),
        "server": server,
        "setup_seconds": ctx.phases,
        "scenarios": {r.name: r.as_dict() for r in results},
    }
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return report


def _run_scenario(name: str, ctx: BenchContext) -> list[ScenarioResult]:
    """Run one scenario; a disagreement between variants is recorded, not raised."""
    module = importlib.import_module(f"benchmarks.scenarios.{name}")
    run: Callable[[BenchContext], ScenarioResult | list[ScenarioResult]] = module.run
    start = time.perf_counter()
    try:
        outcome = run(ctx)
    except VariantMismatchError as exc:
        failed = ScenarioResult(name, name)
        failed.error = f"variants disagree: {exc}"
        outcome = failed
    except ImportError as exc:  # a repository module that does not import
        failed = ScenarioResult(name, name)
        failed.error = f"cannot import the repository: {exc!r}"
        outcome = failed
    results = outcome if isinstance(outcome, list) else [outcome]
    for result in results:
        result.seconds = (time.perf_counter() - start) / len(results)
    return results


def _load_dataset(ctx: BenchContext, dataset: str) -> None:
    if ctx.dataset == dataset or dataset == "empty":
        if dataset == "empty":
            ctx.dataset = "empty"
        return
    scale = ctx.scale
    with ctx.admin() as conn, ctx.phase(f"seed {dataset}"):
        if dataset == "catalog":
            seed.clear_commerce(conn)
            seed.seed_catalog(conn, products=scale.products)
        elif dataset == "search":
            seed.seed_search(conn, products=scale.search_products)
        elif dataset == "orders":
            seed.seed_orders(
                conn,
                products=scale.order_products,
                orders=scale.orders,
                history_orders=scale.history_orders,
                stock=ORDER_STOCK,
            )
        conn.execute("VACUUM ANALYZE")
    ctx.dataset = dataset


# --- the table ---------------------------------------------------------------------------
def format_report(report: dict[str, Any]) -> str:
    """Render the report as a fixed-width table followed by the targets."""
    lines = []
    machine, server = report["machine"], report["server"]
    lines.append(
        f"scale={report['scale']}  {report['seconds']} s  |  {machine['cpu_count']} CPU "
        f"{machine['cpu_model']}  |  Python {machine['python']}  Django {machine['django']}  "
        f"psycopg {machine['psycopg']} ({machine['psycopg_impl']})"
    )
    lines.append(
        "server: PostgreSQL {server_version}  shared_buffers={shared_buffers}  "
        "max_wal_size={max_wal_size}  work_mem={work_mem}  "
        "synchronous_commit={synchronous_commit}".format(**server)
    )
    header = (
        f"{'scenario':<15} {'variant':<28} {'median':>10} {'p95':>10} {'q/op':>7} "
        f"{'items/s':>10} {'xnaive':>8} {'xraw':>7}"
    )
    lines += ["", header, "-" * len(header)]
    for name, scenario in report["scenarios"].items():
        for vname, v in scenario["variants"].items():
            if v["samples"] == 0:  # an outcome, not a timing (the hot-product probe)
                outcome = {
                    k: v[k] for k in ("attempts", "succeeded", "stock_left", "errors") if k in v
                }
                lines.append(f"{name:<15} {vname:<28} {outcome}")
                continue
            lines.append(
                f"{name:<15} {vname:<28} {_ms(v['median_ms']):>10} {_ms(v['p95_ms']):>10} "
                f"{_num(v['queries_per_op']):>7} {_num(v['items_per_s'], 0):>10} "
                f"{_ratio(v['ratio_to_naive'] if vname != NAIVE else None):>8} "
                f"{_ratio(v['ratio_to_raw'] if vname != RAW else None):>7}"
            )
    lines += ["", "targets:"]
    for name, scenario in report["scenarios"].items():
        for t in scenario["targets"]:
            mark = {True: "MET   ", False: "MISSED", None: "n/a   "}[t["met"]]
            value = "-" if t["value"] is None else f"{t['value']:.3g}"
            detail = f"  {t['detail']}" if t["detail"] else ""
            lines.append(f"  {mark} {name:<15} {t['description']} (measured {value}){detail}")
        for note in scenario["notes"]:
            lines.append(f"  note   {name:<15} {note}")
        if scenario.get("error"):
            lines.append(f"  FAILED {name:<15} {scenario['error']}")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} µs"
    if value < 1000:
        return f"{value:.2f} ms"
    return f"{value / 1000:.2f} s"


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if 0 < abs(value) < 1 and digits:
        return f"{value:.3g}"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}x"


def format_markdown(report: dict[str, Any]) -> str:
    """Render the report as Markdown tables (for docs/performance.md)."""
    machine, server = report["machine"], report["server"]
    out = [
        f"Scale `{report['scale']}`, finished {report['finished_at']}, {report['seconds']} s.",
        "",
        f"- Machine: {machine['cpu_count']} vCPU ({machine['cpu_model']}), "
        f"{machine['memory_gb']} GiB RAM, {machine['platform']}",
        f"- Python {machine['python']}, Django {machine['django']}, psycopg {machine['psycopg']} "
        f"({machine['psycopg_impl']}, libpq {machine['libpq']}), psycopg_pool "
        f"{machine['psycopg_pool']}; Django pool options {machine['db_pool_options']}",
        f"- Server: {server['version'].split(' on ')[0]}; "
        + ", ".join(f"{k}={server[k]}" for k in SERVER_REPORTED),
        "- Set-up (seconds): "
        + ", ".join(f"{k} {v}" for k, v in report.get("setup_seconds", {}).items()),
        "",
        "| scenario | variant | median | p95 | queries/op | items/s | x naive | x raw |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, scenario in report["scenarios"].items():
        for vname, v in scenario["variants"].items():
            if v["samples"] == 0:
                outcome = {
                    k: v[k] for k in ("attempts", "succeeded", "stock_left", "errors") if k in v
                }
                out.append(f"| {name} | {vname} | {outcome} | | | | | |")
                continue
            out.append(
                f"| {name} | {vname} | {_ms(v['median_ms'])} | {_ms(v['p95_ms'])} | "
                f"{_num(v['queries_per_op'])} | {_num(v['items_per_s'], 0)} | "
                f"{_ratio(v['ratio_to_naive'] if vname != NAIVE else None)} | "
                f"{_ratio(v['ratio_to_raw'] if vname != RAW else None)} |"
            )
    out += ["", "| scenario | target | measured | result |", "|---|---|---:|---|"]
    for name, scenario in report["scenarios"].items():
        for t in scenario["targets"]:
            mark = {True: "met", False: "**missed**", None: "n/a"}[t["met"]]
            value = "-" if t["value"] is None else f"{t['value']:.3g}"
            out.append(f"| {name} | {t['description']} | {value} | {mark} |")
    return "\n".join(out) + "\n"


SERVER_REPORTED = (
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "max_wal_size",
    "checkpoint_timeout",
    "synchronous_commit",
    "fsync",
    "jit",
)
