"""The commerce schema, one module per area."""

from domain.models.audit import AuditLog
from domain.models.catalog import Category, InventoryMovement, Product
from domain.models.configuration import SystemConfig
from domain.models.orders import (
    ALLOWED_TRANSITIONS,
    REVENUE_STATUSES,
    Order,
    OrderItem,
    OrderStatus,
    OrderStatusHistory,
)
from domain.models.sessions import UserSession
from domain.models.users import User

__all__ = [
    "ALLOWED_TRANSITIONS",
    "REVENUE_STATUSES",
    "AuditLog",
    "Category",
    "InventoryMovement",
    "Order",
    "OrderItem",
    "OrderStatus",
    "OrderStatusHistory",
    "Product",
    "SystemConfig",
    "User",
    "UserSession",
]
