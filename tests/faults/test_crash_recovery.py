"""A server crash (`pg_ctl -m immediate stop`) under a stream of orders, then a restart.

Four threads place orders in a loop through OrderRepository against the throwaway
server. The server is killed without a shutdown checkpoint, stays down for a moment and
is restarted (crash recovery replays the WAL). The same process goes on.

Checked: every order whose `place_order` returned is in the database with its items;
stock == sum of the ledger and stock ≥ 0, ledger, history and audit agree with the
orders; every error during the outage is a `repositories.errors` type; each thread
places an order again after the restart (time to first success measured).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from django.db import connections

from domain.models import Order
from repositories.errors import DatabaseUnavailableError
from repositories.orders import OrderRepository
from tests.faults.cluster import ThrowawayCluster, register_alias, unregister_alias
from tests.faults.conftest import ALIAS
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
BEFORE_CRASH_S = 2.0
OUTAGE_S = 1.5
AFTER_RECOVERY_S = 2.0
RECOVERY_LIMIT_S = 60.0


@pytest.fixture(params=["pool", "no pool"])
def alias(
    request: pytest.FixtureRequest, cluster: ThrowawayCluster, faults_db: str
) -> Iterator[str]:
    """The project's settings (Django's psycopg pool), or one connection per thread
    (no pool, CONN_MAX_AGE=0), both pointed at the throwaway server."""
    if request.param == "pool":
        yield faults_db
        return
    direct = register_alias(cluster, "faults_direct", CONN_MAX_AGE=0)
    options = connections.databases[direct]["OPTIONS"]
    connections.databases[direct]["OPTIONS"] = {k: v for k, v in options.items() if k != "pool"}
    try:
        yield direct
    finally:
        unregister_alias(direct)


def test_acknowledged_orders_survive_a_crash_and_the_process_recovers(
    cluster: ThrowawayCluster, alias: str
) -> None:
    mode = "pool" if alias == ALIAS else "no pool"
    tag = "crash" if mode == "pool" else "crashdirect"
    data = seed(alias, tag=tag, users=THREADS * 3, products=12, stock=1_000_000)
    repository = OrderRepository(using=alias)
    stop = threading.Event()
    tallies = [Tally() for _ in range(THREADS)]
    acknowledged: list[dict[Any, dict[Any, int]]] = [{} for _ in range(THREADS)]
    # (time.monotonic() of each success, of each error) per thread
    successes: list[list[float]] = [[] for _ in range(THREADS)]
    outage_errors: list[list[tuple[float, str]]] = [[] for _ in range(THREADS)]

    def work(index: int, stop: threading.Event) -> None:
        rng = random.Random(index)
        users = data.users[index::THREADS]
        while not stop.is_set():
            lines = [(p, rng.randint(1, 3)) for p in rng.sample(data.products, rng.randint(1, 3))]
            ok, result = tallies[index].call(
                "place_order",
                partial(repository.place_order, rng.choice(users), lines),
            )
            if ok:
                order: Order = result
                acknowledged[index][order.pk] = {
                    i.product_id: i.quantity for i in order.items.all()
                }
                successes[index].append(time.monotonic())
            else:
                outage_errors[index].append((time.monotonic(), type(result).__name__))
                time.sleep(0.02)  # a client backing off a little, not a hot loop

    threads = run_workers(THREADS, work, stop=stop)
    with stopping(threads, stop):
        time.sleep(BEFORE_CRASH_S)
        crashed_at = time.monotonic()
        cluster.crash()
        time.sleep(OUTAGE_S)
        restart_s = cluster.start()
        ready_at = time.monotonic()
        deadline = ready_at + RECOVERY_LIMIT_S
        while time.monotonic() < deadline and not all(
            any(t > ready_at for t in s) for s in successes
        ):
            time.sleep(0.05)
        time.sleep(AFTER_RECOVERY_S)

    tally = Tally.merged(tallies)
    first_after = [min((t for t in s if t > ready_at), default=None) for s in successes]
    recovered = [t - ready_at for t in first_after if t is not None]
    acked = {k: v for per_thread in acknowledged for k, v in per_thread.items()}
    during = [e for errors in outage_errors for e in errors if e[0] >= crashed_at]
    with cluster.connect() as conn:
        lost = missing_or_altered_orders(conn, acked)
        broken = broken_invariants(conn)
        stored = scalar(
            conn,
            "SELECT count(*) FROM orders o JOIN users u ON u.id = o.user_id WHERE u.email LIKE %s",
            [f"{tag}-%"],
        )
    report(
        f"crash (pg_ctl -m immediate stop) under 4 order-placing threads, {mode}",
        orders_acknowledged=len(acked),
        orders_in_database=stored,
        committed_but_unacknowledged=stored - len(acked),
        lost_acknowledged=len(lost),
        errors_typed=tally.typed_total,
        errors_raw=tally.raw_total,
        error_types=dict(tally.typed | tally.raw),
        outage_s=round(ready_at - crashed_at, 2),
        restart_with_wal_replay_s=round(restart_s, 2),
        first_success_after_ready_s=[round(r, 2) for r in recovered],
        threads_recovered=f"{len(recovered)}/{THREADS}",
        place_order_p50_ms=round(percentile(tally.latencies_ms.get("place_order", []), 50) or 0, 1),
        broken_invariants=broken,
    )
    assert tally.raw_total == 0, (dict(tally.raw), tally.raw_examples)
    assert during, "the crash produced no error at all: was it injected?"
    assert {kind for _, kind in during} <= {DatabaseUnavailableError.__name__}, during
    assert lost == []
    assert broken == {}
    assert len(recovered) == THREADS, f"threads that never placed an order again: {first_after}"
