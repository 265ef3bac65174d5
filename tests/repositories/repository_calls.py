"""The public methods of every repository, and a valid call for each.

Discovery, not a list: every BaseRepository subclass of the `repositories` package and
every public method it has (inherited ones included). CALLS maps each (class, method) to
a builder that makes fresh rows and returns a zero-argument call with valid arguments
(a `functools.partial` over a bound method, or the bound method itself when it takes
none). Tests that exercise every public method (test_public_errors, test_hostile_input)
start from this table.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.utils import timezone

import repositories
from repositories import CategoryRepository, ProductRepository
from repositories.audit_log import AuditLogRepository
from repositories.configuration import SystemConfigRepository
from repositories.core.base import BaseRepository
from repositories.orders import OrderRepository
from repositories.sessions import SessionRepository
from repositories.users import UserRepository
from tests.factories import (
    AuditLogFactory,
    CategoryFactory,
    OrderFactory,
    ProductFactory,
    SystemConfigFactory,
    UserFactory,
    UserSessionFactory,
)

__all__ = ["CALLS", "Call", "Key", "enumerated_methods", "public_methods", "repository_classes"]

Call = Callable[[], Any]
Key = tuple[str, str]


# --- discovery ---------------------------------------------------------------------------


def repository_classes() -> dict[str, type[BaseRepository[Any]]]:
    """Return every concrete BaseRepository subclass defined in the `repositories` package."""
    for module in pkgutil.iter_modules(repositories.__path__):
        importlib.import_module(f"repositories.{module.name}")
    found: dict[str, type[BaseRepository[Any]]] = {}
    stack = list(BaseRepository.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        # Test and sample repositories (tests.*) are not part of the product; the parts
        # a repository is assembled from (OrderReads, ...) have no model of their own.
        if cls.__module__.split(".", 1)[0] == "repositories" and hasattr(cls, "model"):
            found[cls.__name__] = cls
    return found


def public_methods(cls: type) -> list[str]:
    """Return the public methods of `cls`, inherited ones included.

    Routines only: `model` and `filterset_class` are callable (they are classes) but
    are configuration, not methods. `get_queryset` builds no query and is not wrapped.
    """
    return [
        name
        for name, _ in inspect.getmembers(cls, inspect.isroutine)
        if not name.startswith("_") and name != "get_queryset"
    ]


def enumerated_methods() -> set[Key]:
    return {
        (name, method)
        for name, cls in repository_classes().items()
        for method in public_methods(cls)
    }


# --- the call table ----------------------------------------------------------------------


def _hex() -> str:
    return uuid.uuid4().hex[:12]


def _window() -> tuple[Any, Any]:
    now = timezone.now()
    return now - timedelta(days=1), now + timedelta(days=1)


@dataclass(frozen=True)
class _Subject:
    """How to make rows and arguments for one repository's inherited methods."""

    repository: type[BaseRepository[Any]]
    row: Callable[..., Any]  # a fresh live row (factory)
    filters: Callable[[Any], dict[str, Any]]  # filters matching that row
    new: Callable[[], dict[str, Any]]  # data for create()
    change: dict[str, Any]  # data for update()
    soft_deletable: bool = False

    def deleted_row(self) -> Any:
        return self.row(deleted=True) if self.soft_deletable else self.row()


SUBJECTS: dict[str, _Subject] = {
    "UserRepository": _Subject(
        UserRepository,
        UserFactory.create,
        lambda u: {"email": u.email},
        lambda: {"email": f"new-{_hex()}@example.com", "first_name": "Ada"},
        {"first_name": "Grace"},
        soft_deletable=True,
    ),
    "CategoryRepository": _Subject(
        CategoryRepository,
        CategoryFactory.create,
        lambda c: {"slug": c.slug},
        lambda: {"name": "New", "slug": f"new-{_hex()}"},
        {"name": "Renamed"},
        soft_deletable=True,
    ),
    "ProductRepository": _Subject(
        ProductRepository,
        ProductFactory.create,
        lambda p: {"sku": p.sku},
        lambda: {"sku": f"NEW-{_hex()}", "name": "New", "price": Decimal("1.50")},
        {"name": "Renamed"},
        soft_deletable=True,
    ),
    "OrderRepository": _Subject(
        OrderRepository,
        OrderFactory.create,
        lambda o: {"number": o.number},
        lambda: {"number": f"ORD-{_hex()}", "subtotal": "1.00", "total": "1.00"},
        {},  # every Order column is read-only; an empty update still bumps the version
    ),
    "SessionRepository": _Subject(
        SessionRepository,
        UserSessionFactory.create,
        lambda s: {"user": str(s.user_id)},
        lambda: {"user": UserFactory.create().pk, "expires_at": timezone.now() + timedelta(days=1)},
        {"user_agent": "curl/8"},
    ),
    "SystemConfigRepository": _Subject(
        SystemConfigRepository,
        SystemConfigFactory.create,
        lambda e: {"key": e.key},
        lambda: {"key": f"new.{_hex()}", "value": [1, 2]},
        {"value": {"enabled": False}},
    ),
    "AuditLogRepository": _Subject(
        AuditLogRepository,
        AuditLogFactory.create,
        lambda a: {"entity_type": a.entity_type, "entity_id": a.entity_id},
        lambda: {"action": "created", "entity_type": "product", "entity_id": "1"},
        {"action": "updated"},
    ),
}

#: Builders for the methods every repository inherits from BaseRepository.
INHERITED: dict[str, Callable[[_Subject], Call]] = {
    "count": lambda s: partial(s.repository().count, s.filters(s.row())),
    "exists": lambda s: partial(s.repository().exists, s.filters(s.row())),
    "find_by_id": lambda s: partial(s.repository().find_by_id, s.row().pk),
    "get_by_id": lambda s: partial(s.repository().get_by_id, s.row().pk),
    "find_first": lambda s: partial(s.repository().find_first, s.filters(s.row())),
    "find_many": lambda s: partial(s.repository().find_many, s.filters(s.row()), limit=10),
    "paginate": lambda s: partial(s.repository().paginate, s.filters(s.row()), page_size=5),
    "paginate_cursor": lambda s: partial(s.repository().paginate_cursor, s.filters(s.row())),
    "create": lambda s: partial(s.repository().create, s.new()),
    "create_many": lambda s: partial(s.repository().create_many, [s.new(), s.new()]),
    "update": lambda s: partial(s.repository().update, s.row().pk, s.change),
    "update_many": lambda s: partial(s.repository().update_many, s.filters(s.row()), s.change),
    "delete": lambda s: partial(s.repository().delete, s.row().pk),
    "delete_many": lambda s: partial(s.repository().delete_many, s.filters(s.row())),
    "soft_delete": lambda s: partial(s.repository().soft_delete, s.row().pk),
    "restore": lambda s: partial(s.repository().restore, s.deleted_row().pk),
}


def _seeded(factory: Callable[[], Any], call: Call) -> Call:
    """Return `call` after creating a row for it to read."""
    factory()
    return call


def _validate_call() -> Call:
    _, token = SessionRepository().create_session(UserFactory.create().pk)
    return partial(SessionRepository().validate, token)


def _descendants_call() -> Call:
    child = CategoryFactory.create(parent=CategoryFactory.create())
    return partial(CategoryRepository().descendants, child.parent_id)


def _move_call() -> Call:
    child = CategoryFactory.create(parent=CategoryFactory.create())
    return partial(CategoryRepository().move, child.pk, CategoryFactory.create().pk)


#: Builders for the methods a repository declares itself (or overrides with another
#: signature). Each returns a zero-argument call with valid arguments over fresh rows.
OWN: dict[Key, Callable[[], Call]] = {
    ("UserRepository", "find_active_users"): lambda: partial(
        UserRepository().find_active_users, {"email": UserFactory.create().email}
    ),
    ("UserRepository", "find_by_email"): lambda: partial(
        UserRepository().find_by_email, UserFactory.create().email
    ),
    ("UserRepository", "set_password"): lambda: partial(
        UserRepository().set_password, UserFactory.create().pk, "violet-staircase-1947"
    ),
    ("UserRepository", "verify_email"): lambda: partial(
        UserRepository().verify_email, UserFactory.create(email_verified=False).pk
    ),
    ("CategoryRepository", "descendants"): _descendants_call,
    ("CategoryRepository", "move"): _move_call,
    ("CategoryRepository", "tree"): lambda: _seeded(
        CategoryFactory.create, CategoryRepository().tree
    ),
    ("ProductRepository", "adjust_stock"): lambda: partial(
        ProductRepository().adjust_stock, ProductFactory.with_stock(5).pk, -2, reason="adjustment"
    ),
    ("ProductRepository", "restock"): lambda: partial(
        ProductRepository().restock, ProductFactory.with_stock(1).pk, 3
    ),
    ("ProductRepository", "find_by_sku"): lambda: partial(
        ProductRepository().find_by_sku, ProductFactory.create().sku
    ),
    ("ProductRepository", "in_category"): lambda: partial(
        ProductRepository().in_category, ProductFactory.create().category_id
    ),
    ("ProductRepository", "low_stock"): lambda: partial(
        ProductRepository().low_stock, ProductFactory.with_stock(2).stock_quantity
    ),
    ("ProductRepository", "search"): lambda: partial(
        ProductRepository().search, ProductFactory.create(name="Walnut bookcase").name
    ),
    ("ProductRepository", "stock_ledger"): lambda: partial(
        ProductRepository().stock_ledger, ProductFactory.with_stock(4).pk
    ),
    ("OrderRepository", "average_order_value"): lambda: partial(
        OrderRepository().average_order_value, *_window()
    ),
    ("OrderRepository", "revenue_by_period"): lambda: partial(
        OrderRepository().revenue_by_period, *_window(), period="week"
    ),
    ("OrderRepository", "top_products"): lambda: partial(
        OrderRepository().top_products, *_window(), limit=5
    ),
    ("OrderRepository", "status_breakdown"): lambda: _seeded(
        OrderFactory.create, OrderRepository().status_breakdown
    ),
    ("OrderRepository", "get_with_items"): lambda: partial(
        OrderRepository().get_with_items, OrderFactory.create().pk
    ),
    ("OrderRepository", "history_for_user"): lambda: partial(
        OrderRepository().history_for_user, OrderFactory.create().user_id, limit=5
    ),
    ("OrderRepository", "place_order"): lambda: partial(
        OrderRepository().place_order,
        UserFactory.create().pk,
        [(ProductFactory.with_stock(3).pk, 2)],
        idempotency_key=f"key-{_hex()}",
    ),
    ("OrderRepository", "transition"): lambda: partial(
        OrderRepository().transition, OrderFactory.create().pk, "paid", note="paid by card"
    ),
    ("OrderRepository", "cancel"): lambda: partial(
        OrderRepository().cancel, OrderFactory.create().pk
    ),
    ("SessionRepository", "create_session"): lambda: partial(
        SessionRepository().create_session, UserFactory.create().pk, ip_address="198.51.100.7"
    ),
    ("SessionRepository", "validate"): _validate_call,
    ("SessionRepository", "revoke"): lambda: partial(
        SessionRepository().revoke, UserSessionFactory.create().pk, reason="logout"
    ),
    ("SessionRepository", "revoke_all"): lambda: partial(
        SessionRepository().revoke_all, UserSessionFactory.create().user_id
    ),
    ("SessionRepository", "active_for_user"): lambda: partial(
        SessionRepository().active_for_user, UserSessionFactory.create().user_id
    ),
    ("SessionRepository", "cleanup_expired"): lambda: partial(
        SessionRepository().cleanup_expired, batch_size=10
    ),
    ("SessionRepository", "suspicious_users"): lambda: partial(
        SessionRepository().suspicious_users, window=timedelta(hours=1), min_distinct_ips=1
    ),
    ("SystemConfigRepository", "get"): lambda: partial(
        SystemConfigRepository().get, SystemConfigFactory.create().key
    ),
    ("SystemConfigRepository", "set"): lambda: partial(
        SystemConfigRepository().set, SystemConfigFactory.create().key, {"enabled": False}
    ),
    ("SystemConfigRepository", "all"): lambda: _seeded(
        SystemConfigFactory.create, SystemConfigRepository().all
    ),
    # SystemConfigRepository.delete takes a key, not an id.
    ("SystemConfigRepository", "delete"): lambda: partial(
        SystemConfigRepository().delete, SystemConfigFactory.create().key
    ),
    ("AuditLogRepository", "by_actor"): lambda: partial(
        AuditLogRepository().by_actor, AuditLogFactory.create(actor=UserFactory.create()).actor_id
    ),
    ("AuditLogRepository", "for_entity"): lambda: partial(
        AuditLogRepository().for_entity, "product", AuditLogFactory.create().entity_id
    ),
}


def _build_calls() -> dict[Key, Callable[[], Call]]:
    calls: dict[Key, Callable[[], Call]] = {}
    for class_name, subject in SUBJECTS.items():
        for method, build in INHERITED.items():
            calls[(class_name, method)] = partial(build, subject)
    calls.update(OWN)
    return calls


CALLS = _build_calls()
