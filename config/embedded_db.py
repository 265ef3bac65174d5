"""Start the embedded PostgreSQL (pgserver) under `.data/` and describe how to reach it."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

EMBEDDED_DATABASE_NAME = "repositories"


def embedded_database(base_dir: Path) -> dict[str, Any]:
    """Start (or reuse) the embedded server and return a Django `DATABASES` entry for it.

    By default the server keeps running after this process exits, so later commands reuse
    it; `EMBEDDED_DB_STOP_AT_EXIT=1` stops it when the last process using it exits (CI).
    The data lives under `.data/pg`, which git ignores.
    """
    import dj_database_url
    import psycopg

    data_dir = base_dir / ".data" / "pg"
    data_dir.mkdir(parents=True, exist_ok=True)
    stop_at_exit = os.environ.get("EMBEDDED_DB_STOP_AT_EXIT", "") in {"1", "true", "yes"}
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: only needed when DATABASE_URL is unset

        server = pgserver.get_server(data_dir, cleanup_mode="stop" if stop_at_exit else None)
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE_NAME,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE_NAME}"')
    return dict(dj_database_url.parse(server.get_uri(EMBEDDED_DATABASE_NAME)))
