"""What every scenario receives: the bench database, the scale, a raw connection, progress."""

from __future__ import annotations

import importlib
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

    def status(self, text: str) -> None:
        self.progress.set_postfix_str(text, refresh=True)

    def close(self) -> None:
        if self._raw is not None:
            self._raw.conn.close()
            self._raw = None


def repository(module: str, name: str) -> Any | None:
    """Return repository class `name` from `repositories.<module>`, or None if not built yet."""
    try:
        return getattr(importlib.import_module(f"repositories.{module}"), name)
    except (ImportError, AttributeError):
        return None
