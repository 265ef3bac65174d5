"""OrderRepository: placing orders, idempotency, status transitions, cancellation, history."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from domain.models import (
    AuditLog,
    InventoryMovement,
    Order,
    OrderStatusHistory,
    Product,
)
from repositories.errors import (
    ConflictError,
    InsufficientStockError,
    InvalidQueryError,
    InvalidTransitionError,
    NotFoundError,
    StaleObjectError,
    ValidationError,
)
from repositories.orders import MAX_ORDER_LINES, OrderRepository, new_order_number
from tests.factories import OrderFactory, OrderItemFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def orders() -> OrderRepository:
    return OrderRepository()


def ledger_sum(product: Product) -> int:
    return InventoryMovement.objects.filter(product=product).aggregate(s=Sum("delta"))["s"] or 0


def stock_of(product: Product) -> int:
    return Product.all_objects.filter(pk=product.pk).values_list("stock_quantity", flat=True)[0]


# --- place_order ---------------------------------------------------------------------------


def test_place_order_snapshots_items_and_computes_totals(orders, django_assert_num_queries):
    user = UserFactory.create()
    shoes = ProductFactory.with_stock(5, name="Running shoes", sku="RUN-1", price=Decimal("59.90"))
    socks = ProductFactory.with_stock(9, name="Socks", sku="SOX-1", price=Decimal("4.35"))
    order = orders.place_order(user.pk, [(socks.pk, 3), (str(shoes.pk), 1)])
    assert isinstance(order, Order)
    assert re.fullmatch(r"ORD-\d{8}-[A-Z2-7]{8}", order.number)
    assert order.status == "pending"
    assert order.user_id == user.pk
    assert order.currency == "EUR"
    assert order.subtotal == order.total == Decimal("72.95")
    with django_assert_num_queries(0):  # items and products came loaded
        lines = [
            (i.sku, i.product_name, i.unit_price, i.quantity, i.line_total)
            for i in order.items.all()
        ]
        assert all(i.product.pk for i in order.items.all())
    assert lines == [
        ("RUN-1", "Running shoes", Decimal("59.90"), 1, Decimal("59.90")),
        ("SOX-1", "Socks", Decimal("4.35"), 3, Decimal("13.05")),
    ]
    assert stock_of(shoes) == 4 == ledger_sum(shoes)
    assert stock_of(socks) == 6 == ledger_sum(socks)
    sales = InventoryMovement.objects.filter(order=order).order_by("delta")
    assert [(m.product_id, m.delta, m.reason) for m in sales] == [
        (socks.pk, -3, "sale"),
        (shoes.pk, -1, "sale"),
    ]
    history = OrderStatusHistory.objects.get(order=order)
    assert (history.from_status, history.to_status, history.actor_id) == (None, "pending", user.pk)
    actions = sorted(AuditLog.objects.values_list("action", "entity_type"))
    assert actions == [
        ("created", "order"),
        ("stock_adjusted", "product"),
        ("stock_adjusted", "product"),
    ]


def test_place_order_keeps_snapshot_when_product_changes_later(orders):
    user = UserFactory.create()
    product = ProductFactory.with_stock(3, name="Kettle", price=Decimal("20.00"))
    order = orders.place_order(user.pk, [(product.pk, 1)])
    Product.objects.filter(pk=product.pk).update(name="Kettle v2", price=Decimal("25.00"))
    item = orders.get_with_items(order.pk).items.get()
    assert (item.product_name, item.unit_price) == ("Kettle", Decimal("20.00"))
    assert item.product.name == "Kettle v2"


def _count_queries(orders, django_assert_max_num_queries, lines_count: int) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user = UserFactory.create()
    items = [(ProductFactory.with_stock(5).pk, 2) for _ in range(lines_count)]
    with CaptureQueriesContext(connection) as captured:
        order = orders.place_order(user.pk, items)
    assert order.items.count() == lines_count
    return len(captured.captured_queries)


def test_place_order_query_count_does_not_grow_with_lines(orders, django_assert_max_num_queries):
    one = _count_queries(orders, django_assert_max_num_queries, 1)
    ten = _count_queries(orders, django_assert_max_num_queries, 10)
    forty = _count_queries(orders, django_assert_max_num_queries, 40)
    assert one == ten == forty
    assert one <= 12


def test_place_order_refuses_insufficient_stock_and_writes_nothing(orders):
    user = UserFactory.create()
    plenty = ProductFactory.with_stock(10)
    short = ProductFactory.with_stock(1)
    with pytest.raises(InsufficientStockError) as info:
        orders.place_order(user.pk, [(plenty.pk, 2), (short.pk, 2)])
    assert (info.value.product_id, info.value.requested, info.value.available) == (short.pk, 2, 1)
    assert stock_of(plenty) == 10 and stock_of(short) == 1
    assert not Order.objects.exists()
    assert not AuditLog.objects.exists()


def test_place_order_refuses_deleted_and_unknown_products_naming_them(orders):
    user = UserFactory.create()
    live = ProductFactory.with_stock(5)
    deleted = ProductFactory.with_stock(5, deleted=True)
    unknown = uuid.uuid4()
    for bad in (deleted.pk, unknown):
        with pytest.raises(NotFoundError) as info:
            orders.place_order(user.pk, [(live.pk, 1), (bad, 1)])
        assert info.value.entity == "Product"
        assert info.value.key == bad
    assert stock_of(live) == 5 and not Order.objects.exists()


def test_place_order_refuses_inactive_product(orders):
    user = UserFactory.create()
    inactive = ProductFactory.with_stock(5, is_active=False, sku="OFF-1")
    with pytest.raises(ValidationError) as info:
        orders.place_order(user.pk, [(inactive.pk, 1)])
    assert "OFF-1" in info.value.errors["items"][0]


def test_place_order_refuses_mixed_currencies(orders):
    user = UserFactory.create()
    eur = ProductFactory.with_stock(5)
    usd = ProductFactory.with_stock(5, currency="USD")
    with pytest.raises(ValidationError):
        orders.place_order(user.pk, [(eur.pk, 1), (usd.pk, 1)])
    assert stock_of(eur) == 5


def test_place_order_refuses_unknown_deleted_inactive_or_malformed_user(orders):
    product = ProductFactory.with_stock(5)
    deleted = UserFactory.create(deleted=True)
    inactive = UserFactory.create(is_active=False)
    for user_id in (uuid.uuid4(), deleted.pk, inactive.pk, "nope"):
        with pytest.raises(NotFoundError) as info:
            orders.place_order(user_id, [(product.pk, 1)])
        assert info.value.entity == "User"
    assert stock_of(product) == 5


@pytest.mark.parametrize(
    "items",
    [
        [],
        (),
        None,
        "abc",
        [(None, 1)],
        [("not-a-uuid", 1)],
        [(uuid.UUID(int=1), 0)],
        [(uuid.UUID(int=1), -3)],
        [(uuid.UUID(int=1), True)],
        [(uuid.UUID(int=1), 1.0)],
        [(uuid.UUID(int=1), "2")],
        [(uuid.UUID(int=1), 10_001)],
        [(uuid.UUID(int=1),)],
        [uuid.UUID(int=1)],
        [(uuid.UUID(int=1), 1), (uuid.UUID(int=1), 2)],
        [(uuid.UUID(int=1), 1), (str(uuid.UUID(int=1)), 2)],
        [(uuid.UUID(int=i + 1), 1) for i in range(MAX_ORDER_LINES + 1)],
    ],
)
def test_place_order_raises_validation_error_on_bad_items(orders, items):
    user = UserFactory.create()
    with pytest.raises(ValidationError) as info:
        orders.place_order(user.pk, items)
    assert "items" in info.value.errors


@pytest.mark.parametrize("key", ["", "   ", "x" * 129, 12, b"bytes"])
def test_place_order_raises_validation_error_on_bad_idempotency_key(orders, key):
    product = ProductFactory.with_stock(1)
    with pytest.raises(ValidationError):
        orders.place_order(UserFactory.create().pk, [(product.pk, 1)], idempotency_key=key)


def test_place_order_with_same_idempotency_key_returns_first_order(
    orders, django_assert_num_queries
):
    user = UserFactory.create()
    product = ProductFactory.with_stock(5)
    first = orders.place_order(user.pk, [(product.pk, 2)], idempotency_key="checkout-1")
    with django_assert_num_queries(2):  # the order with its user; the items with products
        again = orders.place_order(user.pk, [(product.pk, 2)], idempotency_key="checkout-1")
    assert again.pk == first.pk
    assert [i.quantity for i in again.items.all()] == [2]
    assert stock_of(product) == 3 == ledger_sum(product)
    other_user = orders.place_order(
        UserFactory.create().pk, [(product.pk, 1)], idempotency_key="checkout-1"
    )
    assert other_user.pk != first.pk
    assert Order.objects.count() == 2


def _miss_first_lookup(monkeypatch) -> None:
    """Make the lookup before the transaction miss once: a racing request with the same
    key commits between that lookup and our transaction."""
    real = OrderRepository._find_idempotent
    calls = []

    def lookup(self, user_id, key):
        calls.append(key)
        return None if len(calls) == 1 else real(self, user_id, key)

    monkeypatch.setattr(OrderRepository, "_find_idempotent", lookup)


def test_place_order_returns_winner_when_key_committed_after_lookup(orders, monkeypatch):
    user = UserFactory.create()
    product = ProductFactory.with_stock(5)
    first = orders.place_order(user.pk, [(product.pk, 2)], idempotency_key="k-1")
    _miss_first_lookup(monkeypatch)
    again = orders.place_order(user.pk, [(product.pk, 2)], idempotency_key="k-1")
    assert again.pk == first.pk
    assert [i.quantity for i in again.items.all()] == [2]
    assert stock_of(product) == 3 == ledger_sum(product)
    assert Order.objects.count() == 1
    assert OrderStatusHistory.objects.count() == 1
    assert AuditLog.objects.filter(action="created").count() == 1


def test_place_order_returns_winner_when_key_took_the_last_units(orders, monkeypatch):
    user = UserFactory.create()
    product = ProductFactory.with_stock(2)
    first = orders.place_order(user.pk, [(product.pk, 2)], idempotency_key="k-2")
    _miss_first_lookup(monkeypatch)
    assert orders.place_order(user.pk, [(product.pk, 2)], idempotency_key="k-2").pk == first.pk
    with pytest.raises(InsufficientStockError):  # another key: no winner to return
        orders.place_order(user.pk, [(product.pk, 2)], idempotency_key="k-3")
    assert stock_of(product) == 0 == ledger_sum(product)


def test_place_order_returns_what_get_with_items_reads(orders, django_assert_num_queries):
    user = UserFactory.create()
    products = [ProductFactory.with_stock(9, name=name) for name in ("b", "C", "a", "B")]
    order = orders.place_order(user.pk, [(p.pk, n) for n, p in enumerate(products, 1)])
    reread = orders.get_with_items(order.pk)

    def fields(instance) -> dict:  # the search vector is deferred on returned products
        concrete = instance._meta.concrete_fields
        return {f.attname: getattr(instance, f.attname) for f in concrete if not f.generated}

    with django_assert_num_queries(0):
        assert fields(order) == fields(reread)
        assert fields(order.user) == fields(reread.user)
        assert [fields(i) for i in order.items.all()] == [fields(i) for i in reread.items.all()]
        assert [fields(i.product) for i in order.items.all()] == [
            fields(i.product) for i in reread.items.all()
        ]
        assert len(order.items.all()) == 4  # in the prefetch's order (database collation)
        assert all(i.order is order for i in order.items.all())
    assert order.items.filter(quantity__gte=3).count() == 2  # still a live related manager


def test_place_order_audits_order_and_stock_with_the_context(orders):
    from repositories.core.audit import audit_context

    user = UserFactory.create()
    product = ProductFactory.with_stock(7, price=Decimal("2.50"))
    with audit_context(actor=user, request_id="req-9", ip_address="10.1.2.3"):
        order = orders.place_order(user.pk, [(product.pk, 3)])
    rows = {
        row.entity_type: row
        for row in AuditLog.objects.filter(action__in=["created", "stock_adjusted"])
    }
    assert {(r.actor_id, r.request_id, str(r.ip_address)) for r in rows.values()} == {
        (user.pk, "req-9", "10.1.2.3")
    }
    assert rows["order"].entity_id == str(order.pk)
    assert rows["order"].changes == {
        "number": order.number,
        "status": "pending",
        "total": "7.50",
        "currency": "EUR",
        "lines": 1,
    }
    assert rows["product"].entity_id == str(product.pk)
    assert rows["product"].changes == {
        "stock_quantity": {"old": 7, "new": 4},
        "delta": -3,
        "reason": "sale",
        "order": order.number,
    }


def test_new_order_number_is_unique_and_dated():
    moment = timezone.now()
    numbers = {new_order_number(moment) for _ in range(200)}
    assert len(numbers) == 200
    assert all(n.startswith(f"ORD-{moment:%Y%m%d}-") for n in numbers)


# --- transitions -------------------------------------------------------------------------------


def _placed(orders, quantity: int = 2, stock: int = 5) -> tuple[Order, Product]:
    product = ProductFactory.with_stock(stock)
    return orders.place_order(UserFactory.create().pk, [(product.pk, quantity)]), product


def test_transition_walks_the_happy_path_with_history_and_audit(orders):
    order, _ = _placed(orders)
    staff = UserFactory.create(is_staff=True)
    for status in ("paid", "shipped", "delivered", "refunded"):
        order = orders.transition(order.pk, status, actor=staff, note=f"to {status}")
        assert order.status == status
    assert order.version == 5
    assert Order.objects.get(pk=order.pk).status == "refunded"
    history = list(
        OrderStatusHistory.objects.filter(order=order)
        .order_by("created_at", "id")
        .values_list("from_status", "to_status", "actor_id", "note")
    )
    assert history == [
        (None, "pending", order.user_id, ""),
        ("pending", "paid", staff.pk, "to paid"),
        ("paid", "shipped", staff.pk, "to shipped"),
        ("shipped", "delivered", staff.pk, "to delivered"),
        ("delivered", "refunded", staff.pk, "to refunded"),
    ]
    changes = AuditLog.objects.filter(action="status_changed", entity_id=str(order.pk))
    assert changes.count() == 4


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ((), "shipped"),
        ((), "delivered"),
        ((), "refunded"),
        ((), "pending"),
        (("paid",), "pending"),
        (("paid",), "refunded"),
        (("paid", "shipped"), "cancelled"),
        (("paid", "shipped", "delivered"), "cancelled"),
        (("cancelled",), "paid"),
        (("paid", "shipped", "delivered", "refunded"), "delivered"),
    ],
)
def test_transition_raises_invalid_transition_off_the_graph(orders, path, target):
    order, _ = _placed(orders)
    for status in path:
        orders.transition(order.pk, status)
    current = Order.objects.get(pk=order.pk)
    with pytest.raises(InvalidTransitionError) as info:
        orders.transition(order.pk, target)
    assert (info.value.from_status, info.value.to_status) == (current.status, target)
    assert Order.objects.get(pk=order.pk).version == current.version


def test_transition_raises_stale_object_on_old_version(orders):
    order, _ = _placed(orders)
    orders.transition(order.pk, "paid", expected_version=1)
    with pytest.raises(StaleObjectError) as info:
        orders.transition(order.pk, "shipped", expected_version=1)
    assert (info.value.expected_version, info.value.actual_version) == (1, 2)
    assert Order.objects.get(pk=order.pk).status == "paid"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"to_status": "lost"},
        {"to_status": "paid", "expected_version": "1"},
        {"to_status": "paid", "note": 5},
        {"to_status": "paid", "actor": "not-a-user"},
    ],
)
def test_transition_raises_validation_error_on_bad_arguments(orders, kwargs):
    order, _ = _placed(orders)
    with pytest.raises(ValidationError):
        orders.transition(order.pk, **kwargs)


def test_transition_raises_not_found_for_unknown_or_malformed_order(orders):
    for key in (uuid.uuid4(), "nope"):
        with pytest.raises(NotFoundError):
            orders.transition(key, "paid")


@pytest.mark.parametrize("path", [(), ("paid",)])
def test_cancel_returns_stock_through_the_ledger(orders, path):
    user = UserFactory.create()
    a = ProductFactory.with_stock(5)
    b = ProductFactory.with_stock(7)
    order = orders.place_order(user.pk, [(a.pk, 2), (b.pk, 3)])
    for status in path:
        orders.transition(order.pk, status)
    cancelled = orders.cancel(order.pk, note="customer asked")
    assert cancelled.status == "cancelled"
    assert stock_of(a) == 5 == ledger_sum(a)
    assert stock_of(b) == 7 == ledger_sum(b)
    returned = InventoryMovement.objects.filter(order=order, reason="cancellation")
    assert sorted((m.product_id, m.delta) for m in returned) == sorted([(a.pk, 2), (b.pk, 3)])
    with pytest.raises(InvalidTransitionError):
        orders.cancel(order.pk)
    assert stock_of(a) == 5


def test_cancel_returns_stock_of_product_deleted_since(orders):
    order, product = _placed(orders, quantity=2, stock=4)
    Product.objects.filter(pk=product.pk).soft_delete()
    orders.cancel(order.pk)
    assert stock_of(product) == 4 == ledger_sum(product)


def test_cancel_with_stale_version_changes_nothing(orders):
    order, product = _placed(orders, quantity=2, stock=4)
    orders.transition(order.pk, "paid")
    with pytest.raises(StaleObjectError):
        orders.cancel(order.pk, expected_version=1)
    assert stock_of(product) == 2


# --- reads -----------------------------------------------------------------------------------


def test_get_with_items_loads_items_and_products_in_two_queries(orders, django_assert_num_queries):
    order = OrderFactory.create()
    OrderItemFactory.create_batch(4, order=order)
    with django_assert_num_queries(2):
        loaded = orders.get_with_items(order.pk)
        names = [item.product.name for item in loaded.items.all()]
        assert loaded.user.email
    assert len(names) == 4


def test_get_with_items_loads_what_the_orm_prefetch_loads(orders):
    from repositories.orders.reads import items_prefetch as _items_prefetch

    order = OrderFactory.create()
    OrderItemFactory.create_batch(3, order=order)
    loaded = orders.get_with_items(order.pk)
    expected = (
        Order.objects.select_related("user").prefetch_related(_items_prefetch()).get(pk=order.pk)
    )
    assert _loaded(loaded) == _loaded(expected)
    assert _loaded(loaded.user) == _loaded(expected.user)
    pairs = list(zip(loaded.items.all(), expected.items.all(), strict=True))
    assert [_loaded(a) for a, _ in pairs] == [_loaded(b) for _, b in pairs]
    assert [_loaded(a.product) for a, _ in pairs] == [_loaded(b.product) for _, b in pairs]
    assert all(a.product.get_deferred_fields() == {"search_vector"} for a, _ in pairs)


def test_get_with_items_raises_not_found(orders):
    for key in (uuid.uuid4(), "nope", None):
        with pytest.raises(NotFoundError):
            orders.get_with_items(key)


def _orders_for(user, count: int) -> list[Order]:
    start = timezone.now() - timedelta(days=count)
    created = []
    for index in range(count):
        order = OrderFactory.create(user=user, placed_at=start + timedelta(hours=index))
        OrderItemFactory.create_batch(2, order=order)
        created.append(order)
    return created


def _history_queries(orders, count: int) -> tuple[int, list[Order]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user = UserFactory.create()
    _orders_for(user, count)
    with CaptureQueriesContext(connection) as captured:
        page = orders.history_for_user(user.pk, limit=100)
        for order in page.items:
            [(item.product.name, item.quantity) for item in order.items.all()]
    return len(captured.captured_queries), page.items


def test_history_for_user_query_count_is_the_same_for_5_or_60_orders(orders):
    few, few_items = _history_queries(orders, 5)
    many, many_items = _history_queries(orders, 60)
    assert (len(few_items), len(many_items)) == (5, 60)
    assert few == many <= 3


def test_history_for_user_pages_newest_first_with_cursor(orders):
    user = UserFactory.create()
    mine = _orders_for(user, 5)
    _orders_for(UserFactory.create(), 2)
    first = orders.history_for_user(user.pk, limit=2)
    assert [o.pk for o in first.items] == [mine[4].pk, mine[3].pk]
    assert first.has_next and first.next_cursor
    second = orders.history_for_user(user.pk, after=first.next_cursor, limit=2)
    third = orders.history_for_user(user.pk, after=second.next_cursor, limit=2)
    assert [o.pk for o in second.items] == [mine[2].pk, mine[1].pk]
    assert [o.pk for o in third.items] == [mine[0].pk]
    assert not third.has_next


def test_history_for_user_breaks_placed_at_ties_by_id(orders):
    user = UserFactory.create()
    moment = timezone.now()
    same = [OrderFactory.create(user=user, placed_at=moment) for _ in range(3)]
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = orders.history_for_user(user.pk, after=cursor, limit=1)
        seen.extend(o.pk for o in page.items)
        if not page.has_next:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(o.pk for o in same) and len(seen) == 3


def _loaded(instance) -> dict:
    deferred = instance.get_deferred_fields()
    return {
        f.attname: getattr(instance, f.attname)
        for f in instance._meta.concrete_fields
        if f.attname not in deferred
    }


def test_history_for_user_loads_what_the_orm_path_loads(orders, django_assert_num_queries):
    user = UserFactory.create()
    _orders_for(user, 4)
    _orders_for(UserFactory.create(), 2)
    with django_assert_num_queries(2):
        page = orders.history_for_user(user.pk, limit=3)
        shown = [
            (order.user.email, [(i.order is order, i.product.sku) for i in order.items.all()])
            for order in page.items
        ]
    orm = orders.paginate_cursor({"user": user.pk}, order_by=["-placed_at"], limit=3)
    assert [o.pk for o in page.items] == [o.pk for o in orm.items]
    assert page.next_cursor == orm.next_cursor and page.has_next
    assert all(order_ok and email == user.email for email, items in shown for order_ok, _ in items)
    for mine, theirs in zip(page.items, orm.items, strict=True):
        assert _loaded(mine) == _loaded(theirs) and _loaded(mine.user) == _loaded(theirs.user)
        mine_items, their_items = list(mine.items.all()), list(theirs.items.all())
        assert [i.pk for i in mine_items] == [i.pk for i in their_items]
        for item, expected in zip(mine_items, their_items, strict=True):
            assert _loaded(item) == _loaded(expected)
            assert _loaded(item.product) == _loaded(expected.product)
            assert item.product.get_deferred_fields() == {"search_vector"}
    # The cursors of both paths are interchangeable.
    rest = orders.paginate_cursor(
        {"user": user.pk}, order_by=["-placed_at"], after=page.next_cursor, limit=3
    )
    assert [o.pk for o in rest.items] == [
        o.pk for o in orders.history_for_user(user.pk, after=orm.next_cursor, limit=3).items
    ]
    # The prefetched items still filter in the database, for this order only.
    first = page.items[0]
    some = first.items.all()[0]
    with django_assert_num_queries(1):
        assert [i.pk for i in first.items.filter(product=some.product_id)] == [some.pk]


def test_history_for_user_rejects_bad_arguments(orders):
    user = UserFactory.create()
    with pytest.raises(NotFoundError):
        orders.history_for_user("nope")
    with pytest.raises(InvalidQueryError):
        orders.history_for_user(user.pk, after="tampered")
    with pytest.raises(InvalidQueryError):
        orders.history_for_user(user.pk, limit=0)
    with pytest.raises(InvalidQueryError):
        orders.history_for_user(user.pk, limit=True)
    with pytest.raises(InvalidQueryError):
        orders.history_for_user(user.pk, limit=10_000)
    assert orders.history_for_user(uuid.uuid4()).items == []


def test_order_find_many_filters_by_status_and_sorts_by_total(orders, django_assert_num_queries):
    user = UserFactory.create()
    small = OrderFactory.create(
        user=user, status="paid", total=Decimal("5.00"), subtotal=Decimal("5.00")
    )
    big = OrderFactory.create(
        user=user, status="paid", total=Decimal("50.00"), subtotal=Decimal("50.00")
    )
    OrderFactory.create(user=user, status="cancelled")
    with django_assert_num_queries(2):
        found = orders.find_many({"status": "paid"}, order_by=["-total"])
        [(o.user.email, list(o.items.all())) for o in found]
    assert [o.pk for o in found] == [big.pk, small.pk]
    with pytest.raises(InvalidQueryError):
        orders.find_many({"status": "lost"})


def test_place_order_raises_conflict_when_order_number_clashes(orders, monkeypatch):
    monkeypatch.setattr(
        "repositories.orders.placing.new_order_number", lambda placed_at: "ORD-SAME"
    )
    product = ProductFactory.with_stock(5)
    orders.place_order(UserFactory.create().pk, [(product.pk, 1)], idempotency_key="a")
    with pytest.raises(ConflictError) as info:
        orders.place_order(UserFactory.create().pk, [(product.pk, 1)], idempotency_key="b")
    assert "number" in info.value.fields
    assert stock_of(product) == 4 == ledger_sum(product)


def test_generic_writes_cannot_bypass_order_verbs(orders):
    order, _ = _placed(orders)
    with pytest.raises(ValidationError):
        orders.create({"number": "X"})
    with pytest.raises(ValidationError):
        orders.create_many([{"number": "X"}])
    with pytest.raises(ValidationError):
        orders.update(order.pk, {"status": "delivered"})
    with pytest.raises(ValidationError):
        orders.update_many({"status": "pending"}, {"total": Decimal("0.00")})
    with pytest.raises(ValidationError):
        orders.delete(order.pk)
    with pytest.raises(ValidationError):
        orders.delete_many({"status": "pending"})
    assert Order.objects.get(pk=order.pk).status == "pending"


def test_transition_takes_actor_from_audit_context_when_not_given(orders):
    from repositories.core.audit import audit_context

    order, _ = _placed(orders)
    staff = UserFactory.create(is_staff=True)
    with audit_context(actor=staff, request_id="req-1"):
        orders.transition(order.pk, "paid")
    history = OrderStatusHistory.objects.get(order=order, to_status="paid")
    assert history.actor_id == staff.pk
    entry = AuditLog.objects.get(action="status_changed", entity_id=str(order.pk))
    assert (entry.actor_id, entry.request_id) == (staff.pk, "req-1")
