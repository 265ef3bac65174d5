"""What the fault tests run and check: seeding, an operation history, invariants.

Every call a worker makes ends in one of three ways, recorded in its `Tally`:
acknowledged (the method returned), a typed error (a `RepositoryError`), or a raw error
(anything else: what SPEC §4 forbids). An acknowledged write must be in the database
after the fault; a write that failed with `DatabaseUnavailableError` is indeterminate
(it may or may not have committed) and is only counted.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from django.db import connections

from domain.models import User
from repositories.categories import CategoryRepository
from repositories.errors import RepositoryError
from repositories.products import ProductRepository


@dataclass
class Seeded:
    users: list[Any]
    products: list[uuid.UUID]
    extra: dict[str, Any] = field(default_factory=dict)


def seed(alias: str, *, tag: str, users: int, products: int, stock: int) -> Seeded:
    """Create users and products (with their `initial` ledger rows) on `alias`."""
    category = CategoryRepository(using=alias).create({"name": f"Faults {tag}", "slug": tag})
    created = ProductRepository(using=alias).create_many(
        [
            {
                "sku": f"{tag}-{n:03d}",
                "name": f"{tag} product {n}",
                "price": Decimal("4.99") + n,
                "currency": "EUR",
                "category": category,
                "stock_quantity": stock,
            }
            for n in range(products)
        ]
    )
    people = [
        User.objects.db_manager(alias).create_user(f"{tag}-{n}@faults.example").pk
        for n in range(users)
    ]
    connections[alias].close()
    return Seeded(users=people, products=[p.pk for p in created])


# --- the history of one worker ----------------------------------------------------------------
@dataclass
class Tally:
    """Outcomes of one worker's calls (merge several with `merged`)."""

    ok: Counter[str] = field(default_factory=Counter)
    typed: Counter[str] = field(default_factory=Counter)  # "operation: ErrorType"
    raw: Counter[str] = field(default_factory=Counter)
    raw_examples: list[str] = field(default_factory=list)
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    #: Longest run of consecutive failed calls: a broken connection that is not discarded
    #: makes every later call fail.
    longest_failure_run: int = 0
    _failure_run: int = 0

    def call(self, operation: str, func: Callable[[], Any]) -> tuple[bool, Any]:
        """Run `func`; return (True, result) or (False, the exception), recording which."""
        started = time.perf_counter()
        try:
            result = func()
        except RepositoryError as exc:
            self.typed[f"{operation}: {type(exc).__name__}"] += 1
            self._failed()
            return False, exc
        except Exception as exc:  # the point: anything else is a raw error
            self.raw[f"{operation}: {type(exc).__module__}.{type(exc).__name__}"] += 1
            if len(self.raw_examples) < 5:
                self.raw_examples.append("".join(traceback.format_exception(exc)[-6:]))
            self._failed()
            return False, exc
        self._failure_run = 0
        self.ok[operation] += 1
        self.latencies_ms.setdefault(operation, []).append((time.perf_counter() - started) * 1e3)
        return True, result

    def _failed(self) -> None:
        self._failure_run += 1
        self.longest_failure_run = max(self.longest_failure_run, self._failure_run)

    @staticmethod
    def merged(tallies: Sequence[Tally]) -> Tally:
        total = Tally()
        for tally in tallies:
            total.ok.update(tally.ok)
            total.typed.update(tally.typed)
            total.raw.update(tally.raw)
            total.raw_examples.extend(tally.raw_examples)
            total.longest_failure_run = max(total.longest_failure_run, tally.longest_failure_run)
            for operation, values in tally.latencies_ms.items():
                total.latencies_ms.setdefault(operation, []).extend(values)
        return total

    @property
    def typed_total(self) -> int:
        return sum(self.typed.values())

    @property
    def raw_total(self) -> int:
        return sum(self.raw.values())


def run_workers(
    count: int, work: Callable[[int, threading.Event], None], *, stop: threading.Event
) -> list[threading.Thread]:
    """Start `count` worker threads running `work(index, stop)`; each closes its
    connections (back to the pool) when it ends."""

    def body(index: int) -> None:
        try:
            work(index, stop)
        finally:
            for conn in connections.all(initialized_only=True):
                # A connection the fault broke has nothing to hand back.
                with contextlib.suppress(Exception):
                    conn.close()

    threads = [
        threading.Thread(target=body, args=(i,), name=f"faults-worker-{i}", daemon=True)
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    return threads


def join_all(threads: Sequence[threading.Thread], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"workers hung: {hung}"


@contextmanager
def stopping(threads: list[threading.Thread], stop: threading.Event) -> Iterator[None]:
    """Stop and join the workers on the way out, also when the test fails."""
    try:
        yield
    finally:
        stop.set()
        join_all(threads)


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# --- checks against the database, through an independent psycopg connection ------------------
def scalar(conn: psycopg.Connection[Any], sql: str, params: Sequence[Any] = ()) -> Any:
    """Return the first column of the first row of `sql`."""
    row = conn.execute(sql, params).fetchone()
    assert row is not None, sql
    return row[0]


def missing_or_altered_orders(
    conn: psycopg.Connection[Any], acknowledged: dict[Any, dict[Any, int]]
) -> list[str]:
    """Return the acknowledged orders that are missing or whose items differ.

    `acknowledged` maps order id → {product id: quantity} as place_order returned it.
    """
    if not acknowledged:
        return []
    rows = conn.execute(
        "SELECT o.id, i.product_id, i.quantity FROM orders o"
        " LEFT JOIN order_items i ON i.order_id = o.id WHERE o.id = ANY(%s)",
        [list(acknowledged)],
    ).fetchall()
    stored: dict[Any, dict[Any, int]] = {}
    for order_id, product_id, quantity in rows:
        items = stored.setdefault(order_id, {})
        if product_id is not None:
            items[product_id] = quantity
    problems = []
    for order_id, items in acknowledged.items():
        if order_id not in stored:
            problems.append(f"order {order_id} acknowledged but missing")
        elif stored[order_id] != items:
            problems.append(f"order {order_id}: items {stored[order_id]} != acknowledged {items}")
    return problems


INVARIANTS: dict[str, str] = {
    "stock below zero": "SELECT count(*) FROM products WHERE stock_quantity < 0",
    "stock != sum of ledger": """
        SELECT count(*) FROM products p
        WHERE p.stock_quantity
            <> coalesce((SELECT sum(m.delta) FROM inventory_movements m
                         WHERE m.product_id = p.id), 0)""",
    "order without items": """
        SELECT count(*) FROM orders o
        WHERE NOT EXISTS (SELECT FROM order_items i WHERE i.order_id = o.id)""",
    "items != sale movements": """
        SELECT count(*) FROM order_items i
        FULL JOIN (SELECT order_id, product_id, -sum(delta) AS qty FROM inventory_movements
                   WHERE reason = 'sale' GROUP BY 1, 2) s
            ON s.order_id = i.order_id AND s.product_id = i.product_id
        WHERE i.quantity IS DISTINCT FROM s.qty""",
    "cancellation movements != items of cancelled orders": """
        SELECT count(*) FROM
            (SELECT i.order_id, i.product_id, i.quantity FROM order_items i
             JOIN orders o ON o.id = i.order_id WHERE o.status = 'cancelled') c
        FULL JOIN (SELECT order_id, product_id, sum(delta) AS qty FROM inventory_movements
                   WHERE reason = 'cancellation' GROUP BY 1, 2) r
            ON r.order_id = c.order_id AND r.product_id = c.product_id
        WHERE c.quantity IS DISTINCT FROM r.qty""",
    "history rows != version": """
        SELECT count(*) FROM orders o
        WHERE o.version <> (SELECT count(*) FROM order_status_history h WHERE h.order_id = o.id)""",
    "status is not the end of its history": """
        SELECT count(*) FROM orders o
        WHERE NOT EXISTS (SELECT FROM order_status_history h
                          WHERE h.order_id = o.id AND h.to_status = o.status)
           OR EXISTS (SELECT FROM order_status_history h
                      WHERE h.order_id = o.id AND h.from_status = o.status)""",
    "order without exactly one 'created' audit row": """
        SELECT count(*) FROM orders o
        WHERE (SELECT count(*) FROM audit_logs a WHERE a.entity_type = 'order'
               AND a.action = 'created' AND a.entity_id = o.id::text) <> 1""",
    "'created' audit row without its order": """
        SELECT count(*) FROM audit_logs a
        WHERE a.entity_type = 'order' AND a.action = 'created'
          AND NOT EXISTS (SELECT FROM orders o WHERE o.id::text = a.entity_id)""",
    "status changes != 'status_changed' audit rows": """
        SELECT count(*) FROM orders o
        WHERE o.version - 1 <> (SELECT count(*) FROM audit_logs a WHERE a.entity_type = 'order'
                                AND a.action = 'status_changed' AND a.entity_id = o.id::text)""",
    "ledger movement without its audit row": """
        SELECT count(*) FROM
            (SELECT product_id, count(*) AS n FROM inventory_movements
             WHERE reason IN ('restock', 'adjustment') GROUP BY 1) m
        LEFT JOIN (SELECT entity_id, count(*) AS n FROM audit_logs
                   WHERE entity_type = 'product' AND action = 'stock_adjusted'
                     AND changes->>'reason' IN ('restock', 'adjustment') GROUP BY 1) a
            ON a.entity_id = m.product_id::text
        WHERE m.n IS DISTINCT FROM a.n""",
}


def broken_invariants(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Return {invariant: number of rows breaking it} for every invariant that fails."""
    broken = {}
    for name, sql in INVARIANTS.items():
        row = conn.execute(sql).fetchone()
        if row is not None and row[0]:
            broken[name] = int(row[0])
    return broken


def database_counts(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Row counts and total stock: equal before and after a write that must leave no trace."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items),"
        " (SELECT count(*) FROM inventory_movements), (SELECT count(*) FROM audit_logs),"
        " (SELECT count(*) FROM order_status_history),"
        " (SELECT coalesce(sum(stock_quantity), 0) FROM products),"
        " (SELECT coalesce(sum(version), 0) FROM orders),"
        " (SELECT count(*) FROM system_config)"
    ).fetchone()
    assert row is not None
    names = ("orders", "items", "movements", "audit", "history", "stock", "versions", "config")
    return dict(zip(names, row, strict=True))
