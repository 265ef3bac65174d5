"""The figures the fault tests measure: printed as they come (`pytest -s`), summed up at
the end of the run by the conftest, and written as JSON when FAULTS_REPORT names a file."""

from __future__ import annotations

import json
from typing import Any

FIGURES: dict[str, dict[str, Any]] = {}


def report(test: str, **figures: Any) -> None:
    """Record and print a test's figures."""
    FIGURES.setdefault(test, {}).update(figures)
    print(f"\n[faults] {test}: {json.dumps(figures, default=str, sort_keys=True)}")  # noqa: T201 - the point
