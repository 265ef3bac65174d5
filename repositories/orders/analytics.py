"""Order analytics: revenue by period, top products, average value, status counts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.db.models import Avg, Count, QuerySet, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from domain.models import (
    REVENUE_STATUSES,
    Order,
    OrderItem,
    OrderStatus,
)
from repositories.core.base import BaseRepository
from repositories.errors import (
    InvalidQueryError,
)
from repositories.orders.placing import CENT, is_int

__all__ = ["PERIODS", "OrderAnalytics", "RevenueRow", "TopProductRow"]

PERIODS = ("day", "week", "month")


@dataclass(frozen=True)
class RevenueRow:
    """Revenue of one period: its start (UTC), the number of orders and their total."""

    period: datetime
    orders: int
    revenue: Decimal


@dataclass(frozen=True)
class TopProductRow:
    """A product's sales in a time range: units sold and the revenue they brought."""

    product_id: uuid.UUID
    name: str
    quantity: int
    revenue: Decimal


class OrderAnalytics(BaseRepository[Order]):
    """Sales figures computed in PostgreSQL: one query each."""

    @staticmethod
    def _check_range(start: datetime, end: datetime) -> None:
        errors: dict[str, list[str]] = {}
        for name, value in (("start", start), ("end", end)):
            if not isinstance(value, datetime):
                errors[name] = ["Expected a datetime."]
            elif timezone.is_naive(value):
                errors[name] = ["Expected a timezone-aware datetime."]
        if errors:
            raise InvalidQueryError(errors)
        if start >= end:
            raise InvalidQueryError({"end": ["End must be after start."]})

    def _revenue_orders(self, start: datetime, end: datetime) -> QuerySet[Order]:
        return Order.objects.using(self.using).filter(
            status__in=REVENUE_STATUSES, placed_at__gte=start, placed_at__lt=end
        )

    def revenue_by_period(
        self, start: datetime, end: datetime, *, period: str = "day"
    ) -> list[RevenueRow]:
        """Return revenue per day, week (from Monday) or month in [start, end), UTC (1 query).

        Counts orders that are paid, shipped or delivered, by `placed_at`; periods
        without such orders are absent. Sorted by period.
        """
        self._check_range(start, end)
        if period not in PERIODS:
            raise InvalidQueryError({"period": [f"Use one of {', '.join(PERIODS)}."]})
        rows = (
            self._revenue_orders(start, end)
            .annotate(bucket=Trunc("placed_at", period, tzinfo=UTC))
            .values("bucket")
            .annotate(orders=Count("id"), revenue=Sum("total"))
            .order_by("bucket")
        )
        return [
            RevenueRow(period=row["bucket"], orders=row["orders"], revenue=row["revenue"])
            for row in rows
        ]

    def top_products(
        self, start: datetime, end: datetime, *, limit: int = 10
    ) -> list[TopProductRow]:
        """Return the best-selling products by revenue in [start, end) (1 query).

        Sums the items of revenue orders (paid, shipped, delivered) by `placed_at`;
        `name` is the product's current name. Ties by units, then product id.
        """
        self._check_range(start, end)
        if not is_int(limit) or not 1 <= limit <= 100:
            raise InvalidQueryError({"limit": ["Limit must be an integer from 1 to 100."]})
        rows = (
            OrderItem.objects.using(self.using)
            .filter(
                order__status__in=REVENUE_STATUSES,
                order__placed_at__gte=start,
                order__placed_at__lt=end,
            )
            .values("product_id", "product__name")
            .annotate(quantity=Sum("quantity"), revenue=Sum("line_total"))
            .order_by("-revenue", "-quantity", "product_id")[:limit]
        )
        return [
            TopProductRow(
                product_id=row["product_id"],
                name=row["product__name"],
                quantity=row["quantity"],
                revenue=row["revenue"],
            )
            for row in rows
        ]

    def average_order_value(self, start: datetime, end: datetime) -> Decimal:
        """Return the mean total of revenue orders in [start, end), to the cent (1 query).

        Decimal("0.00") when there are none.
        """
        self._check_range(start, end)
        value = self._revenue_orders(start, end).aggregate(value=Avg("total"))["value"]
        return Decimal("0.00") if value is None else Decimal(value).quantize(CENT)

    def status_breakdown(self) -> dict[str, int]:
        """Return the number of orders in every status, zeros included (1 query)."""
        counts = {status: 0 for status in OrderStatus.values}
        rows = Order.objects.using(self.using).values("status").annotate(n=Count("id"))
        counts.update({row["status"]: row["n"] for row in rows.order_by()})
        return counts
