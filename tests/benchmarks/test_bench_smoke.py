"""A tiny-scale run of the whole benchmark: every scenario runs, variants agree, JSON is written."""

from __future__ import annotations

import json
import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from zeal import zeal_ignore

from benchmarks.runner import SCENARIOS

MEASURED = ("pk_lookup", "deep_page", "search", "order_history", "analytics", "place_order_")


@pytest.mark.timeout(120)
def test_bench_tiny_run_agrees_and_writes_json(tmp_path: Path, django_db_blocker) -> None:
    output = tmp_path / "latest.json"
    name = f"{os.environ.get('TEST_DATABASE_NAME') or 'test'}_benchsmoke"
    stdout = StringIO()
    # The naive variants are N+1 on purpose: that is what they measure.
    with django_db_blocker.unblock(), zeal_ignore():
        call_command(
            "bench",
            "--scale=tiny",
            f"--database-name={name}",
            f"--output={output}",
            "--no-progress",
            stdout=stdout,
        )

    report = json.loads(output.read_text())
    assert report["scale"] == "tiny"
    assert report["server"]["shared_buffers"]
    assert report["machine"]["cpu_count"] >= 1
    scenarios = report["scenarios"]
    assert {n.split("_")[0] for n in scenarios} >= {n.split("_")[0] for n in SCENARIOS}
    assert {n: s["error"] for n, s in scenarios.items() if s["error"]} == {}
    for scenario_name, scenario in scenarios.items():
        assert scenario["variants"], scenario_name
        if scenario_name.startswith(MEASURED) and scenario_name != "place_order_hot":
            assert {"naive", "repository", "raw"} <= set(scenario["variants"]), scenario_name
            assert all(v["median_ms"] is not None for v in scenario["variants"].values())
    assert scenarios["order_history"]["variants"]["repository"]["queries_per_op"] <= 3
    hot = scenarios["place_order_hot"]["variants"]["repository"]
    assert (hot["succeeded"], hot["stock_left"]) == (10, 0)
    assert "Index Cond" in scenarios["deep_page"]["extra"]["repository_plan"]
    assert "targets:" in stdout.getvalue()

    markdown = StringIO()
    call_command("bench", f"--markdown={output}", stdout=markdown)
    assert "| pk_lookup | repository |" in markdown.getvalue()


def test_bench_unknown_scenario_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="unknown scenarios: nope"):
        call_command("bench", "--scale=tiny", "--only=pk_lookup,nope", "--no-progress")
