"""OrderRepository under real concurrency: threads on separate connections, real PostgreSQL."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum

from domain.models import InventoryMovement, Order, Product
from repositories.errors import InsufficientStockError, InvalidTransitionError, StaleObjectError
from repositories.orders import OrderRepository
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def run_concurrently(calls: Sequence[Callable[[], Any]], *, timeout: float = 60) -> list[Any]:
    """Run each call in its own thread, all released at once; return results or exceptions.

    Every thread closes its connection at the end (back to the pool), so 50 threads
    share a pool of 20 by waiting for a connection rather than failing.
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def work(index: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[index] = calls[index]()
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    return results


def ledger_sum(product: Product) -> int:
    return InventoryMovement.objects.filter(product=product).aggregate(s=Sum("delta"))["s"] or 0


def test_fifty_concurrent_orders_against_stock_of_ten_sell_exactly_ten():
    product = ProductFactory.with_stock(10)
    users = UserFactory.create_batch(50)
    repository = OrderRepository()
    results = run_concurrently(
        [partial(repository.place_order, u.pk, [(product.pk, 1)]) for u in users]
    )
    kinds = Counter(type(result).__name__ for result in results)
    assert kinds == {"Order": 10, "InsufficientStockError": 40}, kinds
    assert all(r.available == 0 for r in results if isinstance(r, InsufficientStockError))
    product.refresh_from_db()
    assert product.stock_quantity == 0 == ledger_sum(product)
    assert Order.objects.count() == 10
    assert InventoryMovement.objects.filter(reason="sale").count() == 10


def deadlocks_so_far() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def test_concurrent_orders_over_same_products_in_opposite_order_all_succeed(caplog):
    caplog.set_level(logging.INFO, logger="repositories.core.transactions")
    deadlocks_before = deadlocks_so_far()
    products = [ProductFactory.with_stock(100) for _ in range(4)]
    users = UserFactory.create_batch(24)
    repository = OrderRepository()
    forward = [(p.pk, 1) for p in products]
    backward = list(reversed(forward))
    calls = [
        partial(repository.place_order, u.pk, forward if i % 2 else backward)
        for i, u in enumerate(users)
    ]
    results = run_concurrently(calls)
    failures = [r for r in results if not isinstance(r, Order)]
    assert failures == []
    # Not even a retried deadlock: products are locked in primary-key order.
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]
    assert deadlocks_so_far() == deadlocks_before
    for product in products:
        product.refresh_from_db()
        assert product.stock_quantity == 100 - 24 == ledger_sum(product)


def test_racing_requests_with_same_idempotency_key_create_one_order():
    product = ProductFactory.with_stock(10)
    user = UserFactory.create()
    repository = OrderRepository()
    results = run_concurrently(
        [
            lambda: repository.place_order(user.pk, [(product.pk, 3)], idempotency_key="pay-42")
            for _ in range(6)
        ]
    )
    assert all(isinstance(r, Order) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert all([i.quantity for i in r.items.all()] == [3] for r in results)
    product.refresh_from_db()
    assert product.stock_quantity == 7 == ledger_sum(product)
    assert Order.objects.count() == 1


def test_concurrent_transitions_of_one_order_let_exactly_one_win():
    product = ProductFactory.with_stock(5)
    repository = OrderRepository()
    order = repository.place_order(UserFactory.create().pk, [(product.pk, 1)])
    results = run_concurrently([lambda: repository.transition(order.pk, "paid") for _ in range(8)])
    assert sum(isinstance(r, Order) for r in results) == 1
    assert sum(isinstance(r, InvalidTransitionError) for r in results) == 7
    order.refresh_from_db()
    assert (order.status, order.version) == ("paid", 2)


def test_concurrent_cancels_with_same_version_return_stock_once():
    product = ProductFactory.with_stock(5)
    repository = OrderRepository()
    order = repository.place_order(UserFactory.create().pk, [(product.pk, 3)])
    results = run_concurrently(
        [lambda: repository.cancel(order.pk, expected_version=1) for _ in range(6)]
    )
    assert sum(isinstance(r, Order) for r in results) == 1
    assert sum(isinstance(r, StaleObjectError) for r in results) == 5
    product.refresh_from_db()
    assert product.stock_quantity == 5 == ledger_sum(product)


def test_concurrent_orders_and_cancellations_keep_ledger_consistent():
    products = [ProductFactory.with_stock(30) for _ in range(3)]
    repository = OrderRepository()
    placed = [
        repository.place_order(UserFactory.create().pk, [(p.pk, 2) for p in products])
        for _ in range(5)
    ]
    users = UserFactory.create_batch(10)
    calls: list[Callable[[], Any]] = [partial(repository.cancel, o.pk) for o in placed]
    calls += [
        partial(repository.place_order, u.pk, [(p.pk, 1) for p in reversed(products)])
        for u in users
    ]
    results = run_concurrently(calls)
    assert all(isinstance(r, Order) for r in results), results
    for product in products:
        product.refresh_from_db()
        assert product.stock_quantity == 30 - 10 == ledger_sum(product)


def _raw_connection() -> Any:
    import psycopg

    params = connection.get_connection_params()
    for key in ("pool", "cursor_factory", "context"):
        params.pop(key, None)
    return psycopg.connect(**params)


def test_place_order_refuses_a_user_hard_deleted_while_it_waits_for_a_product_lock():
    import time

    from repositories.errors import NotFoundError

    product = ProductFactory.with_stock(5)
    user = UserFactory.create()
    with _raw_connection() as holder, _raw_connection() as deleter:
        holder.execute("SELECT 1 FROM products WHERE id = %s FOR UPDATE", [product.pk])
        outcome: list[Any] = []

        def place() -> None:
            try:
                outcome.append(OrderRepository().place_order(user.pk, [(product.pk, 1)]))
            except Exception as exc:
                outcome.append(exc)
            finally:
                connection.close()

        worker = threading.Thread(target=place)
        worker.start()
        for _ in range(100):  # until the order waits on the product lock
            waiting = deleter.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE %s",
                ["%place_order%"],
            ).fetchone()[0]
            deleter.rollback()
            if waiting:
                break
            time.sleep(0.05)
        assert waiting, "place_order never waited on the product lock"
        deleter.execute("DELETE FROM users WHERE id = %s", [user.pk])
        deleter.commit()
        holder.rollback()  # release the product
        worker.join(timeout=30)
    assert not worker.is_alive()
    (result,) = outcome
    assert isinstance(result, NotFoundError), result
    assert not Order.objects.exists()
    assert Product.objects.get(pk=product.pk).stock_quantity == 5
