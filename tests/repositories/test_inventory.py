"""ProductRepository stock: adjust_stock, restock, low_stock, stock_ledger and the ledger rule."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection
from django.db.models import Sum

from domain.models import AuditLog, InventoryMovement, Product
from repositories import ProductRepository
from repositories.errors import (
    InsufficientStockError,
    InvalidQueryError,
    NotFoundError,
    ValidationError,
)
from tests.factories import OrderFactory, ProductFactory


@pytest.fixture
def products() -> ProductRepository:
    return ProductRepository()


def ledger_sum(product: Product) -> int:
    return InventoryMovement.objects.filter(product=product).aggregate(s=Sum("delta"))["s"] or 0


def stock_of(product: Product) -> int:
    return Product.all_objects.filter(pk=product.pk).values_list("stock_quantity", flat=True)[0]


@pytest.mark.django_db
def test_adjust_stock_changes_stock_writes_ledger_and_audit(products, django_assert_num_queries):
    product = ProductFactory.with_stock(5)
    with django_assert_num_queries(5):  # savepoint, UPDATE, ledger INSERT, audit INSERT, release
        assert products.adjust_stock(product.pk, 3, reason="adjustment") == 8
    assert products.adjust_stock(str(product.pk), -6, reason="adjustment") == 2
    assert stock_of(product) == 2 == ledger_sum(product)
    movements = list(InventoryMovement.objects.filter(product=product).order_by("created_at", "id"))
    assert [(m.delta, m.reason) for m in movements] == [
        (5, "initial"),
        (3, "adjustment"),
        (-6, "adjustment"),
    ]
    entries = AuditLog.objects.filter(action="stock_adjusted", entity_id=str(product.pk))
    assert sorted(e.changes["delta"] for e in entries) == [-6, 3]
    first = next(e for e in entries if e.changes["delta"] == 3)
    assert first.changes["stock_quantity"] == {"old": 5, "new": 8}


@pytest.mark.django_db
def test_adjust_stock_does_not_bump_product_version(products):
    product = ProductFactory.with_stock(1)
    products.adjust_stock(product.pk, 1, reason="restock")
    assert Product.objects.get(pk=product.pk).version == product.version


@pytest.mark.django_db
def test_adjust_stock_raises_insufficient_stock_and_writes_nothing(products):
    product = ProductFactory.with_stock(2)
    with pytest.raises(InsufficientStockError) as info:
        products.adjust_stock(product.pk, -3, reason="adjustment")
    assert (info.value.product_id, info.value.requested, info.value.available) == (
        product.pk,
        3,
        2,
    )
    assert stock_of(product) == 2 == ledger_sum(product)
    assert not AuditLog.objects.filter(action="stock_adjusted").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("delta", [0, True, 1.5, "3", None])
def test_adjust_stock_raises_validation_error_on_bad_delta(products, delta):
    product = ProductFactory.with_stock(2)
    with pytest.raises(ValidationError) as info:
        products.adjust_stock(product.pk, delta, reason="adjustment")
    assert "delta" in info.value.errors


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["sale", "cancellation", "theft", "", None])
def test_adjust_stock_raises_validation_error_on_bad_reason(products, reason):
    product = ProductFactory.with_stock(2)
    with pytest.raises(ValidationError) as info:
        products.adjust_stock(product.pk, 1, reason=reason)
    assert "reason" in info.value.errors


@pytest.mark.django_db
def test_adjust_stock_raises_not_found_for_unknown_deleted_or_malformed_product(products):
    deleted = ProductFactory.with_stock(3, deleted=True)
    for key in (uuid.uuid4(), deleted.pk, "nope", 7):
        with pytest.raises(NotFoundError):
            products.adjust_stock(key, 1, reason="adjustment")
    assert stock_of(deleted) == 3


@pytest.mark.django_db
def test_restock_adds_units_with_restock_reason(products):
    product = ProductFactory.with_stock(0)
    assert products.restock(product.pk, 4) == 4
    assert InventoryMovement.objects.get(product=product).reason == "restock"
    assert stock_of(product) == ledger_sum(product) == 4


@pytest.mark.django_db
@pytest.mark.parametrize("quantity", [0, -2, True, 2.0])
def test_restock_raises_validation_error_on_bad_quantity(products, quantity):
    product = ProductFactory.with_stock(1)
    with pytest.raises(ValidationError):
        products.restock(product.pk, quantity)


@pytest.mark.django_db
def test_low_stock_lists_live_active_products_lowest_first(products, django_assert_num_queries):
    two = ProductFactory.with_stock(2)
    zero = ProductFactory.with_stock(0)
    ProductFactory.with_stock(10)
    ProductFactory.with_stock(1, is_active=False)
    ProductFactory.with_stock(1, deleted=True)
    with django_assert_num_queries(1):
        found = products.low_stock(2)
        [p.category.name for p in found]
    assert [p.pk for p in found] == [zero.pk, two.pk]
    assert [p.pk for p in products.low_stock(2, limit=1)] == [zero.pk]


@pytest.mark.django_db
def test_low_stock_query_count_is_constant_when_rows_grow(products, django_assert_num_queries):
    ProductFactory.create_batch(25)
    with django_assert_num_queries(1):
        found = products.low_stock(0)
        [p.category.name for p in found]
    assert len(found) == 25


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("threshold", "limit"), [(-1, 10), ("2", 10), (True, 10), (1, 0), (1, "9")]
)
def test_low_stock_raises_invalid_query_on_bad_arguments(products, threshold, limit):
    with pytest.raises(InvalidQueryError):
        products.low_stock(threshold, limit=limit)


@pytest.mark.django_db
def test_stock_ledger_lists_movements_oldest_first_with_orders(products, django_assert_num_queries):
    product = ProductFactory.with_stock(5)
    order = OrderFactory.create()
    InventoryMovement.objects.create(product=product, delta=-1, reason="sale", order=order)
    products.adjust_stock(product.pk, 2, reason="restock")
    with django_assert_num_queries(1):
        ledger = products.stock_ledger(product.pk)
        numbers = [m.order.number if m.order else None for m in ledger]
    assert [m.delta for m in ledger] == [5, -1, 2]
    assert numbers == [None, order.number, None]


@pytest.mark.django_db
def test_stock_ledger_query_count_is_constant_when_movements_grow(
    products, django_assert_num_queries
):
    product = ProductFactory.with_stock(1)
    orders = OrderFactory.create_batch(15)
    InventoryMovement.objects.bulk_create(
        [
            InventoryMovement(product=product, delta=1, reason="cancellation", order=o)
            for o in orders
        ]
    )
    with django_assert_num_queries(1):
        ledger = products.stock_ledger(product.pk)
        [m.order.number for m in ledger if m.order]
    assert len(ledger) == 16


@pytest.mark.django_db
def test_stock_ledger_of_deleted_product_is_still_readable(products):
    product = ProductFactory.with_stock(4, deleted=True)
    assert [m.delta for m in products.stock_ledger(product.pk)] == [4]


@pytest.mark.django_db
def test_stock_ledger_raises_not_found_for_unknown_product(products):
    empty = ProductFactory.create()
    assert products.stock_ledger(empty.pk) == []
    for key in (uuid.uuid4(), "nope"):
        with pytest.raises(NotFoundError):
            products.stock_ledger(key)


@pytest.mark.django_db(transaction=True)
def test_concurrent_adjust_stock_never_goes_below_zero(products):
    product = ProductFactory.with_stock(10)
    threads = 16
    barrier = threading.Barrier(threads)
    outcomes: list[str] = []
    lock = threading.Lock()

    def take_one_or_two(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            try:
                ProductRepository().adjust_stock(product.pk, -(1 + index % 2), reason="adjustment")
                result = "ok"
            except InsufficientStockError:
                result = "short"
            with lock:
                outcomes.append(result)
        finally:
            connection.close()

    workers = [threading.Thread(target=take_one_or_two, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert len(outcomes) == threads
    final = stock_of(product)
    assert final >= 0
    assert final == ledger_sum(product)
    taken = 10 - final
    sold = sum(
        -m.delta for m in InventoryMovement.objects.filter(product=product, reason="adjustment")
    )
    assert taken == sold
    assert outcomes.count("ok") == InventoryMovement.objects.filter(reason="adjustment").count()
    assert final <= 1  # 16 takers of 1-2 units wanted 24 from 10: only a 1 can be left over


@pytest.mark.django_db
def test_generic_writes_cannot_change_stock_outside_the_ledger(products):
    product = ProductFactory.with_stock(3)
    with pytest.raises(ValidationError):
        products.update(product.pk, {"stock_quantity": 99})
    with pytest.raises(ValidationError):
        products.update_many({"sku": product.sku}, {"stock_quantity": 99})
    updated = products.update(product.pk, {"name": "Renamed"})
    assert (updated.name, updated.stock_quantity) == ("Renamed", 3)
    assert stock_of(product) == 3 == ledger_sum(product)
    # Initial stock is set on creation, together with its "initial" movement.
    created = products.create({"sku": "NEW-1", "name": "New", "price": "1.00", "stock_quantity": 5})
    assert stock_of(created) == 5 == ledger_sum(created)
