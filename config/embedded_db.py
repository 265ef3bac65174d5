"""Start the embedded PostgreSQL (pgserver) under `.data/` and describe how to reach it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EMBEDDED_DATABASE_NAME = "repositories"


def embedded_database(base_dir: Path) -> dict[str, Any]:
    """Start (or reuse) the embedded server and return a Django `DATABASES` entry for it.

    The server keeps running after this process exits (`cleanup_mode=None`), so later
    commands reuse it; the data lives under `.data/pg`, which git ignores.
    """
    import dj_database_url
    import pgserver  # imported lazily: only needed when DATABASE_URL is unset
    import psycopg

    data_dir = base_dir / ".data" / "pg"
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE_NAME,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE_NAME}"')
    return dict(dj_database_url.parse(server.get_uri(EMBEDDED_DATABASE_NAME)))
