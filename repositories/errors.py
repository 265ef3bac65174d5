"""Every error a repository raises (SPEC §4): the generic ones of repositories.core.errors
and the commerce schema's own (stock, order status)."""

from __future__ import annotations

from typing import Any

from repositories.core.errors import (
    ConflictError,
    DatabaseUnavailableError,
    InvalidQueryError,
    NotFoundError,
    QueryTimeoutError,
    ReadOnlyDatabaseError,
    RepositoryError,
    StaleObjectError,
    TransactionConflictError,
    TransactionUsageError,
    ValidationError,
)

__all__ = [
    "ConflictError",
    "DatabaseUnavailableError",
    "InsufficientStockError",
    "InvalidQueryError",
    "InvalidTransitionError",
    "NotFoundError",
    "QueryTimeoutError",
    "ReadOnlyDatabaseError",
    "RepositoryError",
    "StaleObjectError",
    "TransactionConflictError",
    "TransactionUsageError",
    "ValidationError",
]


class InsufficientStockError(RepositoryError):
    """A product does not have the stock a request needs."""

    def __init__(self, product_id: Any, requested: int, available: int) -> None:
        super().__init__(f"product {product_id} has {available} in stock, {requested} requested")
        self.product_id = product_id
        self.requested = requested
        self.available = available


class InvalidTransitionError(RepositoryError):
    """An order status change that the status graph does not allow."""

    def __init__(self, from_status: str, to_status: str) -> None:
        super().__init__(f"an order cannot move from {from_status!r} to {to_status!r}")
        self.from_status = from_status
        self.to_status = to_status
