"""OrderRepository analytics: one query each, checked against Python over the same data."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.models import REVENUE_STATUSES, Order, OrderItem, OrderStatus
from repositories.errors import InvalidQueryError
from repositories.orders import OrderRepository, RevenueRow, TopProductRow
from tests.factories import OrderFactory, OrderItemFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture
def orders() -> OrderRepository:
    return OrderRepository()


@pytest.fixture
def sales() -> list[Order]:
    """~60 orders in every status over Dec 2025 to Apr 2026, each with 1 to 3 items."""
    rng = random.Random(20260101)
    products = [
        ProductFactory.create(price=Decimal(f"{rng.randint(100, 9999)}.{rng.randint(0, 99):02d}"))
        for _ in range(6)
    ]
    users = UserFactory.create_batch(4)
    statuses = list(OrderStatus.values)
    created = []
    for index in range(60):
        placed_at = datetime(2025, 12, 20, tzinfo=UTC) + timedelta(
            hours=rng.randint(0, 24 * 115), minutes=rng.randint(0, 59)
        )
        order = OrderFactory.create(
            user=users[index % 4], status=statuses[index % len(statuses)], placed_at=placed_at
        )
        subtotal = Decimal("0.00")
        for product in rng.sample(products, rng.randint(1, 3)):
            item = OrderItemFactory.create(order=order, product=product, quantity=rng.randint(1, 4))
            subtotal += item.line_total
        Order.objects.filter(pk=order.pk).update(subtotal=subtotal, total=subtotal)
        order.total = subtotal
        created.append(order)
    # Exactly on the boundaries: start is in, end is out.
    for placed_at in (START, END):
        order = OrderFactory.create(status="paid", placed_at=placed_at, total=Decimal("10.00"))
        created.append(order)
    return created


def _in_range(orders: list[Order], start: datetime, end: datetime) -> list[Order]:
    return [o for o in orders if o.status in REVENUE_STATUSES and start <= o.placed_at < end]


def _period_start(moment: datetime, period: str) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_revenue_by_period_matches_python_in_one_query(
    orders, sales, period, django_assert_num_queries
):
    expected: dict[datetime, list[Decimal]] = defaultdict(list)
    for order in _in_range(sales, START, END):
        expected[_period_start(order.placed_at, period)].append(order.total)
    with django_assert_num_queries(1):
        rows = orders.revenue_by_period(START, END, period=period)
    assert all(isinstance(row, RevenueRow) for row in rows)
    assert [(r.period, r.orders, r.revenue) for r in rows] == [
        (key, len(values), sum(values, Decimal("0"))) for key, values in sorted(expected.items())
    ]
    assert rows[0].period.tzinfo is not None


def test_revenue_by_period_counts_start_and_excludes_end(orders, sales):
    for start, end in ((START, START + timedelta(days=1)), (END, END + timedelta(hours=1))):
        included = _in_range(sales, start, end)
        rows = orders.revenue_by_period(start, end)
        assert [(r.period, r.orders) for r in rows] == [(start, len(included))]
    assert any(o.placed_at == START for o in _in_range(sales, START, START + timedelta(days=1)))


def test_revenue_by_period_is_empty_without_revenue_orders(orders):
    OrderFactory.create(status="pending", placed_at=START + timedelta(days=1))
    OrderFactory.create(status="cancelled", placed_at=START + timedelta(days=1))
    assert orders.revenue_by_period(START, END) == []


def test_top_products_matches_python_in_one_query(orders, sales, django_assert_num_queries):
    totals: dict = defaultdict(lambda: [0, Decimal("0")])
    revenue_orders = {o.pk for o in _in_range(sales, START, END)}
    for item in OrderItem.objects.filter(order_id__in=revenue_orders).select_related("product"):
        totals[(item.product_id, item.product.name)][0] += item.quantity
        totals[(item.product_id, item.product.name)][1] += item.line_total
    expected = sorted(
        (TopProductRow(pid, name, q, r) for (pid, name), (q, r) in totals.items()),
        key=lambda row: (-row.revenue, -row.quantity, str(row.product_id)),
    )
    with django_assert_num_queries(1):
        rows = orders.top_products(START, END, limit=4)
    assert rows == expected[:4]
    assert len(orders.top_products(START, END)) == len(expected)


def test_top_products_uses_current_product_name(orders):
    product = ProductFactory.create(name="Old name")
    order = OrderFactory.create(status="delivered", placed_at=START + timedelta(days=2))
    OrderItemFactory.create(order=order, product=product, quantity=2)
    product.name = "New name"
    product.save()
    [row] = orders.top_products(START, END)
    assert (row.product_id, row.name, row.quantity) == (product.pk, "New name", 2)


def test_average_order_value_matches_python_in_one_query(orders, sales, django_assert_num_queries):
    included = _in_range(sales, START, END)
    expected = (sum((o.total for o in included), Decimal("0")) / len(included)).quantize(
        Decimal("0.01")
    )
    with django_assert_num_queries(1):
        value = orders.average_order_value(START, END)
    assert value == expected
    assert isinstance(value, Decimal)


def test_average_order_value_is_zero_without_orders(orders):
    assert orders.average_order_value(START, END) == Decimal("0.00")


def test_status_breakdown_counts_every_status_in_one_query(
    orders, sales, django_assert_num_queries
):
    with django_assert_num_queries(1):
        breakdown = orders.status_breakdown()
    expected = {status: 0 for status in OrderStatus.values}
    for order in sales:
        expected[order.status] += 1
    assert breakdown == expected


def test_status_breakdown_includes_zero_counts(orders):
    OrderFactory.create(status="paid")
    breakdown = orders.status_breakdown()
    assert breakdown["paid"] == 1
    assert breakdown["refunded"] == 0
    assert set(breakdown) == set(OrderStatus.values)


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (datetime(2026, 1, 1), END, "start"),  # naive
        (START, datetime(2026, 4, 1), "end"),  # naive
        ("2026-01-01", END, "start"),
        (START, None, "end"),
        (END, START, "end"),
        (START, START, "end"),
    ],
)
def test_analytics_reject_bad_ranges(orders, start, end, field):
    for call in (
        lambda: orders.revenue_by_period(start, end),
        lambda: orders.top_products(start, end),
        lambda: orders.average_order_value(start, end),
    ):
        with pytest.raises(InvalidQueryError) as info:
            call()
        assert field in info.value.errors


@pytest.mark.parametrize("period", ["year", "", None, "DAY"])
def test_revenue_by_period_rejects_unknown_period(orders, period):
    with pytest.raises(InvalidQueryError) as info:
        orders.revenue_by_period(START, END, period=period)
    assert "period" in info.value.errors


@pytest.mark.parametrize("limit", [0, 101, "5", True])
def test_top_products_rejects_bad_limit(orders, limit):
    with pytest.raises(InvalidQueryError):
        orders.top_products(START, END, limit=limit)
