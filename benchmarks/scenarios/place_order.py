"""Placing 5-line orders from 1, 2, 4 and 8 threads: place_order vs ORM code vs raw SQL.

Each variant runs for a fixed time per thread count (own connection per thread) and is
measured in orders per second. Afterwards the stock invariants are checked: no product
below zero, stock == sum(ledger) for every product, and every unit on an order left the
stock exactly once (nothing oversold). A hot-product probe then races single-unit orders
for a product with 10 units left: exactly 10 may succeed.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import psycopg
from django.db import DatabaseError, connections, transaction
from django.db.models import F
from django.utils import timezone

from benchmarks.context import BenchContext, repository
from benchmarks.harness import (
    NAIVE,
    RAW,
    REPOSITORY,
    QueryCounter,
    RawCounter,
    ScenarioResult,
    Target,
    VariantMismatchError,
    VariantResult,
)
from benchmarks.seed import HISTORY_EMAIL
from domain.models import (
    AuditLog,
    InventoryMovement,
    Order,
    OrderItem,
    OrderStatusHistory,
    Product,
    User,
)

LINES = 5
HOT_STOCK = 10
HOT_ATTEMPTS = 40

LOCK_SQL = (
    "SELECT id, sku, name, price, currency, stock_quantity, is_active, deleted_at IS NOT NULL"
    " FROM products WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE"
)
SELL_SQL = """
WITH sold AS (
    UPDATE products AS p SET stock_quantity = p.stock_quantity - v.qty, updated_at = now()
    FROM unnest(%s::uuid[], %s::int[]) AS v(id, qty)
    WHERE p.id = v.id AND p.stock_quantity >= v.qty
    RETURNING p.id, v.qty
)
INSERT INTO inventory_movements (product_id, delta, reason, order_id, created_at)
SELECT id, -qty, 'sale', %s, now() FROM sold RETURNING product_id
"""
ITEMS_SQL = """
INSERT INTO order_items
    (order_id, product_id, sku, product_name, unit_price, quantity, line_total, created_at)
SELECT %s, i.product_id, i.sku, i.name, i.price, i.qty, i.line_total, now()
FROM unnest(%s::uuid[], %s::varchar[], %s::varchar[], %s::numeric[], %s::int[], %s::numeric[])
    AS i(product_id, sku, name, price, qty, line_total)
"""
AUDIT_SQL = """
INSERT INTO audit_logs
    (occurred_at, created_at, actor_repr, request_id, action, entity_type, entity_id, changes)
SELECT now(), now(), '', '', a.action, a.entity_type, a.entity_id, a.changes
FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::jsonb[])
    AS a(action, entity_type, entity_id, changes)
"""
INVARIANTS_SQL = """
SELECT
  (SELECT count(*) FROM products WHERE stock_quantity < 0),
  (SELECT count(*) FROM products p WHERE stock_quantity <>
     (SELECT coalesce(sum(delta), 0) FROM inventory_movements m WHERE m.product_id = p.id)),
  (SELECT coalesce(sum(i.quantity), 0) FROM order_items i JOIN orders o ON o.id = i.order_id
     WHERE o.number NOT LIKE 'BENCH-%%'),
  (SELECT coalesce(-sum(delta), 0) FROM inventory_movements WHERE reason = 'sale')
"""


class InsufficientStock(Exception):
    """The naive and raw variants' own out-of-stock signal."""


def order_number() -> str:
    return f"ORD-B-{secrets.token_hex(6).upper()}"


def classify(exc: BaseException) -> str:
    """Name an error by kind: deadlock, serialization, insufficient stock or other."""
    name = type(exc).__name__
    seen: BaseException | None = exc
    while seen is not None:
        state = getattr(seen, "sqlstate", None)
        if state == "40P01":
            return "deadlock"
        if state == "40001":
            return "serialization"
        if state == "23514":
            return "check_violation"
        seen = seen.__cause__ or seen.__context__
    if "Insufficient" in name:
        return "insufficient_stock"
    if name == "TransactionConflictError":
        return "retries_exhausted"
    return name


# --- the three ways of placing an order ----------------------------------------------------
def make_naive(alias: str) -> Any:
    users = User.objects.db_manager(alias)
    products = Product.objects.db_manager(alias)

    def place(user_id: uuid.UUID, lines: list[tuple[uuid.UUID, int]]) -> uuid.UUID:
        # ORM code as a newcomer writes it: a query per line, F() updates in line order.
        with transaction.atomic(using=alias):
            user = users.get(pk=user_id)
            order = Order(
                number=order_number(), user=user, subtotal=0, total=0, placed_at=timezone.now()
            )
            order.save(using=alias)
            subtotal = Decimal("0.00")
            for product_id, quantity in lines:
                product = products.get(pk=product_id)
                if not product.is_active or product.stock_quantity < quantity:
                    raise InsufficientStock(product_id)
                products.filter(pk=product_id).update(stock_quantity=F("stock_quantity") - quantity)
                line_total = product.price * quantity
                OrderItem.objects.using(alias).create(
                    order=order,
                    product=product,
                    sku=product.sku,
                    product_name=product.name,
                    unit_price=product.price,
                    quantity=quantity,
                    line_total=line_total,
                )
                InventoryMovement.objects.using(alias).create(
                    product=product, delta=-quantity, reason="sale", order=order
                )
                AuditLog.objects.using(alias).create(
                    action="stock_adjusted",
                    entity_type="product",
                    entity_id=str(product_id),
                    changes={"delta": -quantity, "reason": "sale", "order": order.number},
                )
                subtotal += line_total
            order.subtotal = order.total = subtotal
            order.save(using=alias)
            OrderStatusHistory.objects.using(alias).create(
                order=order, to_status="pending", actor=user
            )
            AuditLog.objects.using(alias).create(
                action="created",
                entity_type="order",
                entity_id=str(order.pk),
                changes={"number": order.number, "total": str(subtotal)},
            )
        return order.pk

    return place


def make_raw(conn: Any) -> Any:
    def place(user_id: uuid.UUID, lines: list[tuple[uuid.UUID, int]]) -> uuid.UUID:
        lines = sorted(lines)
        ids = [line[0] for line in lines]
        quantities = [line[1] for line in lines]
        with conn.transaction():
            if (
                conn.execute(
                    "SELECT 1 FROM users WHERE id = %s AND deleted_at IS NULL AND is_active",
                    (user_id,),
                ).fetchone()
                is None
            ):
                raise LookupError(user_id)
            locked = {row[0]: row for row in conn.execute(LOCK_SQL, (ids,)).fetchall()}
            for product_id, quantity in lines:
                row = locked.get(product_id)
                if row is None or row[7] or not row[6] or row[5] < quantity:
                    raise InsufficientStock(product_id)
            totals = [(locked[pid][3] * qty).quantize(Decimal("0.01")) for pid, qty in lines]
            subtotal = sum(totals, Decimal("0.00"))
            number = order_number()
            order_id = conn.execute(
                "INSERT INTO orders (number, user_id, status, currency, subtotal, total, placed_at)"
                " VALUES (%s, %s, 'pending', %s, %s, %s, now()) RETURNING id",
                (number, user_id, locked[ids[0]][4], subtotal, subtotal),
            ).fetchone()[0]
            sold = conn.execute(SELL_SQL, (ids, quantities, order_id)).fetchall()
            if len(sold) != len(lines):
                raise InsufficientStock(ids)
            conn.execute(
                ITEMS_SQL,
                (
                    order_id,
                    ids,
                    [locked[p][1] for p in ids],
                    [locked[p][2] for p in ids],
                    [locked[p][3] for p in ids],
                    quantities,
                    totals,
                ),
            )
            conn.execute(
                "INSERT INTO order_status_history (order_id, to_status, actor_id, note, created_at)"
                " VALUES (%s, 'pending', %s, '', now())",
                (order_id, user_id),
            )
            entries = [
                (
                    "created",
                    "order",
                    str(order_id),
                    json.dumps({"number": number, "total": str(subtotal)}),
                )
            ]
            entries += [
                (
                    "stock_adjusted",
                    "product",
                    str(pid),
                    json.dumps({"delta": -qty, "reason": "sale", "order": number}),
                )
                for pid, qty in lines
            ]
            conn.execute(AUDIT_SQL, [list(col) for col in zip(*entries, strict=True)])
        return order_id

    return place


def make_place(ctx: BenchContext, kind: str, conn: Any = None) -> Any:
    """Return the `place(user_id, lines)` function of a variant (raw needs `conn`)."""
    if kind == RAW:
        return make_raw(conn)
    if kind == NAIVE:
        return make_naive(ctx.alias)
    place = make_repository(ctx.alias)
    if place is None:
        raise RuntimeError("OrderRepository is not available")
    return place


def make_repository(alias: str) -> Any | None:
    repo_cls = repository("orders", "OrderRepository")
    if repo_cls is None:
        return None
    repo = repo_cls(using=alias)
    return lambda user_id, lines: repo.place_order(user_id, lines).pk


# --- running -----------------------------------------------------------------------------------
def order_state(conn: psycopg.Connection, order_id: uuid.UUID) -> Any:
    """What an order wrote, without ids and numbers: comparable across variants."""
    order = conn.execute(
        "SELECT status, currency, subtotal, total FROM orders WHERE id = %s", (order_id,)
    ).fetchone()
    items = conn.execute(
        "SELECT product_id, sku, product_name, unit_price, quantity, line_total FROM order_items"
        " WHERE order_id = %s ORDER BY product_id",
        (order_id,),
    ).fetchall()
    ledger = conn.execute(
        "SELECT product_id, delta, reason FROM inventory_movements WHERE order_id = %s"
        " ORDER BY product_id",
        (order_id,),
    ).fetchall()
    history = conn.execute(
        "SELECT from_status, to_status FROM order_status_history WHERE order_id = %s", (order_id,)
    ).fetchall()
    audit = conn.execute(
        "SELECT action, entity_type, count(*) FROM audit_logs WHERE entity_id = %s"
        " OR (entity_type = 'product'"
        "     AND changes->>'order' = (SELECT number FROM orders WHERE id = %s))"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        (str(order_id), order_id),
    ).fetchall()
    return (order, items, ledger, history, audit)


def run_threads(
    ctx: BenchContext, kind: str, threads: int, seconds: float, carts: list[Any]
) -> dict[str, Any]:
    """Place orders from `threads` threads for `seconds`; return counts and latencies."""
    start_barrier = threading.Barrier(threads + 1)
    stop_at = [0.0]
    outcome: list[dict[str, Any]] = [{} for _ in range(threads)]

    def worker(index: int) -> None:
        conn = ctx.db.raw_connect() if kind == RAW else None
        place = make_place(ctx, kind, conn)
        rng = random.Random(index)
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        try:
            start_barrier.wait()
            while time.perf_counter() < stop_at[0]:
                user_id, lines = carts[rng.randrange(len(carts))]
                began = time.perf_counter_ns()
                try:
                    place(user_id, lines)
                    latencies.append((time.perf_counter_ns() - began) / 1e6)
                except (InsufficientStock, DatabaseError, psycopg.Error, Exception) as exc:
                    errors[classify(exc)] += 1
        finally:
            if conn is not None:
                conn.close()
            connections.close_all()
        outcome[index] = {"latencies": latencies, "errors": errors}

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    stop_at[0] = time.perf_counter() + 3600
    start_barrier.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies = [x for o in outcome for x in o["latencies"]]
    errors: Counter[str] = Counter()
    for o in outcome:
        errors.update(o["errors"])
    return {
        "orders": len(latencies),
        "elapsed": elapsed,
        "latencies": latencies,
        "errors": dict(errors),
    }


def check_invariants(ctx: BenchContext) -> dict[str, int]:
    with ctx.admin() as conn:
        negative, mismatched, ordered, sold = conn.execute(INVARIANTS_SQL).fetchone()  # type: ignore[misc]
    return {
        "negative_stock": negative,
        "ledger_mismatches": mismatched,
        "oversold_units": int(ordered) - int(sold),
    }


def hot_probe(
    ctx: BenchContext, kind: str, hot_id: uuid.UUID, users: list[uuid.UUID], threads: int
) -> dict[str, Any]:
    """Race single-unit orders for a product with HOT_STOCK left; count the winners."""
    with ctx.admin() as conn, conn.transaction():
        current = conn.execute(
            "SELECT stock_quantity FROM products WHERE id = %s", (hot_id,)
        ).fetchone()[0]  # type: ignore[index]
        if current != HOT_STOCK:
            conn.execute(
                "UPDATE products SET stock_quantity = %s WHERE id = %s", (HOT_STOCK, hot_id)
            )
            conn.execute(
                "INSERT INTO inventory_movements (product_id, delta, reason)"
                " VALUES (%s, %s, 'adjustment')",
                (hot_id, HOT_STOCK - current),
            )
    per_thread = HOT_ATTEMPTS // threads
    barrier = threading.Barrier(threads)
    won: list[int] = [0] * threads
    errors: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(index: int) -> None:
        conn = ctx.db.raw_connect() if kind == RAW else None
        place = make_place(ctx, kind, conn)
        try:
            barrier.wait()
            for attempt in range(per_thread):
                try:
                    place(users[(index * per_thread + attempt) % len(users)], [(hot_id, 1)])
                    won[index] += 1
                except Exception as exc:
                    with lock:
                        errors[classify(exc)] += 1
        finally:
            if conn is not None:
                conn.close()
            connections.close_all()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    with ctx.admin() as conn:
        stock = conn.execute(
            "SELECT stock_quantity FROM products WHERE id = %s", (hot_id,)
        ).fetchone()[0]  # type: ignore[index]
    return {
        "attempts": per_thread * threads,
        "succeeded": sum(won),
        "stock_left": stock,
        "errors": dict(errors),
    }


def run(ctx: BenchContext) -> list[ScenarioResult]:
    scale = ctx.scale
    with ctx.admin() as conn:
        product_ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM products WHERE deleted_at IS NULL AND is_active ORDER BY sku"
            )
        ]
        users = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM users WHERE email <> %s ORDER BY email", (HISTORY_EMAIL,)
            )
        ]
    hot_id, product_ids = product_ids[0], product_ids[1:]
    rng = random.Random(7)
    carts = [
        (rng.choice(users), [(pid, rng.randint(1, 3)) for pid in rng.sample(product_ids, LINES)])
        for _ in range(5000)
    ]
    kinds = [NAIVE, REPOSITORY, RAW]
    repo_available = make_repository(ctx.alias) is not None
    if not repo_available:
        kinds.remove(REPOSITORY)

    # Agreement: the same cart through each variant writes the same order, items,
    # ledger, history and audit rows (ids, numbers and times aside).
    states = {}
    queries: dict[str, float] = {}
    with ctx.admin() as conn:
        for kind in kinds:
            raw_conn = RawCounter(ctx.db.raw_connect()) if kind == RAW else None
            place = make_place(ctx, kind, raw_conn)
            counter = QueryCounter()
            with connections[ctx.alias].execute_wrapper(counter):
                if raw_conn is not None:
                    raw_conn.counting = True
                order_id = place(carts[0][0], carts[0][1])
            queries[kind] = counter.count + (raw_conn.count if raw_conn is not None else 0)
            if raw_conn is not None:
                raw_conn.conn.close()
            states[kind] = order_state(conn, order_id)
    for kind, state in states.items():
        if state != states[RAW]:
            raise VariantMismatchError(
                f"place_order: {kind} wrote {state!r}, raw wrote {states[RAW]!r}"
            )

    results = []
    for threads in scale.place_threads:
        scenario = ScenarioResult(
            f"place_order_{threads}t",
            f"place order, {threads} thread(s)",
            params={
                "threads": threads,
                "seconds": scale.place_seconds,
                "lines": LINES,
                "products": len(product_ids),
            },
        )
        for kind in kinds:
            ctx.status(f"place_order: {kind}, {threads} thread(s)")
            run_ = run_threads(ctx, kind, threads, scale.place_seconds, carts)
            invariants = check_invariants(ctx)
            vr = VariantResult(kind, samples_ms=run_["latencies"])
            vr.rate = run_["orders"] / run_["elapsed"]
            vr.extra = {"orders": run_["orders"], "errors": run_["errors"], **invariants}
            scenario.variants[kind] = vr
        for kind, vr in scenario.variants.items():
            vr.queries_per_op = queries.get(kind)
        rep = scenario.variants.get(REPOSITORY)
        if rep is not None:
            errors = rep.extra["errors"]
            scenario.targets += [
                Target(
                    "0 oversold, stock ≥ 0, stock == ledger",
                    float(
                        rep.extra["oversold_units"]
                        + rep.extra["negative_stock"]
                        + rep.extra["ledger_mismatches"]
                    ),
                    0,
                    "<=",
                ),
                Target(
                    "0 deadlocks or failed orders surfaced", float(sum(errors.values())), 0, "<="
                ),
            ]
            raw_rate = scenario.variants[RAW].rate
            if threads == 4:
                scenario.targets.append(
                    Target(
                        "orders/s ≥ 0.7x raw at 4 threads",
                        rep.rate / raw_rate if rep.rate and raw_rate else None,
                        0.7,
                        ">=",
                    )
                )
        results.append(scenario)

    probe = ScenarioResult(
        "place_order_hot", "hot product: 40 single-unit orders, 10 units, 4 threads"
    )
    for kind in kinds:
        ctx.status(f"place_order: hot-product probe, {kind}")
        outcome = hot_probe(ctx, kind, hot_id, users, 4)
        probe.variants[kind] = VariantResult(kind, extra=outcome)
        if kind == REPOSITORY:
            probe.targets.append(
                Target(
                    "exactly 10 of 40 succeed, 0 left",
                    float(outcome["succeeded"] - HOT_STOCK + outcome["stock_left"]),
                    0,
                    "<=",
                )
            )
    probe.extra["invariants_after"] = check_invariants(ctx)
    results.append(probe)
    return results
