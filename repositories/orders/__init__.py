"""Orders: placing against stock, reads, status changes and analytics (one module each)."""

from __future__ import annotations

from repositories.orders.analytics import RevenueRow, TopProductRow
from repositories.orders.placing import MAX_LINE_QUANTITY, MAX_ORDER_LINES, new_order_number
from repositories.orders.repository import OrderFilterSet, OrderRepository

__all__ = [
    "MAX_LINE_QUANTITY",
    "MAX_ORDER_LINES",
    "OrderFilterSet",
    "OrderRepository",
    "RevenueRow",
    "TopProductRow",
    "new_order_number",
]
