"""What every scenario receives: the bench database, the scale, a raw connection, progress."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from tqdm import tqdm  # type: ignore[import-untyped]

from benchmarks.config import Scale
from benchmarks.database import BENCH_ALIAS, BenchDatabase
from benchmarks.harness import RawCounter


@dataclass
class BenchContext:
    db: BenchDatabase
    scale: Scale
    progress: tqdm
    dataset: str = ""
    #: Seconds spent in each set-up phase (database creation, seeding), for the report.
    phases: dict[str, float] = field(default_factory=dict)
    _raw: RawCounter | None = field(default=None, repr=False)

    @property
    def alias(self) -> str:
        return BENCH_ALIAS

    @property
    def raw(self) -> RawCounter:
        """The raw variant's connection: autocommit, every statement prepared server-side."""
        if self._raw is None or self._raw.conn.closed:
            self._raw = RawCounter(self.db.raw_connect())
        return self._raw

    def admin(self) -> psycopg.Connection:
        """A fresh autocommit connection for seeding and checks (not timed)."""
        return self.db.raw_connect(prepared=False)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a set-up phase and show it on the progress bar."""
        self.status(name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = round(time.perf_counter() - started, 1)

    def status(self, text: str) -> None:
        self.progress.set_postfix_str(text, refresh=True)

    def close(self) -> None:
        if self._raw is not None:
            self._raw.conn.close()
            self._raw = None


def repository(module: str, name: str) -> Any:
    """Return class `name` from `repositories.<module>` (an ImportError when it is missing:
    a benchmark never silently drops its repository variant)."""
    found = getattr(importlib.import_module(f"repositories.{module}"), name, None)
    if found is None:
        raise ImportError(f"repositories.{module} has no {name}")
    return found
