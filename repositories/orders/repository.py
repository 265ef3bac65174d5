"""The order repository: reads, placing, status changes and analytics of orders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import django_filters as filters

from domain.models import (
    Order,
    OrderStatus,
)
from repositories.core.base import BaseRepository
from repositories.core.filters import StrictFilterSet
from repositories.errors import (
    ValidationError,
)
from repositories.orders.analytics import OrderAnalytics
from repositories.orders.placing import OrderPlacing
from repositories.orders.reads import OrderReads, items_prefetch
from repositories.orders.status import OrderStatusChanges
from repositories.user_model import user_key_filter

__all__ = ["OrderFilterSet", "OrderRepository"]


class OrderFilterSet(StrictFilterSet):
    """Criteria for orders: user, status, placement time range, total range."""

    user = user_key_filter("user_id")
    status = filters.ChoiceFilter(choices=OrderStatus.choices)
    number = filters.CharFilter()
    placed_after = filters.IsoDateTimeFilter(field_name="placed_at", lookup_expr="gte")
    placed_before = filters.IsoDateTimeFilter(field_name="placed_at", lookup_expr="lt")
    total_min = filters.NumberFilter(field_name="total", lookup_expr="gte")
    total_max = filters.NumberFilter(field_name="total", lookup_expr="lte")

    class Meta:
        model = Order
        fields: tuple[str, ...] = ()


class OrderRepository(OrderReads, OrderPlacing, OrderStatusChanges, OrderAnalytics):
    """Place, read, move through statuses and analyse orders. Orders are never deleted."""

    model = Order
    read_methods = BaseRepository.read_methods | {
        "get_with_items",
        "history_for_user",
        "revenue_by_period",
        "top_products",
        "average_order_value",
        "status_breakdown",
    }
    audit = True
    filterset_class = OrderFilterSet
    sortable_fields = ("placed_at", "total", "status", "created_at", "number")
    default_order = ("-placed_at",)
    select_related = ("user",)
    prefetch_related = (items_prefetch(),)
    # Orders change only through their verbs (place_order, transition, cancel), so the
    # generic writes cannot bypass stock, ledger, history or the status graph.
    readonly_fields = (
        "number",
        "user",
        "status",
        "currency",
        "subtotal",
        "total",
        "placed_at",
        "idempotency_key",
    )

    def create(self, data: Mapping[str, Any]) -> Order:
        """Refuse: orders are created by `place_order` (stock, ledger, history, audit)."""
        raise ValidationError({"__all__": ["Orders are created with place_order()."]})

    def create_many(
        self, rows: Iterable[Mapping[str, Any]], *, batch_size: int = 1000
    ) -> list[Order]:
        """Refuse: orders are created one by one by `place_order`."""
        raise ValidationError({"__all__": ["Orders are created with place_order()."]})

    def delete(self, id: object) -> None:
        """Refuse: orders are never deleted; cancel them instead."""
        raise ValidationError({"__all__": ["Orders are never deleted; use cancel()."]})

    def delete_many(
        self, filters: Mapping[str, Any] | None, *, include_deleted: bool = False
    ) -> int:
        """Refuse: orders are never deleted; cancel them instead."""
        raise ValidationError({"__all__": ["Orders are never deleted; use cancel()."]})
