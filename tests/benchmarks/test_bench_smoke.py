"""A tiny-scale run of the whole benchmark: every scenario runs, variants agree, JSON is written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from zeal import zeal_ignore

from benchmarks.runner import SCENARIOS, format_report, run_benchmarks


@pytest.mark.timeout(120)
def test_bench_tiny_run_agrees_and_writes_json(tmp_path: Path, django_db_blocker) -> None:
    output = tmp_path / "latest.json"
    name = f"{os.environ.get('TEST_DATABASE_NAME') or 'test'}_benchsmoke"
    # The naive variants are N+1 on purpose: that is what they measure.
    with django_db_blocker.unblock(), zeal_ignore():
        report = run_benchmarks(scale_name="tiny", db_name=name, output=output, progress=False)

    written = json.loads(output.read_text())
    assert written["scale"] == "tiny"
    assert written["server"]["shared_buffers"]
    assert written["machine"]["cpu_count"] >= 1
    scenarios = report["scenarios"]
    assert {name.split("_")[0] for name in scenarios} >= {n.split("_")[0] for n in SCENARIOS}
    errors = {name: s["error"] for name, s in scenarios.items() if s["error"]}
    assert errors == {}
    for name, scenario in scenarios.items():
        assert scenario["variants"], name
        measured = (
            "pk_lookup",
            "deep_page",
            "search",
            "order_history",
            "analytics",
            "place_order_",
        )
        if name.startswith(measured) and name != "place_order_hot":
            assert {"naive", "repository", "raw"} <= set(scenario["variants"]), name
            assert all(v["median_ms"] is not None for v in scenario["variants"].values()), name
    assert scenarios["order_history"]["variants"]["repository"]["queries_per_op"] <= 3
    hot = scenarios["place_order_hot"]["variants"]["repository"]
    assert (hot["succeeded"], hot["stock_left"]) == (10, 0)
    assert "Index Cond" in scenarios["deep_page"]["extra"]["repository_plan"]
    assert "targets:" in format_report(report)
