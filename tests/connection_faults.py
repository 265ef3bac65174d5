"""Breaking a Django connection under a test, on a direct connection or behind PgBouncer.

Directly, a connection is one server process: terminating it (pg_terminate_backend from a
second connection) breaks the connection. Behind PgBouncer in transaction mode a client
holds a server process only inside a transaction: between transactions a terminated server
process costs it nothing (PgBouncer opens another), so there the connection is broken
where it lives, between the client and PgBouncer. The second connection always goes to the
server itself (its address from `inet_server_addr()`/`inet_server_port()`), never through
PgBouncer, which could hand it the very server process it is about to terminate.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import psycopg
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg.pq import TransactionStatus


def server_params(conn: BaseDatabaseWrapper) -> dict[str, Any]:
    """Connection parameters that reach `conn`'s PostgreSQL server itself (not a pooler)."""
    params = dict(conn.get_connection_params())
    for name in ("pool", "cursor_factory", "context", "prepare_threshold"):
        params.pop(name, None)
    conn.ensure_connection()
    with conn.cursor() as cursor:
        cursor.execute("SELECT host(inet_server_addr()), inet_server_port()")
        host, port = cursor.fetchone()
    if host is not None:  # None: a Unix socket, which no pooler sits on here
        params.update(host=host, port=port)
    return params


def behind_pooler(conn: BaseDatabaseWrapper) -> bool:
    """Whether `conn` reaches PostgreSQL through a pooler (the server listens elsewhere)."""
    configured = str(conn.settings_dict.get("PORT") or "5432")
    return str(server_params(conn)["port"]) != configured


def direct_connection(conn: BaseDatabaseWrapper) -> psycopg.Connection[Any]:
    """A new autocommit connection to `conn`'s database on its server, bypassing poolers."""
    return psycopg.connect(**server_params(conn), autocommit=True)


def terminate(conn: BaseDatabaseWrapper, pids: list[int]) -> None:
    """Terminate these server processes of `conn`'s server and wait until they are gone."""
    with direct_connection(conn) as killer:
        for pid in pids:
            killer.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 5
        while killer.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
        ).fetchone():
            assert time.monotonic() < deadline, f"backends {pids} still alive"
            time.sleep(0.005)


def break_connection(conn: BaseDatabaseWrapper) -> None:
    """Break `conn` under whatever it does next, as a server crash or network loss would.

    Directly, or behind a pooler inside a transaction (the server process is the client's
    until the transaction ends): terminate its server process. Behind a pooler between
    transactions: cut the client's socket to the pooler.
    """
    pooled = behind_pooler(conn)
    raw = conn.connection
    assert raw is not None
    if pooled and raw.info.transaction_status == TransactionStatus.IDLE:
        with socket.socket(fileno=os.dup(raw.pgconn.socket)) as client_end:
            client_end.shutdown(socket.SHUT_RDWR)
        return
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    terminate(conn, [pid])
