"""The connection lost during COMMIT, both ways it can end.

1. The server never commits: a deferred constraint trigger (`DEFERRABLE INITIALLY
   DEFERRED`, so it runs at COMMIT) sleeps 1 s and the backend is terminated while it
   sleeps. The write must raise `DatabaseUnavailableError` and leave no trace (no order,
   stock unchanged, no ledger, history or audit row, the cache still serving the old
   value), and the next call on the same thread must work.
2. The server commits but the answer is lost: a proxy (tests/faults/proxy.py) passes the
   COMMIT on and cuts the connection before the answer comes back. The write raises
   `DatabaseUnavailableError` although it committed: the caller cannot know. What must
   hold: `place_order` retried with the same idempotency key returns that order (stock
   taken once), and no cache serves a value older than the committed write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections

from repositories.configuration import SystemConfigRepository
from repositories.errors import DatabaseUnavailableError
from repositories.orders import OrderRepository
from repositories.products import ProductRepository
from repositories.transactions import atomic
from tests.faults.cluster import ThrowawayCluster, register_alias, unregister_alias
from tests.faults.figures import report
from tests.faults.proxy import CommitAckDropper
from tests.faults.workload import Seeded, broken_invariants, database_counts, scalar, seed

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

SLEEP_AT_COMMIT = """
CREATE OR REPLACE FUNCTION faults_sleep_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(1);
    RETURN NULL;
END $$;
"""


@pytest.fixture(scope="module")
def data(cluster: ThrowawayCluster, django_db_blocker: Any) -> Seeded:
    with django_db_blocker.unblock():
        return seed("faults", tag="commit", users=2, products=3, stock=100)


@pytest.fixture
def sleep_at_commit(cluster: ThrowawayCluster) -> Iterator[Callable[[str], None]]:
    """Install the deferred sleeping trigger on a table; removed after the test."""
    tables: list[str] = []

    def install(table: str) -> None:
        with cluster.connect() as conn:
            conn.execute(SLEEP_AT_COMMIT)
            conn.execute(
                f"CREATE CONSTRAINT TRIGGER faults_sleep_at_commit AFTER INSERT OR UPDATE"
                f" ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
                f" EXECUTE FUNCTION faults_sleep_at_commit()"
            )
        tables.append(table)

    yield install
    with cluster.connect() as conn:
        for table in tables:
            conn.execute(f"DROP TRIGGER IF EXISTS faults_sleep_at_commit ON {table}")


def terminate_when_sleeping(cluster: ThrowawayCluster, box: dict[str, Any]) -> threading.Thread:
    """Terminate the backend that sleeps in the trigger (waits up to 10 s for it)."""

    def run() -> None:
        with cluster.connect() as killer:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                row = killer.execute(
                    "SELECT pid, query FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
                    " AND datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()
                if row is not None:
                    box["query"] = row[1]
                    box["terminated"] = scalar(killer, "SELECT pg_terminate_backend(%s)", [row[0]])
                    return
                time.sleep(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _place(alias: str, data: Seeded) -> Any:
    return OrderRepository(using=alias).place_order(data.users[0], [(data.products[0], 2)])


def _place_in_callers_transaction(alias: str, data: Seeded) -> Any:
    # The COMMIT is the caller's (repositories.transactions.atomic), not the repository's.
    with atomic(using=alias):
        return OrderRepository(using=alias).place_order(data.users[0], [(data.products[1], 1)])


def _restock(alias: str, data: Seeded) -> Any:
    return ProductRepository(using=alias).restock(data.products[2], 5)


def _cancel(alias: str, data: Seeded) -> Any:
    return OrderRepository(using=alias).cancel(data.extra["order"])


def _set_config(alias: str, data: Seeded) -> Any:
    return SystemConfigRepository(using=alias).set("faults.commit", "new")


CASES = {
    # name: (table the trigger watches, the call)
    "place_order": ("orders", _place),
    "place_order inside the caller's atomic()": ("orders", _place_in_callers_transaction),
    "restock": ("inventory_movements", _restock),
    "cancel": ("order_status_history", _cancel),
    "SystemConfigRepository.set": ("system_config", _set_config),
}


@pytest.mark.parametrize("case", list(CASES))
def test_connection_lost_during_commit_raises_typed_and_leaves_no_trace(
    cluster: ThrowawayCluster, faults_db: str, data: Seeded, sleep_at_commit: Any, case: str
) -> None:
    table, call = CASES[case]
    config = SystemConfigRepository(using=faults_db)
    config.set("faults.commit", "old")
    assert config.get("faults.commit") == "old"  # cached now
    order = OrderRepository(using=faults_db).place_order(data.users[1], [(data.products[2], 1)])
    data.extra["order"] = order.pk
    connections[faults_db].close()
    with cluster.connect() as conn:
        before = database_counts(conn)
    sleep_at_commit(table)

    box: dict[str, Any] = {}
    killer = terminate_when_sleeping(cluster, box)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError) as caught:
        call(faults_db, data)
    failed_after = time.monotonic() - started
    killer.join(15)

    with cluster.connect() as conn:
        after = database_counts(conn)
        status = conn.execute("SELECT status, version FROM orders WHERE id = %s", [order.pk])
        order_after = status.fetchone()
        broken = broken_invariants(conn)
    # The same thread goes on: the broken connection was discarded.
    next_started = time.monotonic()
    recovered = OrderRepository(using=faults_db).count()
    cache_value = config.get("faults.commit")
    report(
        f"connection lost during COMMIT (server never commits): {case}",
        terminated_in=box.get("query", "?")[:60],
        raised=type(caught.value).__name__,
        cause=repr(caught.value.__cause__)[:120],
        raised_after_s=round(failed_after, 2),
        next_call_s=round(time.monotonic() - next_started, 3),
        changed={k: (before[k], after[k]) for k in before if before[k] != after[k]},
    )
    assert box.get("terminated") is True, "no backend slept in the commit trigger"
    assert box["query"].strip().upper().startswith("COMMIT"), box["query"]
    assert type(caught.value) is DatabaseUnavailableError
    assert after == before
    assert order_after == ("pending", 1)
    assert broken == {}
    assert recovered >= 1
    assert cache_value == "old"


# --- the answer to COMMIT lost: the server committed -------------------------------------------
@pytest.fixture
def proxied(cluster: ThrowawayCluster, faults_db: str) -> Iterator[tuple[str, CommitAckDropper]]:
    """A second alias reaching the server through the COMMIT-answer-dropping proxy."""
    proxy = CommitAckDropper(upstream_port=cluster.port).start()
    alias = register_alias(cluster, "faults_proxy")
    settings = connections.databases[alias]
    settings["PORT"] = str(proxy.port)
    settings["OPTIONS"] = {**settings["OPTIONS"], "sslmode": "disable", "gssencmode": "disable"}
    try:
        yield alias, proxy
    finally:
        try:
            unregister_alias(alias)
        finally:
            proxy.close()


def test_lost_commit_answer_then_retry_with_same_idempotency_key_returns_the_order(
    cluster: ThrowawayCluster, proxied: tuple[str, CommitAckDropper], data: Seeded
) -> None:
    alias, proxy = proxied
    repository = OrderRepository(using=alias)
    lines = [(data.products[0], 3)]
    with cluster.connect() as conn:
        stock_before = scalar(
            conn, "SELECT stock_quantity FROM products WHERE id = %s", [data.products[0]]
        )
    proxy.drop_next_commit_ack()
    with pytest.raises(DatabaseUnavailableError):
        repository.place_order(data.users[0], lines, idempotency_key="lost-ack-1")
    assert proxy.dropped.is_set(), "the proxy saw no COMMIT"
    with cluster.connect() as conn:
        committed = conn.execute(
            "SELECT id FROM orders WHERE idempotency_key = 'lost-ack-1'"
        ).fetchall()
    retried = repository.place_order(data.users[0], lines, idempotency_key="lost-ack-1")
    with cluster.connect() as conn:
        stock_after = scalar(
            conn, "SELECT stock_quantity FROM products WHERE id = %s", [data.products[0]]
        )
        broken = broken_invariants(conn)
    report(
        "answer to COMMIT lost (server committed): place_order, retried with the same key",
        committed_although_failed=len(committed),
        retry_returned_the_same_order=[retried.pk] == [r[0] for r in committed],
        stock_taken=stock_before - stock_after,
    )
    assert len(committed) == 1, "the COMMIT was not executed: the test did not test anything"
    assert retried.pk == committed[0][0]
    assert stock_before - stock_after == 3
    assert broken == {}


def test_lost_commit_answer_does_not_leave_the_cache_serving_the_old_value(
    cluster: ThrowawayCluster, proxied: tuple[str, CommitAckDropper]
) -> None:
    alias, proxy = proxied
    config = SystemConfigRepository(using=alias)
    config.set("faults.lost-ack", "old")
    if config.get("faults.lost-ack") != "old":  # cached now
        pytest.fail("set-up: the first value does not read back")
    proxy.drop_next_commit_ack()
    with pytest.raises(DatabaseUnavailableError):
        config.set("faults.lost-ack", "new")
    if not proxy.dropped.is_set():
        pytest.fail("the proxy saw no COMMIT")
    with cluster.connect() as conn:
        stored = scalar(conn, "SELECT value FROM system_config WHERE key = 'faults.lost-ack'")
    served = config.get("faults.lost-ack")
    report(
        "answer to COMMIT lost (server committed): SystemConfigRepository.set then get",
        stored=stored,
        served_from_cache=served,
    )
    if stored != "new":
        pytest.fail("the COMMIT was not executed: the test did not test anything")
    assert served == "new", "the cache serves a value older than the committed set()"
