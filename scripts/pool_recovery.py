#!/usr/bin/env python
"""Measure Django's psycopg pool when the server drops connections (docs/repositories.md,
"Pools and worker threads").

    DATABASE_URL=postgres://... .venv/bin/python scripts/pool_recovery.py [--quick]

Works on a scratch database it creates on DATABASE_URL's server (and drops at the end),
so terminating "every backend" touches nothing else; the role must be allowed to create
databases and terminate backends (a superuser). Nothing is restarted. It prints:

1. the cost of the pool's `check` per checkout (checkout + SELECT 1 + return, with and
   without the check, and the check alone);
2. after pg_terminate_backend of every backend of the database, for N idle connections in
   the pool: how long one caller takes to get an answer again and how many of its calls
   fail, for no pool (a thread keeps its connection), the pool without check, with
   psycopg_pool's plain check and with the repositories app's sweep;
3. the same with 8 caller threads running request-like calls (checkout, SELECT 1, return);
4. an outage: the database refuses new connections (ALLOW_CONNECTIONS false) for D s and
   every backend is terminated: failed calls per second during it, and how long after
   connections are allowed again the first call succeeds (no pool; the pool; the pool
   with reconnect_timeout=2). Not a server restart: the server keeps running and refuses
   after authentication instead of at TCP connect.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.db import connections  # noqa: E402
from django.test import override_settings  # noqa: E402
from psycopg_pool import ConnectionPool  # noqa: E402

from repositories.core.error_mapping import translate_errors  # noqa: E402
from repositories.errors import DatabaseUnavailableError  # noqa: E402

SCRATCH = f"pool_recovery_{uuid.uuid4().hex[:8]}"
CONFIGS = {  # name: (pool?, CONN_HEALTH_CHECKS, sweep)
    "no pool": (False, False, False),
    "pool, no check": (True, False, False),
    "pool, plain check": (True, True, False),
    "pool, check + sweep": (True, True, True),
}


def out(line: str) -> None:
    print(line, flush=True)  # noqa: T201 - the figures are this script's output


def admin(dbname: str = "postgres") -> psycopg.Connection[Any]:
    params = connections["default"].get_connection_params()
    for name in ("pool", "cursor_factory", "context"):
        params.pop(name, None)
    params["dbname"] = dbname
    return psycopg.connect(**params, autocommit=True)


def terminate_all() -> int:
    """Terminate every backend of the scratch database; wait until those are gone."""
    with admin() as conn:
        # Select first, then terminate by pid: a filter next to pg_terminate_backend() in
        # one WHERE may be applied after it (pg_stat_activity is a join).
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [SCRATCH],
        ).fetchall()
        pids = [row[0] for row in rows]
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])
        while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]).fetchone():
            time.sleep(0.002)
    return len(pids)


def allow_connections(allowed: bool) -> None:
    with admin() as conn:
        conn.execute(f'ALTER DATABASE "{SCRATCH}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')


@contextmanager
def alias_for(config: str, idle: int, max_size: int, **pool: float) -> Iterator[str]:
    pooled, checks, sweep = CONFIGS[config]
    alias = f"measure_{uuid.uuid4().hex[:8]}"
    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    settings_dict["NAME"] = SCRATCH
    settings_dict["OPTIONS"].pop("pool", None)
    if pooled:
        settings_dict["OPTIONS"]["pool"] = {
            "min_size": idle,
            "max_size": max_size,
            "timeout": 10,
            **pool,
        }
    settings_dict["CONN_MAX_AGE"] = 0
    settings_dict["CONN_HEALTH_CHECKS"] = checks
    connections.settings[alias] = settings_dict
    flags = {"SWEEP_POOL_ON_FAILED_CHECK": sweep}
    try:
        with override_settings(REPOSITORIES={**django.conf.settings.REPOSITORIES, **flags}):
            yield alias
    finally:
        wrapper: Any = connections[alias]
        wrapper.close()
        if wrapper.pool is not None:
            wrapper.close_pool()
        del connections[alias]
        del connections.settings[alias]


def call(alias: str) -> None:
    with translate_errors(using=alias), connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")


def until_success(alias: str, *, close: bool) -> tuple[float, int]:
    """Call until a call succeeds; return (seconds, failed calls)."""
    started, failed = time.perf_counter(), 0
    while True:
        try:
            call(alias)
        except DatabaseUnavailableError:
            failed += 1
        else:
            return time.perf_counter() - started, failed
        finally:
            if close:
                connections[alias].close()


def fill(alias: str, idle: int) -> None:
    """Serve a first call (the sweep is installed then) and wait for `idle` idle connections."""
    call(alias)
    pool = cast(Any, connections[alias]).pool
    if pool is None:
        return
    connections[alias].close()
    deadline = time.monotonic() + 10
    while pool.get_stats()["pool_available"] < idle and time.monotonic() < deadline:
        time.sleep(0.01)


def check_cost(rounds: int) -> None:
    out(f"\n1. Cost of the check, median of {rounds} rounds (the two pools alternate)")
    with (
        alias_for("pool, no check", 1, 1) as plain,
        alias_for("pool, plain check", 1, 1) as checked,
    ):
        timings: dict[str, list[float]] = {plain: [], checked: [], "check": []}
        for alias in (plain, checked):
            fill(alias, 1)
        for _ in range(rounds):
            for alias in (plain, checked):
                started = time.perf_counter()
                call(alias)
                connections[alias].close()
                timings[alias].append(time.perf_counter() - started)
        with admin(SCRATCH) as conn:
            for _ in range(rounds):
                started = time.perf_counter()
                ConnectionPool.check_connection(conn)
                timings["check"].append(time.perf_counter() - started)

        def median(values: list[float]) -> float:
            return sorted(values)[len(values) // 2] * 1e6

        out(f"   checkout + SELECT 1 + return, no check     {median(timings[plain]):6.0f} µs")
        out(f"   checkout + SELECT 1 + return, plain check  {median(timings[checked]):6.0f} µs")
        out(f"   the check alone (an empty query)           {median(timings['check']):6.0f} µs")


def kill_all_single(idles: list[int]) -> None:
    out("\n2. One caller, every backend terminated: time to the first answer, failed calls")
    for config in CONFIGS:
        for idle in idles if CONFIGS[config][0] else [1]:
            with alias_for(config, idle, max(idle, 4)) as alias:
                fill(alias, idle)
                if not CONFIGS[config][0]:
                    call(alias)  # the caller's thread holds its connection
                terminated = terminate_all()
                seconds, failed = until_success(alias, close=False)
                out(f"   {config:20} {terminated:2} killed  {seconds:7.3f} s  {failed:3} failed")


def kill_all_concurrent(callers: int, idle: int) -> None:
    out(f"\n3. {callers} callers (checkout, SELECT 1, return in a loop), {idle} idle, all killed")
    for config in CONFIGS:
        with alias_for(config, idle if CONFIGS[config][0] else 1, max(idle, callers)) as alias:
            fill(alias, idle)
            killed = threading.Event()
            stop = threading.Event()
            results: list[tuple[float, int]] = []
            kill_started: list[float] = []

            def loop(
                alias: str = alias,
                killed: threading.Event = killed,
                stop: threading.Event = stop,
                results: list[tuple[float, int]] = results,
                kill_started: list[float] = kill_started,
            ) -> None:
                failed = 0
                while not killed.is_set():
                    try:
                        call(alias)
                    except DatabaseUnavailableError:
                        failed += 1  # terminated while the kill flag was being raised
                    finally:
                        connections[alias].close()
                _, more = until_success(alias, close=True)
                results.append((time.perf_counter() - kill_started[0], failed + more))
                stop.wait(30)
                connections[alias].close()

            threads = [threading.Thread(target=loop) for _ in range(callers)]
            for thread in threads:
                thread.start()
            time.sleep(0.3)
            kill_started.append(time.perf_counter())
            terminated = terminate_all()
            killed.set()
            while len(results) < callers:
                time.sleep(0.01)
            stop.set()
            for thread in threads:
                thread.join()
            slowest = max(seconds for seconds, _ in results)
            failed = sum(count for _, count in results)
            out(
                f"   {config:20} {terminated:2} killed  slowest caller {slowest:7.3f} s"
                f"  {failed:3} failed in all"
            )


def outage(durations: list[float]) -> None:
    out(
        "\n4. Outage: the database refuses connections for D s, every backend terminated;"
        " one caller (checkout, SELECT 1, return in a loop)"
    )
    variants: list[tuple[str, float | None]] = [
        ("no pool", None),
        ("pool, check + sweep", None),
        ("pool, check + sweep", 2.0),
    ]
    for config, reconnect_timeout in variants:
        for duration in durations:
            extra = {} if reconnect_timeout is None else {"reconnect_timeout": reconnect_timeout}
            with alias_for(config, 2, 4, **extra) as alias:
                fill(alias, 2)
                events: list[tuple[float, bool]] = []
                done = threading.Event()

                def caller(
                    alias: str = alias,
                    events: list[tuple[float, bool]] = events,
                    done: threading.Event = done,
                ) -> None:
                    while not done.is_set():
                        try:
                            call(alias)
                        except DatabaseUnavailableError:
                            events.append((time.perf_counter(), False))
                        else:
                            events.append((time.perf_counter(), True))
                        finally:
                            connections[alias].close()

                allow_connections(False)
                terminate_all()
                thread = threading.Thread(target=caller)
                thread.start()
                time.sleep(duration)
                allow_connections(True)
                allowed = time.perf_counter()
                while not any(ok and at > allowed for at, ok in events):
                    time.sleep(0.005)
                done.set()
                thread.join()
                failed = sum(1 for at, ok in events if not ok and at <= allowed)
                first = min(at for at, ok in events if ok and at > allowed) - allowed
                label = config if reconnect_timeout is None else f"{config}, reconnect 2 s"
                out(
                    f"   {label:34} D = {duration:4.1f} s  {failed / duration:6.1f} failed/s"
                    f" during it; first answer {first:6.3f} s after it"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and sizes")
    quick = parser.parse_args().quick
    # The pool logs every connection it discards; the figures are the output here.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    logging.getLogger("repositories.core.pool_health").setLevel(logging.ERROR)
    logging.getLogger("repositories.queries").setLevel(logging.ERROR)
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{SCRATCH}"')
        version = conn.info.server_version
    try:
        out(f"PostgreSQL {version} on DATABASE_URL's server, scratch database {SCRATCH}")
        check_cost(200 if quick else 2000)
        kill_all_single([2, 4] if quick else [1, 2, 3, 4, 5, 10, 20])
        kill_all_concurrent(8, 8)
        outage([2.0] if quick else [1.0, 3.0, 10.0])
    finally:
        allow_connections(True)
        terminate_all()
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}"')


if __name__ == "__main__":
    main()
