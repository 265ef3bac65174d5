"""The repository layer: typed data access over the domain models (see docs/repositories.md).

Names are imported lazily (PEP 562): this package is also a Django app, and its models
must not load before the app registry is ready.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repositories.audit_log import AuditLogRepository, ReadOnlyRepositoryError
    from repositories.categories import CategoryNode, CategoryRepository
    from repositories.configuration import SystemConfigRepository
    from repositories.core.base import BaseRepository
    from repositories.core.filters import StrictFilterSet
    from repositories.core.pagination import CursorPage, Page
    from repositories.errors import (
        ConflictError,
        DatabaseUnavailableError,
        InsufficientStockError,
        InvalidQueryError,
        InvalidTransitionError,
        NotFoundError,
        QueryTimeoutError,
        ReadOnlyDatabaseError,
        RepositoryError,
        StaleObjectError,
        TransactionConflictError,
        TransactionUsageError,
        ValidationError,
    )
    from repositories.orders import OrderRepository, RevenueRow, TopProductRow
    from repositories.products import ProductRepository
    from repositories.sessions import SessionRepository, SuspiciousUser
    from repositories.users import UserRepository

_EXPORTS = {
    "AuditLogRepository": "repositories.audit_log",
    "ReadOnlyRepositoryError": "repositories.audit_log",
    "SessionRepository": "repositories.sessions",
    "SuspiciousUser": "repositories.sessions",
    "SystemConfigRepository": "repositories.configuration",
    "UserRepository": "repositories.users",
    "BaseRepository": "repositories.core.base",
    "CategoryNode": "repositories.categories",
    "CategoryRepository": "repositories.categories",
    "ProductRepository": "repositories.products",
    "OrderRepository": "repositories.orders",
    "RevenueRow": "repositories.orders",
    "TopProductRow": "repositories.orders",
    "StrictFilterSet": "repositories.core.filters",
    "CursorPage": "repositories.core.pagination",
    "Page": "repositories.core.pagination",
    "ConflictError": "repositories.errors",
    "DatabaseUnavailableError": "repositories.errors",
    "InsufficientStockError": "repositories.errors",
    "InvalidQueryError": "repositories.errors",
    "InvalidTransitionError": "repositories.errors",
    "NotFoundError": "repositories.errors",
    "QueryTimeoutError": "repositories.errors",
    "RepositoryError": "repositories.errors",
    "StaleObjectError": "repositories.errors",
    "TransactionConflictError": "repositories.errors",
    "ReadOnlyDatabaseError": "repositories.errors",
    "TransactionUsageError": "repositories.errors",
    "ValidationError": "repositories.errors",
}

__all__ = [
    "AuditLogRepository",
    "BaseRepository",
    "CategoryNode",
    "CategoryRepository",
    "ConflictError",
    "CursorPage",
    "DatabaseUnavailableError",
    "InsufficientStockError",
    "InvalidQueryError",
    "InvalidTransitionError",
    "NotFoundError",
    "OrderRepository",
    "Page",
    "ProductRepository",
    "QueryTimeoutError",
    "ReadOnlyDatabaseError",
    "ReadOnlyRepositoryError",
    "RepositoryError",
    "RevenueRow",
    "SessionRepository",
    "StaleObjectError",
    "StrictFilterSet",
    "SuspiciousUser",
    "SystemConfigRepository",
    "TopProductRow",
    "TransactionConflictError",
    "TransactionUsageError",
    "UserRepository",
    "ValidationError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'repositories' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
