"""Backends terminated at random (pg_terminate_backend every 0.2-0.5 s) under a mixed load.

Four threads run place_order (with an idempotency key, retried with the same key after
a lost connection), restock, transition/cancel of their own orders, configuration
writes and reads, and repository reads, for 20 s. A fifth thread terminates a random
client backend of the database every 0.2-0.5 s: idle ones in Django's pool, and ones in
the middle of a statement or a transaction.

Checked: no raw error (every failure is a `repositories.errors` type); no acknowledged
write lost: each acknowledged order is there with its items and exactly one order per
idempotency key, acknowledged restocks are in the ledger, acknowledged transitions in
the history and the final statuses are the last acknowledged ones; a configuration
value read back is never older than the last acknowledged `set`; and the invariants
(stock == ledger ≥ 0, ledger/history/audit agree with the orders).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

import pytest

from domain.models import Order
from repositories.configuration import SystemConfigRepository
from repositories.errors import DatabaseUnavailableError
from repositories.orders import OrderRepository
from repositories.products import ProductRepository
from tests.faults.cluster import ThrowawayCluster
from tests.faults.figures import report
from tests.faults.workload import (
    Tally,
    broken_invariants,
    missing_or_altered_orders,
    percentile,
    run_workers,
    scalar,
    seed,
    stopping,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

THREADS = 4
DURATION_S = 20.0
KILL_EVERY_S = (0.2, 0.5)
MAX_RETRIES = 50
NEXT = {
    "pending": ("paid", "cancelled"),
    "paid": ("shipped", "cancelled"),
    "shipped": ("delivered",),
}


class Worker:
    """One thread's workload and what it was told (its acknowledged writes)."""

    def __init__(self, index: int, alias: str, users: list[Any], products: list[Any]) -> None:
        self.index = index
        self.rng = random.Random(1000 + index)
        self.users = users
        self.products = products
        self.orders = OrderRepository(using=alias)
        self.catalog = ProductRepository(using=alias)
        self.config = SystemConfigRepository(using=alias)
        self.tally = Tally()
        self.acked_orders: dict[Any, dict[Any, int]] = {}
        self.acked_keys: dict[str, Any] = {}
        self.abandoned_keys: list[str] = []
        self.retries = 0
        self.status: dict[Any, str | None] = {}  # None: a transition's outcome is unknown
        self.acked_transitions: list[tuple[Any, str]] = []
        self.unknown_transitions = 0
        self.acked_restock: Counter[Any] = Counter()
        self.unknown_restock: Counter[Any] = Counter()
        self.config_key = f"faults.termination.{index}"
        self.config_acked = 0
        self.config_next = 1
        self.config_stale: list[tuple[int, Any]] = []
        self.placed = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            roll = self.rng.random()
            if roll < 0.35:
                self.place()
            elif roll < 0.48:
                self.restock()
            elif roll < 0.65:
                self.transition()
            elif roll < 0.75:
                self.configure()
            else:
                self.read()

    def place(self) -> None:
        self.placed += 1
        key = f"term-{self.index}-{self.placed}"
        user = self.rng.choice(self.users)
        lines = [(p, self.rng.randint(1, 3)) for p in self.rng.sample(self.products, 2)]
        for attempt in range(MAX_RETRIES):
            ok, result = self.tally.call(
                "place_order",
                lambda: self.orders.place_order(user, lines, idempotency_key=key),
            )
            if ok:
                order: Order = result
                items = {i.product_id: i.quantity for i in order.items.all()}
                if order.pk in self.acked_orders and self.acked_orders[order.pk] != items:
                    raise AssertionError(f"key {key} answered with another order")
                self.acked_orders[order.pk] = items
                self.acked_keys[key] = order.pk
                self.status.setdefault(order.pk, order.status)
                return
            if not isinstance(result, DatabaseUnavailableError):
                return
            # Same key again: the first attempt may have committed before the connection
            # went; the key makes the retry return that order instead of a second one.
            self.retries += attempt == 0
            time.sleep(0.01)
        self.abandoned_keys.append(key)

    def restock(self) -> None:
        product = self.rng.choice(self.products)
        quantity = self.rng.randint(1, 5)
        ok, result = self.tally.call("restock", lambda: self.catalog.restock(product, quantity))
        if ok:
            self.acked_restock[product] += quantity
        elif isinstance(result, DatabaseUnavailableError):
            self.unknown_restock[product] += quantity

    def transition(self) -> None:
        unknown = [pk for pk, status in self.status.items() if status is None]
        if unknown:  # find out what happened to the last one first
            pk = self.rng.choice(unknown)
            ok, result = self.tally.call("get_by_id", lambda: self.orders.get_by_id(pk))
            if ok:
                self.status[pk] = result.status
            return
        movable = [pk for pk, status in self.status.items() if status in NEXT]
        if not movable:
            return
        pk = self.rng.choice(movable)
        current = self.status[pk]
        assert current is not None
        choices = NEXT[current]
        to_status = choices[0] if len(choices) == 1 or self.rng.random() < 0.75 else choices[1]
        ok, result = self.tally.call(
            "transition" if to_status != "cancelled" else "cancel",
            lambda: self.orders.transition(pk, to_status),
        )
        if ok:
            self.status[pk] = to_status
            self.acked_transitions.append((pk, to_status))
        elif isinstance(result, DatabaseUnavailableError):
            self.status[pk] = None
            self.unknown_transitions += 1

    def configure(self) -> None:
        if self.rng.random() < 0.5:
            value = self.config_next
            self.config_next += 1
            ok, _ = self.tally.call("config.set", lambda: self.config.set(self.config_key, value))
            if ok:
                self.config_acked = value
            return
        ok, result = self.tally.call("config.get", lambda: self.config.get(self.config_key, 0))
        if ok and result < self.config_acked:
            self.config_stale.append((self.config_acked, result))

    def read(self) -> None:
        roll = self.rng.random()
        if roll < 0.4 and self.acked_orders:
            pk = self.rng.choice(list(self.acked_orders))
            self.tally.call("get_with_items", lambda: self.orders.get_with_items(pk))
        elif roll < 0.7:
            user = self.rng.choice(self.users)
            self.tally.call("history_for_user", lambda: self.orders.history_for_user(user))
        else:
            self.tally.call(
                "products.find_many",
                lambda: self.catalog.find_many({"sku": "term-001"}, order_by=["name"], limit=20),
            )


def test_random_backend_terminations_lose_no_acknowledged_write(
    cluster: ThrowawayCluster, faults_db: str
) -> None:
    data = seed(faults_db, tag="term", users=THREADS * 2, products=8, stock=1_000_000)
    workers = [Worker(i, faults_db, data.users[i::THREADS], data.products) for i in range(THREADS)]
    stop = threading.Event()
    kills: Counter[str] = Counter()

    def kill(stop: threading.Event) -> None:
        rng = random.Random(7)
        with cluster.connect() as killer:
            while not stop.wait(rng.uniform(*KILL_EVERY_S)):
                victims = killer.execute(
                    "SELECT pid, state FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                ).fetchall()
                if not victims:
                    kills["no backend to kill"] += 1
                    continue
                pid, state = rng.choice(victims)
                if scalar(killer, "SELECT pg_terminate_backend(%s)", [pid]):
                    kills[state or "unknown"] += 1

    started = time.monotonic()
    threads = run_workers(THREADS, lambda i, s: workers[i].run(s), stop=stop)
    killer_stop = threading.Event()
    killer = threading.Thread(target=kill, args=(killer_stop,), daemon=True)
    killer.start()
    try:
        with stopping(threads, stop):
            time.sleep(DURATION_S)
    finally:
        killer_stop.set()
        killer.join(10)
    elapsed = time.monotonic() - started

    # Settle the unknown transitions with a read, now that nothing is killed.
    for worker in workers:
        for pk, status in list(worker.status.items()):
            if status is None:
                worker.status[pk] = worker.orders.get_by_id(pk).status

    tally = Tally.merged([w.tally for w in workers])
    acked = {k: v for w in workers for k, v in w.acked_orders.items()}
    acked_keys = {k: v for w in workers for k, v in w.acked_keys.items()}
    acked_restock: Counter[Any] = sum((w.acked_restock for w in workers), Counter())
    unknown_restock: Counter[Any] = sum((w.unknown_restock for w in workers), Counter())
    with cluster.connect() as conn:
        lost = missing_or_altered_orders(conn, acked)
        by_key = dict(
            conn.execute(
                "SELECT idempotency_key, array_agg(id) FROM orders"
                " WHERE idempotency_key LIKE 'term-%%' GROUP BY 1"
            ).fetchall()
        )
        restocked = dict(
            conn.execute(
                "SELECT product_id, sum(delta) FROM inventory_movements"
                " WHERE reason = 'restock' AND product_id = ANY(%s) GROUP BY 1",
                [data.products],
            ).fetchall()
        )
        history = set(
            conn.execute(
                "SELECT order_id, to_status FROM order_status_history WHERE order_id = ANY(%s)",
                [list(acked)],
            ).fetchall()
        )
        final = dict(
            conn.execute("SELECT id, status FROM orders WHERE id = ANY(%s)", [list(acked)])
        )
        config = dict(
            conn.execute(
                "SELECT key, value FROM system_config WHERE key LIKE 'faults.termination.%%'"
            ).fetchall()
        )
        broken = broken_invariants(conn)

    key_problems = [
        f"{key}: {by_key.get(key)} != [{pk}]"
        for key, pk in acked_keys.items()
        if by_key.get(key) != [pk]
    ]
    restock_problems = [
        f"{p}: ledger {restocked.get(p, 0)} not in [{acked_restock[p]}, "
        f"{acked_restock[p] + unknown_restock[p]}]"
        for p in data.products
        if not acked_restock[p] <= restocked.get(p, 0) <= acked_restock[p] + unknown_restock[p]
    ]
    lost_transitions = [t for w in workers for t in w.acked_transitions if t not in history]
    wrong_status = [
        (pk, final.get(pk), status)
        for w in workers
        for pk, status in w.status.items()
        if final.get(pk) != status
    ]
    config_lost = [
        (w.config_key, config.get(w.config_key), w.config_acked)
        for w in workers
        if w.config_acked and (config.get(w.config_key) or 0) < w.config_acked
    ]
    unexpected_typed = {
        kind: n for kind, n in tally.typed.items() if not kind.endswith("DatabaseUnavailableError")
    }
    operations = sum(tally.ok.values()) + tally.typed_total + tally.raw_total
    report(
        "random pg_terminate_backend every 0.2-0.5 s, mixed workload, 4 threads",
        seconds=round(elapsed, 1),
        backends_terminated=dict(kills),
        operations=operations,
        operations_per_s=round(operations / elapsed, 1),
        acknowledged=dict(tally.ok),
        errors_typed=tally.typed_total,
        errors_raw=tally.raw_total,
        error_types=dict(tally.typed | tally.raw),
        longest_run_of_failed_calls_in_a_thread=tally.longest_failure_run,
        place_order_retried_with_same_key=sum(w.retries for w in workers),
        orders_committed_without_acknowledgement=len(by_key) - len(acked_keys),
        keys_abandoned=sum(len(w.abandoned_keys) for w in workers),
        restock_units_indeterminate=sum(unknown_restock.values()),
        transitions_indeterminate=sum(w.unknown_transitions for w in workers),
        lost_acknowledged=len(lost)
        + len(key_problems)
        + len(restock_problems)
        + len(lost_transitions)
        + len(wrong_status)
        + len(config_lost),
        stale_config_reads=sum(len(w.config_stale) for w in workers),
        p50_ms={k: round(percentile(v, 50) or 0, 1) for k, v in tally.latencies_ms.items()},
        p99_ms={k: round(percentile(v, 99) or 0, 1) for k, v in tally.latencies_ms.items()},
        broken_invariants=broken,
    )
    assert tally.raw_total == 0, (dict(tally.raw), tally.raw_examples)
    assert sum(kills.values()) >= DURATION_S / KILL_EVERY_S[1] / 2, kills
    assert tally.typed_total > 0, "no fault surfaced: were backends terminated?"
    assert unexpected_typed == {}
    # A broken connection is discarded: a thread's next call works, unless the killer
    # hit its new connection too. A connection kept after it broke fails every call.
    assert tally.longest_failure_run <= 5, tally.longest_failure_run
    assert lost == []
    assert key_problems == []
    assert restock_problems == []
    assert lost_transitions == []
    assert wrong_status == []
    assert config_lost == []
    assert [s for w in workers for s in w.config_stale] == []
    assert broken == {}
