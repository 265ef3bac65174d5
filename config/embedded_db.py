"""Start the embedded PostgreSQL (pgserver) under `.data/` and describe how to reach it."""

from __future__ import annotations

import os
import subprocess
import sys
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


def stop_embedded_server(base_dir: Path) -> bool:
    """Stop the embedded server whose data is under `base_dir/.data/pg`, if it runs.

    A fast shutdown (open connections are closed, nothing is lost). Returns False when no
    server was running there. As root the server runs as the system user `pgserver`, so
    pg_ctl is run as that user too.
    """
    data_dir = base_dir / ".data" / "pg"
    if not (data_dir / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
        from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running():
        return False
    subprocess.run(  # noqa: S603 - the bundled pg_ctl, fixed arguments
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir), "-w", "-m", "fast", "stop"],
        user="pgserver" if os.geteuid() == 0 else None,
        stdout=subprocess.DEVNULL,
        check=True,
        timeout=120,
    )
    # The list of processes sharing the server is stale now; the next start writes a new one.
    (data_dir / ".handle_pids.json").unlink(missing_ok=True)
    return True


if __name__ == "__main__":  # `python -m config.embedded_db stop` (make stop)
    if sys.argv[1:] != ["stop"]:
        sys.exit("usage: python -m config.embedded_db stop")
    root = Path(__file__).resolve().parent.parent
    if stop_embedded_server(root):
        sys.stdout.write(f"Stopped the embedded PostgreSQL ({root / '.data' / 'pg'}).\n")
    else:
        sys.stdout.write("The embedded PostgreSQL is not running.\n")
