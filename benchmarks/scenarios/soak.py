"""A soak: the repositories under a mixed workload from N threads for a while.

Each thread loops over a weighted mix of repository calls on the `orders` data set:
place_order (every order with an idempotency key; some calls replay an earlier key),
restock, transition/cancel of the thread's own orders, order and product reads,
configuration get/set. Measured per operation: operations per second, p50/p95/p99.
Checked at the end: no error surfaced, stock ≥ 0 and == sum of the ledger, the soak's
orders match their sale and cancellation movements, every acknowledged order is stored
once with its items, a replayed key returned the first order, a configuration value
read back was never older than the thread's last write; and throughput did not sag
(last third of the run vs the first, judged on runs of 30 s or more).

Duration and threads come from the scale (`soak_seconds`, `soak_threads`), or from
`manage.py bench --soak-seconds/--soak-threads`.
"""

from __future__ import annotations

import random
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

from benchmarks.context import BenchContext, repository
from benchmarks.harness import REPOSITORY, ScenarioResult, Target, VariantResult, percentile
from benchmarks.seed import HISTORY_EMAIL

#: Operation → weight in the mix.
MIX: dict[str, int] = {
    "place_order": 30,
    "place_order (replayed key)": 3,
    "restock": 7,
    "transition": 10,
    "cancel": 4,
    "get_with_items": 14,
    "history_for_user": 12,
    "products.find_many": 10,
    "config.get": 7,
    "config.set": 3,
}
NEXT_STATUS = {"pending": "paid", "paid": "shipped", "shipped": "delivered"}
#: Throughput of the last third over the first is judged only on runs this long.
STABILITY_MIN_SECONDS = 30.0
KEY_PREFIX = "soak-"

INVARIANTS_SQL = f"""
SELECT
  (SELECT count(*) FROM products WHERE stock_quantity < 0),
  (SELECT count(*) FROM products p WHERE stock_quantity <>
     (SELECT coalesce(sum(delta), 0) FROM inventory_movements m WHERE m.product_id = p.id)),
  (SELECT count(*) FROM
     (SELECT i.order_id, i.product_id, i.quantity FROM order_items i
      JOIN orders o ON o.id = i.order_id WHERE o.idempotency_key LIKE '{KEY_PREFIX}%%') i
   FULL JOIN
     (SELECT m.order_id, m.product_id, -sum(m.delta) AS qty FROM inventory_movements m
      JOIN orders o ON o.id = m.order_id
      WHERE m.reason = 'sale' AND o.idempotency_key LIKE '{KEY_PREFIX}%%' GROUP BY 1, 2) s
     ON s.order_id = i.order_id AND s.product_id = i.product_id
   WHERE i.quantity IS DISTINCT FROM s.qty),
  (SELECT count(*) FROM
     (SELECT i.order_id, i.product_id, i.quantity FROM order_items i
      JOIN orders o ON o.id = i.order_id
      WHERE o.status = 'cancelled' AND o.idempotency_key LIKE '{KEY_PREFIX}%%') c
   FULL JOIN
     (SELECT m.order_id, m.product_id, sum(m.delta) AS qty FROM inventory_movements m
      JOIN orders o ON o.id = m.order_id
      WHERE m.reason = 'cancellation' AND o.idempotency_key LIKE '{KEY_PREFIX}%%'
      GROUP BY 1, 2) r
     ON r.order_id = c.order_id AND r.product_id = c.product_id
   WHERE c.quantity IS DISTINCT FROM r.qty)
"""


@dataclass
class _Thread:
    """One soak thread: its repositories, what it was told, and its timings."""

    index: int
    rng: random.Random
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (t, ms)
    errors: Counter[str] = field(default_factory=Counter)
    orders: dict[Any, str] = field(default_factory=dict)  # order id → last known status
    acked: dict[str, tuple[Any, dict[Any, int]]] = field(default_factory=dict)  # key → order
    replay_mismatches: int = 0
    config_written: int = 0
    config_stale_reads: int = 0
    placed: int = 0


def run(ctx: BenchContext) -> ScenarioResult:
    scale = ctx.scale
    seconds, threads = scale.soak_seconds, scale.soak_threads
    result = ScenarioResult(
        "soak",
        f"soak: mixed workload, {threads} threads, {seconds:g} s",
        params={"threads": threads, "seconds": seconds, "mix": MIX},
    )
    order_repo = repository("orders", "OrderRepository")(using=ctx.alias)
    product_repo = repository("products", "ProductRepository")(using=ctx.alias)
    config_repo = repository("configuration", "SystemConfigRepository")(using=ctx.alias)
    with ctx.admin() as conn:
        products = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM products WHERE deleted_at IS NULL AND is_active"
                " AND stock_quantity > 1000 ORDER BY sku"
            )
        ]
        users = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM users WHERE deleted_at IS NULL AND is_active AND email <> %s"
                " ORDER BY email",
                (HISTORY_EMAIL,),
            )
        ]
        seeded_orders = [r[0] for r in conn.execute("SELECT id FROM orders LIMIT 500")]
        run_id = int(time.time())
    skus = [f"O{n:06d}" for n in range(1, 50)]
    operations = list(MIX)
    weights = [MIX[name] for name in operations]
    barrier = threading.Barrier(threads + 1)
    stop_at = [0.0]
    states = [_Thread(i, random.Random(100 + i)) for i in range(threads)]

    order_user: dict[Any, Any] = {}

    def place(state: _Thread) -> str:
        state.placed += 1
        key = f"{KEY_PREFIX}{run_id}-{state.index}-{state.placed}"
        user = state.rng.choice(users)
        lines = [(p, state.rng.randint(1, 3)) for p in state.rng.sample(products, 3)]
        order = order_repo.place_order(user, lines, idempotency_key=key)
        state.acked[key] = (order.pk, {i.product_id: i.quantity for i in order.items.all()})
        state.orders[order.pk] = order.status
        order_user[order.pk] = user
        return "place_order"

    def replay(state: _Thread) -> str:
        if not state.acked:
            return place(state)
        key = state.rng.choice(list(state.acked))
        pk, _ = state.acked[key]
        # The user and lines do not matter for a replay: the key finds the order.
        order = order_repo.place_order(order_user[pk], [(products[0], 1)], idempotency_key=key)
        state.replay_mismatches += order.pk != pk
        return "place_order (replayed key)"

    def move(state: _Thread, cancel: bool) -> str:
        movable = [
            pk
            for pk, status in state.orders.items()
            if (status in ("pending", "paid") if cancel else status in NEXT_STATUS)
        ]
        if not movable:
            return place(state)
        pk = state.rng.choice(movable)
        to_status = "cancelled" if cancel else NEXT_STATUS[state.orders[pk]]
        state.orders[pk] = order_repo.transition(pk, to_status).status
        return "cancel" if cancel else "transition"

    def config_get(state: _Thread) -> str:
        value = config_repo.get(f"soak.{run_id}.{state.index}", 0)
        state.config_stale_reads += value < state.config_written
        return "config.get"

    def config_set(state: _Thread) -> str:
        state.config_written += 1
        config_repo.set(f"soak.{run_id}.{state.index}", state.config_written)
        return "config.set"

    def call_as(name: str, call: Callable[[], Any]) -> str:
        call()
        return name

    # Each call returns the operation it did (a transition with no order to move places
    # one instead), so that its time is counted under the right name.
    calls: dict[str, Callable[[_Thread], str]] = {
        "place_order": place,
        "place_order (replayed key)": replay,
        "restock": lambda s: call_as(
            "restock", lambda: product_repo.restock(s.rng.choice(products), s.rng.randint(1, 5))
        ),
        "transition": lambda s: move(s, cancel=False),
        "cancel": lambda s: move(s, cancel=True),
        "get_with_items": lambda s: call_as(
            "get_with_items",
            lambda: order_repo.get_with_items(s.rng.choice(list(s.orders) or seeded_orders)),
        ),
        "history_for_user": lambda s: call_as(
            "history_for_user", lambda: order_repo.history_for_user(s.rng.choice(users))
        ),
        "products.find_many": lambda s: call_as(
            "products.find_many",
            lambda: product_repo.find_many(
                {"sku": s.rng.choice(skus)}, order_by=["name"], limit=20
            ),
        ),
        "config.get": config_get,
        "config.set": config_set,
    }

    def worker(state: _Thread) -> None:
        try:
            barrier.wait()
            while (now := time.perf_counter()) < stop_at[0]:
                name = state.rng.choices(operations, weights)[0]
                began = time.perf_counter_ns()
                try:
                    done = calls[name](state)
                except Exception as exc:  # counted and shown; the target wants none
                    state.errors[f"{name}: {type(exc).__name__}"] += 1
                    continue
                elapsed_ms = (time.perf_counter_ns() - began) / 1e6
                state.samples.setdefault(done, []).append((now, elapsed_ms))
        finally:
            connections.close_all()

    ctx.status(f"soak: {threads} threads, {seconds:g} s")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pool = [threading.Thread(target=worker, args=(s,), daemon=True) for s in states]
    for thread in pool:
        thread.start()
    stop_at[0] = time.perf_counter() + 3600
    barrier.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    # Per operation: ops/s, p50/p95 (table), p99 (extra).
    timeline: list[float] = []
    for name in operations:
        samples = [s for state in states for s in state.samples.get(name, [])]
        timeline += [t for t, _ in samples]
        latencies = [ms for _, ms in samples]
        vr = VariantResult(name, samples_ms=latencies)
        vr.rate = len(latencies) / elapsed if elapsed else None
        vr.extra = {
            "ops": len(latencies),
            "p99_ms": round(percentile(latencies, 99), 3) if latencies else None,
        }
        result.variants[name] = vr
    total_ops = len(timeline)
    thirds = [0, 0, 0]
    for t in timeline:
        thirds[min(2, int((t - began) / (elapsed / 3)))] += 1
    errors: Counter[str] = Counter()
    for state in states:
        errors.update(state.errors)

    acked = {key: order for state in states for key, order in state.acked.items()}
    with ctx.admin() as conn:
        negative, ledger, sales, cancellations = conn.execute(INVARIANTS_SQL).fetchone()  # type: ignore[misc]
        stored: dict[str, tuple[Any, dict[Any, int]]] = {}
        for key, order_id, product_id, quantity in conn.execute(
            "SELECT o.idempotency_key, o.id, i.product_id, i.quantity FROM orders o"
            " JOIN order_items i ON i.order_id = o.id WHERE o.idempotency_key LIKE %s",
            (f"{KEY_PREFIX}{run_id}-%",),
        ):
            stored.setdefault(key, (order_id, {}))[1][product_id] = quantity
    missing = sum(1 for key, order in acked.items() if stored.get(key) != order)
    unacknowledged = len(set(stored) - set(acked))
    stale = sum(state.config_stale_reads for state in states)
    replays = sum(state.replay_mismatches for state in states)
    broken = int(negative) + int(ledger) + int(sales) + int(cancellations)
    result.extra = {
        "total_ops": total_ops,
        "ops_per_s": round(total_ops / elapsed, 1) if elapsed else None,
        "ops_per_third": thirds,
        "errors": dict(errors),
        "orders_acknowledged": len(acked),
        "orders_missing_or_altered": missing,
        "orders_stored_unacknowledged": unacknowledged,
        "replayed_keys_returning_another_order": replays,
        "stale_config_reads": stale,
        "invariants": {
            "negative_stock": negative,
            "ledger_mismatches": ledger,
            "sale_movement_mismatches": sales,
            "cancellation_mismatches": cancellations,
        },
        "max_rss_mb": {"before": rss_before // 1024, "after": rss_after // 1024},
    }
    result.notes.append(
        "p50/p99 ms: "
        + ", ".join(
            f"{name} {percentile(lat, 50):.1f}/{percentile(lat, 99):.1f}"
            for name in operations
            if (lat := [ms for state in states for _, ms in state.samples.get(name, [])])
        )
    )
    result.notes.append(
        f"{total_ops} operations, {total_ops / elapsed:.1f}/s; ops per third {thirds}; "
        f"errors {dict(errors) or 0}"
    )
    result.variants[REPOSITORY] = VariantResult(
        REPOSITORY,
        samples_ms=[ms for state in states for s in state.samples.values() for _, ms in s],
        rate=total_ops / elapsed if elapsed else None,
        extra={"ops": total_ops, "label": "all operations"},
    )
    result.targets += [
        Target(
            "stock ≥ 0, stock == ledger, sale/cancellation movements == items",
            float(broken),
            0,
            "<=",
        ),
        Target(
            "acknowledged orders stored once with their items; replayed keys same order",
            float(missing + unacknowledged + replays),
            0,
            "<=",
        ),
        Target("no configuration read older than the thread's write", float(stale), 0, "<="),
        Target("0 errors surfaced", float(sum(errors.values())), 0, "<="),
        Target(
            "throughput of the last third ≥ 0.8x the first (runs ≥ 30 s)",
            thirds[2] / thirds[0] if thirds[0] and seconds >= STABILITY_MIN_SECONDS else None,
            0.8,
            ">=",
        ),
    ]
    return result
