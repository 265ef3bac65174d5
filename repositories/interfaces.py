"""Protocols of the repository contracts, so application code can depend on an interface.

`IRepository[ModelT]`, the base contract of SPEC §4, lives in repositories.core.interfaces
(generic, free of `domain`) and is re-exported here; `I<Name>Repository` adds the verbs of
one commerce repository (SPEC §6) and `<Name>Repository` satisfies it under mypy. Names
take the `I` prefix of the seed contract (IBaseRepository<T>, IUserRepository): the plain
names stay the classes', and both read apart where one module imports the two. The base
is `IRepository`, not `IBaseRepository`, because it describes any repository rather than
the BaseRepository class: a test double satisfies it without inheriting anything.

    from repositories import ProductRepository
    from repositories.interfaces import IProductRepository

    def cheapest(products: IProductRepository, category_id: UUID) -> Product | None:
        # Typed against the interface: any object with these methods will do.
        found = products.in_category(category_id)
        return min(found, key=lambda product: (product.price, product.pk), default=None)

    cheapest(ProductRepository(), category.pk)

Importing this module loads no models: the domain types are for the type checker only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from repositories.core.interfaces import IRepository, ModelT

if TYPE_CHECKING:
    import uuid
    from datetime import datetime, timedelta
    from decimal import Decimal

    from domain.models import (
        AuditLog,
        Category,
        InventoryMovement,
        Order,
        Product,
        SystemConfig,
        User,
        UserSession,
    )
    from repositories.categories import CategoryNode
    from repositories.core.pagination import CursorPage
    from repositories.orders.analytics import RevenueRow, TopProductRow
    from repositories.sessions import SuspiciousUser

__all__ = [
    "IAuditLogRepository",
    "ICategoryRepository",
    "IOrderRepository",
    "IProductRepository",
    "IRepository",
    "ISessionRepository",
    "ISystemConfigRepository",
    "IUserRepository",
    "ModelT",
]


class IUserRepository(IRepository["User"], Protocol):
    """Users (repositories.users.UserRepository)."""

    def find_by_email(self, email: str) -> User | None:
        """Return the live user with this email (any case), or None."""
        ...

    def find_active_users(
        self,
        filters: Mapping[str, Any] | None = ...,
        *,
        order_by: Sequence[str] | None = ...,
        limit: int | None = ...,
        offset: int = ...,
    ) -> list[User]:
        """Return live, active users matching `filters`."""
        ...

    def verify_email(self, id: object) -> User:
        """Mark the user's email verified and return the user (idempotent)."""
        ...

    def set_password(self, id: object, raw: str) -> User:
        """Validate and hash `raw` as the user's password, revoking all their sessions."""
        ...


class ICategoryRepository(IRepository["Category"], Protocol):
    """Categories (repositories.categories.CategoryRepository)."""

    def tree(self) -> list[CategoryNode]:
        """Return the live category forest, roots and children sorted by name."""
        ...

    def descendants(self, category_id: uuid.UUID | str) -> list[Category]:
        """Return the live descendants of a live category, breadth first."""
        ...

    def move(self, category_id: uuid.UUID | str, new_parent_id: uuid.UUID | str | None) -> Category:
        """Move a category under `new_parent_id` (None: make it a root), refusing cycles."""
        ...


class IProductRepository(IRepository["Product"], Protocol):
    """Products, their search and their stock (repositories.products.ProductRepository)."""

    def find_by_sku(self, sku: str) -> Product | None:
        """Return the live product with this SKU, or None."""
        ...

    def in_category(
        self,
        category_id: uuid.UUID | str,
        include_descendants: bool = ...,
        *,
        include_inactive: bool = ...,
    ) -> list[Product]:
        """Return the live, active products of a category (and, by default, its subtree)."""
        ...

    def search(
        self, query: str, *, filters: Mapping[str, Any] | None = ..., limit: int = ...
    ) -> list[Product]:
        """Return live, active products matching a web-search query, best ranked first."""
        ...

    def adjust_stock(self, product_id: uuid.UUID | str, delta: int, *, reason: str) -> int:
        """Add `delta` to the stock, writing the ledger; return the new quantity."""
        ...

    def restock(self, product_id: uuid.UUID | str, quantity: int) -> int:
        """Add `quantity` to the stock; return the new quantity."""
        ...

    def low_stock(self, threshold: int, *, limit: int = ...) -> list[Product]:
        """Return live, active products whose stock is at most `threshold`."""
        ...

    def stock_ledger(self, product_id: uuid.UUID | str) -> list[InventoryMovement]:
        """Return a product's stock movements, oldest first."""
        ...


class IOrderRepository(IRepository["Order"], Protocol):
    """Orders: placing, status changes, reads and analytics (repositories.orders)."""

    def place_order(
        self,
        user_id: Any,
        items: Sequence[tuple[uuid.UUID | str, int]],
        *,
        idempotency_key: str | None = ...,
    ) -> Order:
        """Place an order for `(product_id, quantity)` lines atomically; return it."""
        ...

    def transition(
        self,
        order_id: uuid.UUID | str,
        to_status: str,
        *,
        actor: Any = ...,
        note: str = ...,
        expected_version: int | None = ...,
    ) -> Order:
        """Move an order to `to_status`; InvalidTransitionError when not allowed."""
        ...

    def cancel(
        self,
        order_id: uuid.UUID | str,
        *,
        actor: Any = ...,
        note: str = ...,
        expected_version: int | None = ...,
    ) -> Order:
        """Cancel an order, returning its stock."""
        ...

    def get_with_items(self, order_id: uuid.UUID | str) -> Order:
        """Return an order with its user, items and their products."""
        ...

    def history_for_user(
        self, user_id: Any, *, after: str | None = ..., limit: int = ...
    ) -> CursorPage[Order]:
        """Return a user's orders, newest first, as a keyset page with items loaded."""
        ...

    def revenue_by_period(
        self, start: datetime, end: datetime, *, period: str = ...
    ) -> list[RevenueRow]:
        """Return revenue per day, week or month of `placed_at` in [start, end)."""
        ...

    def top_products(
        self, start: datetime, end: datetime, *, limit: int = ...
    ) -> list[TopProductRow]:
        """Return the best-selling products by revenue in [start, end)."""
        ...

    def average_order_value(self, start: datetime, end: datetime) -> Decimal:
        """Return the mean total of revenue orders in [start, end)."""
        ...

    def status_breakdown(self) -> dict[str, int]:
        """Return the number of orders per status."""
        ...


class ISessionRepository(IRepository["UserSession"], Protocol):
    """Login sessions (repositories.sessions.SessionRepository); opened only by
    `create_session`, so the generic creates are refused."""

    def create(self, data: Mapping[str, Any]) -> NoReturn:
        """Refuse: sessions are opened by create_session()."""
        ...

    def create_many(self, rows: Iterable[Mapping[str, Any]], *, batch_size: int = ...) -> NoReturn:
        """Refuse: sessions are opened by create_session()."""
        ...

    def create_session(
        self,
        user_id: Any,
        *,
        ip_address: str | None = ...,
        user_agent: str = ...,
        ttl: timedelta | None = ...,
    ) -> tuple[UserSession, str]:
        """Open a session for a live, active user; return it and its token (shown once)."""
        ...

    def validate(self, token: object) -> UserSession | None:
        """Return the live session for this token, or None."""
        ...

    def revoke(self, session_id: Any, *, reason: str) -> UserSession:
        """Revoke one session; return it."""
        ...

    def revoke_all(self, user_id: Any, *, except_id: Any = ..., reason: str = ...) -> int:
        """Revoke a user's live sessions (but `except_id`); return how many."""
        ...

    def active_for_user(self, user_id: Any) -> list[UserSession]:
        """Return a user's unrevoked, unexpired sessions."""
        ...

    def cleanup_expired(self, *, batch_size: int = ...) -> int:
        """Delete expired sessions in batches; return how many."""
        ...

    def suspicious_users(self, *, window: timedelta, min_distinct_ips: int) -> list[SuspiciousUser]:
        """Return users with sessions from at least `min_distinct_ips` IPs in `window`."""
        ...


class IAuditLogRepository(IRepository["AuditLog"], Protocol):
    """The append-only audit trail (repositories.audit_log.AuditLogRepository): reads
    only, every generic write raises ReadOnlyRepositoryError."""

    def for_entity(self, entity_type: str, entity_id: Any) -> list[AuditLog]:
        """Return the history of one entity, oldest first."""
        ...

    def by_actor(self, user_id: Any) -> list[AuditLog]:
        """Return what a user did, newest first."""
        ...

    def create(self, data: Mapping[str, Any]) -> NoReturn:
        """Refuse: audit rows are written with each audited write."""
        ...

    def create_many(self, rows: Iterable[Mapping[str, Any]], *, batch_size: int = ...) -> NoReturn:
        """Refuse: audit rows are written with each audited write."""
        ...

    def update(
        self, id: object, data: Mapping[str, Any], *, expected_version: int | None = ...
    ) -> NoReturn:
        """Refuse: the audit trail is append-only."""
        ...

    def update_many(self, filters: Mapping[str, Any] | None, data: Mapping[str, Any]) -> NoReturn:
        """Refuse: the audit trail is append-only."""
        ...

    def delete(self, id: object) -> NoReturn:
        """Refuse: the audit trail is append-only."""
        ...

    def delete_many(
        self, filters: Mapping[str, Any] | None, *, include_deleted: bool = ...
    ) -> NoReturn:
        """Refuse: the audit trail is append-only."""
        ...

    def soft_delete(self, id: object) -> NoReturn:
        """Refuse: the audit trail is append-only."""
        ...

    def restore(self, id: object) -> NoReturn:
        """Refuse: the audit trail is append-only."""
        ...


class ISystemConfigRepository(IRepository["SystemConfig"], Protocol):
    """Configuration entries by key (repositories.configuration.SystemConfigRepository).

    `delete` takes a key, not an id (SPEC §6), as the class does: so neither the class
    nor this protocol is an `IRepository[SystemConfig]`; depend on this protocol.
    """

    def get(self, key: str, default: Any = ...) -> Any:
        """Return the value stored under `key` (cached), or `default`."""
        ...

    def set(
        self,
        key: str,
        value: Any,
        *,
        expected_version: int | None = ...,
        description: str | None = ...,
    ) -> SystemConfig:
        """Store `value` under `key` and return the entry."""
        ...

    def all(self) -> dict[str, Any]:
        """Return every entry as {key: value}, ordered by key."""
        ...

    def delete(self, key: str) -> None:  # type: ignore[override]
        """Delete the entry under `key`; NotFoundError when missing."""
        ...
