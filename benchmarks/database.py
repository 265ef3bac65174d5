"""The benchmark's own database: created on the configured server, never the dev data."""

from __future__ import annotations

import contextlib
import copy
import os
import platform
from dataclasses import dataclass, field
from typing import Any

import django
import psycopg
import psycopg_pool
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from psycopg import sql

BENCH_ALIAS = "bench"
#: Same database, no pool, a new connection per request: the naive side of `connections`.
BENCH_DIRECT_ALIAS = "bench_direct"
SERVER_SETTINGS = (
    "server_version",
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "maintenance_work_mem",
    "max_wal_size",
    "checkpoint_timeout",
    "synchronous_commit",
    "fsync",
    "random_page_cost",
    "jit",
    "max_connections",
)
# Connection options Django understands but libpq does not.
_DJANGO_ONLY_OPTIONS = {
    "pool",
    "server_side_binding",
    "isolation_level",
    "assume_role",
    "cursor_factory",
}


@dataclass
class BenchDatabase:
    """A throw-away database next to the configured one, registered as Django alias `bench`."""

    name: str
    base: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, name: str | None = None) -> BenchDatabase:
        base = copy.deepcopy(settings.DATABASES["default"])
        return cls(name=name or f"{base['NAME']}_bench", base=base)

    # --- connection parameters --------------------------------------------------------
    def conninfo(self, dbname: str | None = None) -> str:
        """Return a libpq connection string for `dbname` (default: the bench database)."""
        params: dict[str, Any] = {
            "dbname": dbname or self.name,
            "user": self.base.get("USER") or None,
            "password": self.base.get("PASSWORD") or None,
            "host": self.base.get("HOST") or None,
            "port": str(self.base["PORT"]) if self.base.get("PORT") else None,
        }
        for key, value in (self.base.get("OPTIONS") or {}).items():
            if key not in _DJANGO_ONLY_OPTIONS:
                params[key] = value
        return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})

    def raw_connect(self, *, autocommit: bool = True, prepared: bool = True) -> psycopg.Connection:
        """Open a plain psycopg connection; every statement is prepared server-side."""
        conn = psycopg.connect(self.conninfo(), autocommit=autocommit)
        conn.prepare_threshold = 0 if prepared else None
        conn.execute("SET TIME ZONE 'UTC'")
        return conn

    def raw_pool(self, *, size: int = 4) -> psycopg_pool.ConnectionPool:
        """Return an open psycopg pool on the bench database (prepared statements on)."""

        def configure(conn: psycopg.Connection) -> None:
            conn.prepare_threshold = 0
            conn.autocommit = True

        pool = psycopg_pool.ConnectionPool(
            self.conninfo(), min_size=size, max_size=size, configure=configure, open=False
        )
        pool.open(wait=True)
        return pool

    # --- life cycle -------------------------------------------------------------------
    def recreate(self) -> None:
        """Drop and create the bench database, then register the Django aliases."""
        self.unregister()
        maintenance = self.base.get("NAME") if self.base.get("NAME") != self.name else "postgres"
        with psycopg.connect(self.conninfo(maintenance), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.register()

    def drop(self) -> None:
        """Unregister the aliases and drop the bench database."""
        self.unregister()
        maintenance = self.base.get("NAME") if self.base.get("NAME") != self.name else "postgres"
        with psycopg.connect(self.conninfo(maintenance), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )

    def register(self) -> None:
        """Add `bench` (the project's settings, pool included) and `bench_direct` (no pool)."""
        pooled = copy.deepcopy(self.base)
        pooled["NAME"] = self.name
        pooled["TEST"] = {"NAME": self.name}
        direct = copy.deepcopy(pooled)
        direct["OPTIONS"] = {k: v for k, v in direct.get("OPTIONS", {}).items() if k != "pool"}
        direct["CONN_MAX_AGE"] = 0
        connections.databases[BENCH_ALIAS] = pooled
        connections.databases[BENCH_DIRECT_ALIAS] = direct

    def unregister(self) -> None:
        """Close this thread's connections and the pools of both aliases, then forget them."""
        for alias in (BENCH_ALIAS, BENCH_DIRECT_ALIAS):
            if alias not in connections.databases:
                continue
            conn = connections[alias]
            conn.close()
            close_pool = getattr(conn, "close_pool", None)
            if close_pool is not None:
                close_pool()
            del connections[alias]
            del connections.databases[alias]

    def migrate(self, *targets: str) -> None:
        """Run Django migrations on the bench database (all apps, or `app target`)."""
        call_command("migrate", *targets, database=BENCH_ALIAS, verbosity=0, interactive=False)

    def analyze(self) -> None:
        with self.raw_connect(prepared=False) as conn:
            conn.execute("VACUUM ANALYZE")

    # --- reporting --------------------------------------------------------------------
    def server_settings(self) -> dict[str, str]:
        with self.raw_connect(prepared=False) as conn:
            values: dict[str, str] = {}
            for name in SERVER_SETTINGS:
                row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
                values[name] = row[0] if row else ""
            row = conn.execute("SELECT version()").fetchone()
            values["version"] = row[0] if row else ""
        return values


def machine_info() -> dict[str, Any]:
    """Describe the client machine and the library versions."""
    cpu_model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gb = None
    with contextlib.suppress(ValueError, OSError):
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": memory_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "psycopg": psycopg.__version__,
        "psycopg_impl": psycopg.pq.__impl__,
        "libpq": psycopg.pq.version(),
        "psycopg_pool": psycopg_pool.__version__,
        "db_pool_options": settings.DATABASES["default"].get("OPTIONS", {}).get("pool"),
    }
