"""Django's psycopg pool with worker threads and dead connections, on real PostgreSQL.

Each test adds its own alias (to the test database) with a small pool and its own
`application_name`, so its backends can be found and terminated (pg_terminate_backend
from a separate psycopg connection); the aliases connect to the server itself, also when
`default` goes through PgBouncer without touching anyone else's. Threads the test
starts open their own connections to it (`attach`).

Each fix is checked against its control: with the setting that turns it off, the same
sequence fails (a caller gets DatabaseUnavailableError, or waits out the pool's backoff).
"""

from __future__ import annotations

import copy
import gc
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
from django.db import connections
from django.db.utils import load_backend
from psycopg_pool import ConnectionPool

from repositories.configuration import SystemConfigRepository
from repositories.core import pool_health, threads
from repositories.core.threads import close_thread_connections, database_worker
from repositories.core.transactions import atomic
from repositories.errors import DatabaseUnavailableError
from tests.connection_faults import direct_connection, server_params
from tests.factories import SystemConfigFactory

BASE_DIR = Path(__file__).resolve().parents[2]

#: A pool option set: (min_size, max_size, timeout in seconds); None: no pool.
PoolSize = tuple[int, int, float] | None


_SETTINGS: dict[str, dict[str, Any]] = {}


def attach(alias: str) -> None:
    """Give the calling thread its own connection object for `alias` (as Django does for an
    alias of DATABASES the first time a thread uses it)."""
    settings_dict = _SETTINGS[alias]
    connections[alias] = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias)


@pytest.fixture
def add_alias(transactional_db: None) -> Iterator[Callable[..., str]]:
    """Return `add(pool=(min, max, timeout), checks=True)`, which creates an alias on the
    test database, attaches it to this thread and returns its name; every alias and its
    pool go at teardown.

    The aliases stay out of DATABASES, so Django's test case treats them as dynamically
    created (allowed in threads too) and flushes only "default"; a thread calls `attach`.
    """
    added: list[str] = []

    def add(pool: PoolSize = (1, 3, 5.0), *, checks: bool = True) -> str:
        alias = f"pool_{uuid.uuid4().hex[:10]}"
        settings_dict = copy.deepcopy(connections["default"].settings_dict)
        # Straight to the server even when `default` goes through PgBouncer: the subject
        # is Django's pool holding server processes that die.
        direct = server_params(connections["default"])
        settings_dict.update(HOST=direct["host"], PORT=str(direct["port"]))
        options = settings_dict["OPTIONS"]
        options["application_name"] = alias
        options.pop("pool", None)
        if pool is not None:
            min_size, max_size, timeout = pool
            options["pool"] = {"min_size": min_size, "max_size": max_size, "timeout": timeout}
        settings_dict["CONN_MAX_AGE"] = 0
        settings_dict["CONN_HEALTH_CHECKS"] = checks
        _SETTINGS[alias] = settings_dict
        added.append(alias)
        attach(alias)
        return alias

    yield add
    for alias in added:
        wrapper: Any = connections[alias]
        wrapper.close()
        if wrapper.pool is not None:
            wrapper.close_pool()
        del connections[alias]
        del _SETTINGS[alias]
    gc.collect()  # connections a control test left behind in finished threads
    for alias in added:
        _terminate(_backends(alias))


def _admin() -> psycopg.Connection[Any]:
    """A connection of its own (no pool, no Django, no pooler) to the test database."""
    return direct_connection(connections["default"])


def _backends(alias: str) -> list[int]:
    with _admin() as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [alias]
        ).fetchall()
    return [row[0] for row in rows]


def _terminate(pids: list[int]) -> None:
    """Terminate these backends and wait until they are gone."""
    with _admin() as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 5
        while admin.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
        ).fetchone():
            assert time.monotonic() < deadline, f"backends {pids} still alive"
            time.sleep(0.005)


def _pid(alias: str) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _pool(alias: str) -> ConnectionPool:
    pool = cast(Any, connections[alias]).pool
    assert isinstance(pool, ConnectionPool)
    return pool


def _fill(alias: str, idle: int) -> None:
    """Serve one call, then wait until `idle` connections sit in the pool."""
    SystemConfigRepository(using=alias).count()
    connections[alias].close()
    _wait_available(alias, idle, within=5)


def _wait_available(alias: str, idle: int, within: float = 1) -> None:
    """Wait until `idle` connections sit in the pool (a connection given back is reset by
    the pool's worker thread, REPOSITORIES["RESET_POOLED_SESSIONS"], before it is)."""
    deadline = time.monotonic() + within
    while _pool(alias).get_stats()["pool_available"] < idle:
        assert time.monotonic() < deadline, f"fewer than {idle} connections back in the pool"
        time.sleep(0.005)


def _flags(settings: Any, **flags: bool) -> None:
    settings.REPOSITORIES = {**getattr(settings, "REPOSITORIES", {}), **flags}


def _run_in_thread(alias: str, target: Callable[[], object]) -> BaseException | None:
    """Run `target` in a new thread (using `alias`) to its end; return what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            attach(alias)
            target()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    return raised[0] if raised else None


# --- the pool's check: a connection killed while idle ------------------------------------


def test_repository_call_succeeds_when_its_idle_pooled_connection_was_killed(add_alias):
    SystemConfigFactory.create(key="pooled", value=1)
    alias = add_alias((1, 1, 5.0))  # one connection: the next checkout gets the killed one
    configs = SystemConfigRepository(using=alias)
    assert configs.count({"key": "pooled"}) == 1
    killed = _pid(alias)
    connections[alias].close()  # back to the pool, idle
    _terminate([killed])

    assert configs.count({"key": "pooled"}) == 1
    assert _pid(alias) != killed


def test_without_the_check_a_killed_idle_connection_fails_one_call(add_alias):
    alias = add_alias((1, 1, 5.0), checks=False)
    configs = SystemConfigRepository(using=alias)
    configs.count()
    killed = _pid(alias)
    connections[alias].close()
    _terminate([killed])

    with pytest.raises(DatabaseUnavailableError):
        configs.count()
    assert configs.count() == 0  # the broken connection was discarded


def test_check_sweeps_every_idle_connection_after_all_were_killed(add_alias):
    alias = add_alias((6, 6, 10.0))
    _fill(alias, 6)
    _terminate(_backends(alias))

    started = time.monotonic()
    assert SystemConfigRepository(using=alias).count() == 0
    # The plain check would meet the dead ones one by one, pausing 0, 1, 2, 4, 8 s.
    assert time.monotonic() - started < 0.5


def test_without_the_sweep_the_pool_pauses_for_each_dead_connection(add_alias, settings):
    _flags(settings, SWEEP_POOL_ON_FAILED_CHECK=False)
    alias = add_alias((2, 2, 10.0))
    _fill(alias, 2)
    _terminate(_backends(alias))

    started = time.monotonic()
    assert SystemConfigRepository(using=alias).count() == 0
    assert time.monotonic() - started > 0.8  # the pool's backoff: about 1 s


def test_sweep_is_installed_only_on_pools_with_the_plain_check(add_alias):
    checked = add_alias((1, 1, 5.0))
    unchecked = add_alias((1, 1, 5.0), checks=False)
    for alias in (checked, unchecked):
        SystemConfigRepository(using=alias).count()

    assert _pool(checked)._check is pool_health.check_and_sweep
    assert _pool(unchecked)._check is None
    assert pool_health.sweep_on_failed_check(_pool(checked)) is True  # idempotent
    assert pool_health.sweep_on_failed_check(_pool(unchecked)) is False
    assert pool_health.sweep_on_failed_check(object()) is False


def test_check_and_sweep_raises_when_checking_the_idle_ones_fails(monkeypatch, add_alias):
    alias = add_alias((2, 2, 5.0))
    _fill(alias, 2)
    _terminate(_backends(alias))

    def broken_check(self: ConnectionPool) -> None:
        raise RuntimeError("check failed")

    monkeypatch.setattr(ConnectionPool, "check", broken_check)
    # The sweep's failure is logged; the checkout still ends with a live connection.
    assert SystemConfigRepository(using=alias).count() == 0


# --- threads that end without closing ------------------------------------------------------


def _read_and_exit_without_closing(alias: str) -> Callable[[], object]:
    return lambda: SystemConfigRepository(using=alias).count()


def test_threads_ending_without_close_give_their_pool_slots_back(add_alias):
    alias = add_alias((1, 3, 2.0))
    for _ in range(10):  # more threads than the pool has slots, one after another
        assert _run_in_thread(alias, _read_and_exit_without_closing(alias)) is None
        _wait_available(alias, 1)  # given back when the thread ended

    started = time.monotonic()
    assert SystemConfigRepository(using=alias).count() == 0
    assert time.monotonic() - started < 2.0


def test_without_reclaiming_threads_ending_without_close_wedge_the_pool(add_alias, settings):
    _flags(settings, RECLAIM_THREAD_CONNECTIONS=False)
    alias = add_alias((1, 3, 0.5))
    gc.collect()
    errors = [_run_in_thread(alias, _read_and_exit_without_closing(alias)) for _ in range(4)]
    gc.collect()  # collecting the dropped connections does not give the slots back

    assert errors[:3] == [None, None, None]
    assert isinstance(errors[3], DatabaseUnavailableError)
    with pytest.raises(DatabaseUnavailableError):
        SystemConfigRepository(using=alias).count()


def _wait_until_no_backends(alias: str) -> None:
    deadline = time.monotonic() + 5
    while _backends(alias):
        assert time.monotonic() < deadline, "the backend is still there"
        time.sleep(0.01)


def test_a_thread_ending_without_close_closes_its_unpooled_connection(add_alias):
    alias = add_alias(None)
    gc.disable()  # the garbage collector would close it too, some time later
    try:
        assert _run_in_thread(alias, _read_and_exit_without_closing(alias)) is None
        _wait_until_no_backends(alias)
    finally:
        gc.enable()


def test_without_reclaiming_an_unpooled_connection_waits_for_the_collector(add_alias, settings):
    _flags(settings, RECLAIM_THREAD_CONNECTIONS=False)
    alias = add_alias(None)
    gc.disable()
    try:
        assert _run_in_thread(alias, _read_and_exit_without_closing(alias)) is None
        time.sleep(0.2)
        assert len(_backends(alias)) == 1
    finally:
        gc.enable()
    gc.collect()
    _wait_until_no_backends(alias)


def test_a_shared_connection_is_left_to_its_owner_when_a_thread_ends(add_alias):
    alias = add_alias(None)
    holder: list[Any] = []

    def open_and_share() -> None:
        wrapper = connections[alias]
        SystemConfigRepository(using=alias).count()
        wrapper.inc_thread_sharing()
        holder.append(wrapper)

    assert _run_in_thread(alias, open_and_share) is None
    wrapper = holder[0]
    try:
        assert wrapper.connection is not None
        assert len(_backends(alias)) == 1
    finally:
        wrapper.close()
        wrapper.dec_thread_sharing()


class _FakeWrapper:
    """Stands in for a DatabaseWrapper: an open connection and a close() that may fail."""

    alias = "fake"
    allow_thread_sharing = False

    def __init__(self, *, fails: bool = False) -> None:
        self.connection: object | None = object()
        self.fails = fails

    def close(self) -> None:
        if self.fails:
            raise RuntimeError("close failed")
        self.connection = None


def test_thread_record_forgets_wrappers_of_ended_contexts():
    record = threads._ThreadConnections()
    kept = _FakeWrapper()
    record.note(cast(Any, kept))
    ended = [_FakeWrapper() for _ in range(threads._PRUNE_AT)]
    for wrapper in ended:
        record.note(cast(Any, wrapper))
    del ended, wrapper  # their contexts end
    newest = _FakeWrapper()
    record.note(cast(Any, newest))
    assert [ref() for ref in record.refs.values()] == [kept, newest]


def test_thread_record_logs_a_connection_it_cannot_close(caplog):
    record = threads._ThreadConnections()
    failing = _FakeWrapper(fails=True)
    record.note(cast(Any, failing))
    del record
    assert "could not close the 'fake' connection of a finished thread" in caplog.text


def test_thread_record_does_nothing_at_interpreter_shutdown(monkeypatch):
    record = threads._ThreadConnections()
    wrapper = _FakeWrapper()
    record.note(cast(Any, wrapper))
    monkeypatch.setattr(threads.sys, "is_finalizing", lambda: True)
    del record
    assert wrapper.connection is not None


# --- database_worker ----------------------------------------------------------------------


def _run_tasks(alias: str, task: Callable[[int], int], workers: int, tasks: int) -> list[object]:
    """Run `task(0..tasks-1)` on a thread pool; return results or the errors raised."""
    start = threading.Barrier(workers)

    def first(i: int) -> int:  # make every worker thread exist and take a task at once
        start.wait(10)
        return task(i)

    outcomes: list[object] = []
    with ThreadPoolExecutor(max_workers=workers, initializer=attach, initargs=(alias,)) as executor:
        futures = [executor.submit(first if i < workers else task, i) for i in range(tasks)]
        for future in futures:
            error = future.exception()
            outcomes.append(error if error is not None else future.result())
    return outcomes


def test_database_worker_lets_more_worker_threads_than_pool_slots_share_the_pool(add_alias):
    alias = add_alias((1, 2, 5.0))

    @database_worker(using=alias)
    def task(i: int) -> int:
        return SystemConfigRepository(using=alias).count() + i

    assert _run_tasks(alias, task, workers=4, tasks=12) == list(range(12))


def test_without_database_worker_idle_worker_threads_keep_their_slots(add_alias):
    alias = add_alias((1, 2, 0.5))

    def task(i: int) -> int:
        return SystemConfigRepository(using=alias).count() + i

    outcomes = _run_tasks(alias, task, workers=4, tasks=4)
    assert sum(isinstance(o, DatabaseUnavailableError) for o in outcomes) == 2


@pytest.mark.django_db(transaction=True)
def test_database_worker_closes_the_thread_connections_to_every_database():
    seen: list[object] = []

    @database_worker
    def task() -> int:
        count = SystemConfigRepository().count()
        seen.append(connections["default"].connection)
        return count

    def run() -> None:
        assert task() == 0
        seen.append(connections["default"].connection)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert seen[0] is not None
    assert seen[1] is None


def test_database_worker_closes_connections_when_the_work_raises(add_alias):
    alias = add_alias((1, 1, 5.0))

    @database_worker(using=alias)
    def failing() -> None:
        SystemConfigRepository(using=alias).count()
        raise ValueError("task failed")

    with pytest.raises(ValueError, match="task failed"):
        failing()
    assert connections[alias].connection is None
    _wait_available(alias, 1)


def test_database_worker_closes_only_the_aliases_it_names(add_alias):
    first, second = add_alias((1, 1, 5.0)), add_alias((1, 1, 5.0))
    with database_worker(using=[first]):
        SystemConfigRepository(using=first).count()
        SystemConfigRepository(using=second).count()
    assert connections[first].connection is None
    assert connections[second].connection is not None


def test_database_worker_leaves_a_connection_inside_a_transaction_open(add_alias):
    alias = add_alias((1, 1, 5.0))
    configs = SystemConfigRepository(using=alias)
    with atomic(using=alias):
        with database_worker():
            configs.count()
        assert connections[alias].connection is not None
        assert configs.count() == 0  # the transaction goes on
    close_thread_connections(alias)
    assert connections[alias].connection is None


def test_close_thread_connections_logs_a_failed_close(add_alias, monkeypatch, caplog):
    alias = add_alias((1, 1, 5.0))
    SystemConfigRepository(using=alias).count()
    wrapper: Any = connections[alias]
    real_close = wrapper._close

    def failing_close() -> None:
        from django.db import OperationalError

        real_close()
        raise OperationalError("close failed")

    monkeypatch.setattr(wrapper, "_close", failing_close)
    close_thread_connections(alias)
    assert "could not close" in caplog.text


# --- settings -----------------------------------------------------------------------------


def _database_settings(**env: str) -> dict[str, Any]:
    """DATABASES["default"] as a fresh import of config.settings sees it under `env`."""
    code = (
        "import json, config.settings as s; d = s.DATABASES['default']; "
        "print(json.dumps({'checks': d['CONN_HEALTH_CHECKS'], 'pool': 'pool' in d['OPTIONS']}))"
    )
    names = ("DB_POOL", "DB_POOL_CHECK")
    base = {k: v for k, v in os.environ.items() if k not in names}
    base |= {"DATABASE_URL": "postgres://nobody@127.0.0.1:1/unused", "SECRET_KEY": "x"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_settings_check_pooled_connections_unless_db_pool_check_is_off():
    assert _database_settings() == {"checks": True, "pool": True}
    assert _database_settings(DB_POOL_CHECK="0") == {"checks": False, "pool": True}
    assert _database_settings(DB_POOL="0") == {"checks": True, "pool": False}
