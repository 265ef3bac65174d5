"""config/embedded_db.py: the embedded PostgreSQL starts on demand and `make stop` stops it."""

from __future__ import annotations

import psycopg
import pytest

from config.embedded_db import embedded_database, stop_embedded_server

pytest.importorskip("pgserver")


def test_stop_stops_a_running_server_and_reports_when_none_runs(tmp_path):
    assert stop_embedded_server(tmp_path) is False  # nothing was ever started here
    try:
        database = embedded_database(tmp_path)
        host = database["OPTIONS"]["host"]  # a Unix socket directory
        uri = f"postgresql://{database['USER']}@/{database['NAME']}?host={host}"
        with psycopg.connect(uri) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        stopped = stop_embedded_server(tmp_path)
    assert stopped is True
    assert not (tmp_path / ".data" / "pg" / "postmaster.pid").exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(uri, connect_timeout=2)
    assert stop_embedded_server(tmp_path) is False
