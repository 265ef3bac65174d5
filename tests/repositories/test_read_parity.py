"""Every repository read returns what the ORM returns; saving it back changes nothing.

SPEC §4 and §9: every read returns instances equal, field by field in value *and type*, to
what the model's default manager returns for the same row (Django's converters applied: a
JSON column loads as JSON, a custom field as its Python value), and an instance loaded by
any method and saved back unchanged leaves the stored row identical.

Checked for every commerce repository and for the repositories of the test-only app
`tests.parity_app` (JSON, custom fields with `from_db_value`, decimals, required and
nullable foreign keys under `select_related`, deferred fields, integer and UUID keys, a
schema-qualified table, a `__setattr__` override, a default manager filtering by a context
variable and one prefetching a reverse relation):

- the base reads (`find_by_id`, `get_by_id`, `find_first`, `find_many`, `paginate`,
  `paginate_cursor`: first and later pages, with and without filters) and every domain read
  give instances equal to `Model._default_manager` (`_base_manager` with include_deleted)
  reading the repository's declared `select_related`, `prefetch_related` and
  `deferred_fields`, with the same deferred fields, the same joined and prefetched objects
  (one level deep), and values `refresh_from_db()` does not change;
- list reads return the rows the ORM returns, in the ORM's order;
- `save()` of any loaded instance leaves the stored row identical (`to_jsonb` of the row and
  `jsonb_typeof` of each JSON column), except the columns save() rewrites by design, named
  in each case (`Widget.updated_at`, auto_now). Audit rows are never saved back: the
  database refuses UPDATE on the append-only audit table, whoever loaded them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, models
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from zeal import zeal_ignore

from domain.models import AuditLog, Category, Order, Product, SystemConfig, User, UserSession
from repositories import CategoryNode, CategoryRepository, ProductRepository
from repositories.audit_log import AuditLogRepository
from repositories.configuration import SystemConfigRepository
from repositories.core.base import BaseRepository
from repositories.errors import NotFoundError
from repositories.orders import OrderRepository
from repositories.sessions import SessionRepository, hash_token
from repositories.users import UserRepository
from tests.factories import (
    AuditLogFactory,
    CategoryFactory,
    OrderFactory,
    OrderItemFactory,
    ProductFactory,
    SystemConfigFactory,
    UserFactory,
    UserSessionFactory,
)
from tests.parity_app.factories import (
    BookFactory,
    GadgetFactory,
    OwnerFactory,
    ShelfFactory,
    TenantNoteFactory,
    TrackedItemFactory,
    WidgetFactory,
)
from tests.parity_app.models import Money, Shelf, TenantNote, TrackedItem, current_tenant
from tests.parity_app.repositories import (
    BookRepository,
    GadgetRepository,
    OwnerRepository,
    ShelfRepository,
    TenantNoteRepository,
    TrackedItemRepository,
    WidgetRepository,
)

pytestmark = pytest.mark.django_db

Repository = BaseRepository[Any]

#: The tenant every test runs as (TenantNote's default manager reads it at query time).
TENANT = 7


@pytest.fixture(autouse=True)
def _tenant() -> Iterator[None]:
    token = current_tenant.set(TENANT)
    yield
    current_tenant.reset(token)


# --- comparison helpers --------------------------------------------------------------------


def typed(value: Any) -> Any:
    """`value` with its type at every level, so 1, 1.0, "1" and Decimal("1.0") all differ,
    a JSON object differs from its text, and a datetime's time zone counts."""
    if isinstance(value, dict):
        return ("dict", {key: typed(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(item) for item in value])
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), repr(value.tzinfo))
    if isinstance(value, Money):
        return ("Money", str(value.amount))
    return (type(value).__qualname__, value)


def field_values(instance: models.Model) -> dict[str, Any]:
    """The typed value of every loaded concrete field, by attname (no query is made)."""
    deferred = instance.get_deferred_fields()
    return {
        field.attname: typed(instance.__dict__[field.attname])
        for field in instance._meta.concrete_fields
        if field.attname not in deferred
    }


def _cached_relations(instance: models.Model) -> dict[str, models.ForeignObject[Any, Any]]:
    """The forward relations whose object is loaded (select_related), by name."""
    return {
        field.name: field
        for field in instance._meta.concrete_fields
        if isinstance(field, models.ForeignObject) and field.is_cached(instance)
    }


def _prefetched(instance: models.Model) -> dict[str, list[models.Model]]:
    cache = getattr(instance, "_prefetched_objects_cache", {})
    loaded = {}
    for name, queryset in cache.items():
        result = getattr(queryset, "_result_cache", queryset)
        assert result is not None, f"{name} is in the prefetch cache but was never loaded"
        loaded[name] = list(result)
    return loaded


def assert_same_instance(actual: models.Model, expected: models.Model, *, depth: int = 1) -> None:
    """Assert `actual` is `expected` field by field, in value and type.

    Same class, state (not adding, same alias), deferred fields and values of every loaded
    concrete field; with `depth` > 0 also the same joined objects (compared with depth - 1)
    and the same prefetch cache (its objects compared like `actual`).
    """
    label = f"{type(expected).__name__} {expected.pk!r}"
    assert type(actual) is type(expected), label
    assert (actual._state.adding, actual._state.db) == (False, expected._state.db), label
    assert actual.get_deferred_fields() == expected.get_deferred_fields(), label
    assert field_values(actual) == field_values(expected), label
    if depth <= 0:
        return
    assert _cached_relations(actual).keys() == _cached_relations(expected).keys(), label
    for name, field in _cached_relations(expected).items():
        mine, theirs = field.get_cached_value(actual), field.get_cached_value(expected)
        if theirs is None or mine is None:
            assert mine is theirs, f"{label}.{name}"
        else:
            assert_same_instance(mine, theirs, depth=depth - 1)
    mine_prefetched, theirs_prefetched = _prefetched(actual), _prefetched(expected)
    assert mine_prefetched.keys() == theirs_prefetched.keys(), label
    for name, theirs_objects in theirs_prefetched.items():
        mine_objects = mine_prefetched[name]
        assert [o.pk for o in mine_objects] == [o.pk for o in theirs_objects], f"{label}.{name}"
        for mine_object, theirs_object in zip(mine_objects, theirs_objects, strict=True):
            assert_same_instance(mine_object, theirs_object, depth=depth)


def assert_refresh_changes_nothing(instance: models.Model) -> None:
    """`refresh_from_db()` of a loaded instance leaves its values and deferred fields as is."""
    before, deferred = field_values(instance), instance.get_deferred_fields()
    with zeal_ignore():
        instance.refresh_from_db()
    assert instance.get_deferred_fields() == deferred
    assert field_values(instance) == before


def orm_queryset(repository: Repository, *, include_deleted: bool = False) -> models.QuerySet:
    """What the repository declares it reads, built with the plain ORM."""
    model = repository.model
    manager = model._base_manager if include_deleted else model._default_manager
    queryset = manager.all()
    if repository.select_related:
        queryset = queryset.select_related(*repository.select_related)
    if repository.prefetch_related:
        queryset = queryset.prefetch_related(*repository.prefetch_related)
    if repository.deferred_fields:
        queryset = queryset.defer(*repository.deferred_fields)
    return queryset


def orm_instance(repository: Repository, pk: Any, *, include_deleted: bool = False) -> Any:
    """The ORM's instance of one row (a deliberate query per compared row: zeal ignores it)."""
    with zeal_ignore():
        return orm_queryset(repository, include_deleted=include_deleted).get(pk=pk)


def _by_key(read: Callable[[Any], Any], rows: list[Any]) -> list[Any]:
    """`read(pk)` of each row: one deliberate lookup per row, which zeal would flag."""
    with zeal_ignore():
        return [read(row.pk) for row in rows]


def assert_reads_like_orm(
    repository: Repository, loaded: Sequence[Any], *, include_deleted: bool = False
) -> None:
    assert loaded, "the read returned nothing: nothing would be compared"
    for instance in loaded:
        assert instance is not None
        expected = orm_instance(repository, instance.pk, include_deleted=include_deleted)
        assert_same_instance(instance, expected)
        assert_refresh_changes_nothing(instance)


def stored_row(model: type[models.Model], pk: Any) -> dict[str, Any]:
    """The row as PostgreSQL holds it: `to_jsonb(row)` plus `jsonb_typeof` of JSON columns."""
    quote = connection.ops.quote_name
    json_columns = [
        str(f.column) for f in model._meta.concrete_fields if isinstance(f, models.JSONField)
    ]
    kinds = "".join(f", jsonb_typeof(t.{quote(column)})" for column in json_columns)
    sql = (
        f"SELECT to_jsonb(t){kinds} FROM {quote(model._meta.db_table)} t"
        f" WHERE t.{quote(str(model._meta.pk.column))} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    assert row is not None, f"{model.__name__} {pk!r} is not stored"
    document = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    return {"row": document, "jsonb_typeof": dict(zip(json_columns, row[1:], strict=True))}


def assert_save_keeps_row(instance: models.Model, rewritten: frozenset[str]) -> None:
    """Saving `instance` unchanged leaves its row as it was, but for `rewritten` columns."""
    model = type(instance)
    before = stored_row(model, instance.pk)
    instance.save()
    after = stored_row(model, instance.pk)
    for column in rewritten:
        before["row"].pop(column)
        after["row"].pop(column)
    assert after == before, f"{model.__name__} {instance.pk!r}"


def default_orm_order(repository: Repository) -> list[str]:
    """The repository's default order as ORM terms, the key last in the last key's direction."""
    keys = list(repository.default_order)
    descending = bool(keys) and keys[-1].startswith("-")
    return [*keys, "-pk" if descending else "pk"]


# --- the repositories and their rows -------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A repository, rows for it, and a filter with its ORM equivalent.

    `build` creates live rows (at least 4, at least 3 of them matching `filters`, at least
    one not) plus, for soft-deletable models, a deleted one; it returns the live rows.
    `rewritten` names the columns the model's own save() changes by design.
    """

    repository: type[Repository]
    build: Callable[[], list[Any]]
    filters: dict[str, Any]
    where: Q
    rewritten: frozenset[str] = frozenset()
    saves: bool = True
    soft_deletable: bool = False

    @property
    def id(self) -> str:
        return self.repository.__name__


def _users() -> list[Any]:
    users = [UserFactory.create(last_name=f"Parity {n}") for n in range(3)]
    users.append(UserFactory.create(last_name="Other"))
    UserFactory.create(last_name="Parity gone", deleted=True)
    return users


def _categories() -> list[Any]:
    root = CategoryFactory.create(name="Parity root")
    rows = [root, CategoryFactory.create(name="Parity child", parent=root)]
    rows.append(CategoryFactory.create(name="Parity leaf", parent=rows[1]))
    rows.append(CategoryFactory.create(name="Other"))
    CategoryFactory.create(name="Parity gone", deleted=True)
    return rows


def _products() -> list[Any]:
    category = CategoryFactory.create()
    rows = [
        ProductFactory.create(name="Parity lamp", category=category, price=Decimal("12.50")),
        ProductFactory.create(name="Parity desk", category=None, price=Decimal("120")),
        ProductFactory.create(name="Parity chair", category=category, stock_quantity=4),
        ProductFactory.create(name="Other", category=category, is_active=False),
    ]
    ProductFactory.create(name="Parity gone", deleted=True)
    return rows


def _orders() -> list[Any]:
    rows = [OrderFactory.create(total=Decimal("10.00") * n) for n in range(1, 4)]
    rows.append(OrderFactory.create(status="paid", total=Decimal("7.25")))
    for order in rows[:2]:
        OrderItemFactory.create(order=order)
    OrderItemFactory.create(order=rows[0], product=ProductFactory.create(name="A first"))
    return rows


def _sessions() -> list[Any]:
    user = UserFactory.create()
    rows = [UserSessionFactory.create(user=user) for _ in range(2)]
    rows.append(UserSessionFactory.create(user=user, ip_address=None, last_seen_at=None))
    rows.append(UserSessionFactory.create())
    return rows


def _audit_logs() -> list[Any]:
    actor = UserFactory.create()
    return [
        AuditLogFactory.create(changes={"price": {"old": "1.00", "new": "2.50"}}, actor=actor),
        AuditLogFactory.create(changes={"n": 1, "f": 1.5, "ok": False, "l": [1, "x", None]}),
        AuditLogFactory.create(changes={}, ip_address="192.0.2.1", actor=actor),
        AuditLogFactory.create(entity_type="order", changes={"status": "paid"}),
    ]


def _config() -> list[Any]:
    return [
        SystemConfigFactory.create(key="parity.object", value={"on": True, "n": 3, "r": 0.5}),
        SystemConfigFactory.create(key="parity.list", value=[1, 2.5, "x", None]),
        SystemConfigFactory.create(key="parity.text", value="plain text"),
        SystemConfigFactory.create(key="other.number", value=42),
    ]


def _owners() -> list[Any]:
    return [*(OwnerFactory.create(name=f"Parity owner {n}") for n in range(3)), OwnerFactory()]


def _widgets() -> list[Any]:
    owner, reviewer = OwnerFactory.create(), OwnerFactory.create()
    rows = [
        WidgetFactory.create(name="Parity widget object", owner=owner),
        WidgetFactory.create(
            name="Parity widget list",
            owner=owner,
            reviewer=reviewer,
            payload=["x", 1, 2.5, None, {"deep": [True]}],
            tags=[],
            amount=Decimal("0.10"),
        ),
        WidgetFactory.create(name="Parity widget text", payload="just text", tags=["solo"]),
        WidgetFactory.create(name="Other widget", payload=42, amount=Decimal("1000.00")),
    ]
    WidgetFactory.create(name="Parity widget gone", deleted=True)
    return rows


def _gadgets() -> list[Any]:
    rows = [GadgetFactory.create(name=f"Parity gadget {n}") for n in range(3)]
    rows.append(GadgetFactory.create(name="Other gadget", specs=["a", 1], price=Money(Decimal(0))))
    return rows


def _tracked_items() -> list[Any]:
    rows = [TrackedItemFactory.create(name=f"Parity item {n}", quantity=n) for n in range(3)]
    rows.append(TrackedItemFactory.create(name="Other item", labels=[]))
    return rows


def _tenant_notes() -> list[Any]:
    rows = [TenantNoteFactory.create(tenant=TENANT, title=f"Parity note {n}") for n in range(3)]
    rows.append(TenantNoteFactory.create(tenant=TENANT, title="Other note"))
    # Another tenant's notes, first in every order: never read.
    TenantNoteFactory.create(tenant=TENANT + 1, title="A foreign note")
    TenantNoteFactory.create(tenant=TENANT + 1, title="Parity foreign note")
    return rows


def _shelves() -> list[Any]:
    rows = [ShelfFactory.create(name=f"Parity shelf {n}") for n in range(3)]
    rows.append(ShelfFactory.create(name="Other shelf"))
    for shelf, books in zip(rows, (2, 0, 1, 1), strict=True):
        BookFactory.create_batch(books, shelf=shelf)
    return rows


def _books() -> list[Any]:
    shelf = ShelfFactory.create()
    rows = [BookFactory.create(title=f"Parity book {n}", shelf=shelf) for n in range(2)]
    rows.append(BookFactory.create(title="Parity book elsewhere"))
    rows.append(BookFactory.create(title="Other book", shelf=shelf))
    return rows


CASES = [
    Case(
        UserRepository,
        _users,
        {"name": "parity"},
        Q(last_name__icontains="parity"),
        soft_deletable=True,
    ),
    Case(
        CategoryRepository,
        _categories,
        {"name": "parity"},
        Q(name__icontains="parity"),
        soft_deletable=True,
    ),
    Case(
        ProductRepository,
        _products,
        {"name": "parity"},
        Q(name__icontains="parity"),
        soft_deletable=True,
    ),
    Case(OrderRepository, _orders, {"status": "pending"}, Q(status="pending")),
    Case(SessionRepository, _sessions, {"ip_address": "192.0.2.10"}, Q(ip_address="192.0.2.10")),
    # Audit rows are not saved back: the database refuses any UPDATE of audit_logs.
    Case(
        AuditLogRepository,
        _audit_logs,
        {"entity_type": "product"},
        Q(entity_type="product"),
        saves=False,
    ),
    Case(SystemConfigRepository, _config, {"key_prefix": "parity."}, Q(key__startswith="parity.")),
    Case(OwnerRepository, _owners, {"name": "parity"}, Q(name__icontains="parity")),
    # Widget.updated_at is auto_now: every save() rewrites it, by design.
    Case(
        WidgetRepository,
        _widgets,
        {"name": "parity"},
        Q(name__icontains="parity"),
        rewritten=frozenset({"updated_at"}),
        soft_deletable=True,
    ),
    Case(GadgetRepository, _gadgets, {"name": "parity"}, Q(name__icontains="parity")),
    Case(TrackedItemRepository, _tracked_items, {"name": "parity"}, Q(name__icontains="parity")),
    Case(TenantNoteRepository, _tenant_notes, {"title": "parity"}, Q(title__icontains="parity")),
    Case(ShelfRepository, _shelves, {"name": "parity"}, Q(name__icontains="parity")),
    Case(BookRepository, _books, {"title": "parity"}, Q(title__icontains="parity")),
]
CASE_IDS = [case.id for case in CASES]


# --- the base reads ------------------------------------------------------------------------


def _next_page(repository: Repository, filters: dict[str, Any] | None) -> list[Any]:
    first = repository.paginate_cursor(filters, limit=2)
    assert first.has_next and first.next_cursor
    return repository.paginate_cursor(filters, after=first.next_cursor, limit=2).items


@dataclass(frozen=True)
class Read:
    """A base read; `window` is the slice of the ORM's ordered rows it returns (None: the
    rows asked for by key), of the rows matching the case's filters when `filtered`."""

    call: Callable[[Repository, Case, list[Any]], list[Any]]
    window: slice | None = None
    filtered: bool = False


READS = {
    "find_by_id": Read(lambda repo, case, rows: _by_key(repo.find_by_id, rows)),
    "get_by_id": Read(lambda repo, case, rows: _by_key(repo.get_by_id, rows)),
    "find_first": Read(lambda repo, case, rows: [repo.find_first()], slice(0, 1)),
    "find_first_filtered": Read(
        lambda repo, case, rows: [repo.find_first(case.filters)], slice(0, 1), filtered=True
    ),
    "find_many": Read(lambda repo, case, rows: repo.find_many(), slice(None)),
    "find_many_filtered": Read(
        lambda repo, case, rows: repo.find_many(case.filters), slice(None), filtered=True
    ),
    "paginate": Read(lambda repo, case, rows: repo.paginate(page_size=2).items, slice(0, 2)),
    "paginate_later_page": Read(
        lambda repo, case, rows: repo.paginate(page=2, page_size=2).items, slice(2, 4)
    ),
    "paginate_filtered_later_page": Read(
        lambda repo, case, rows: repo.paginate(case.filters, page=2, page_size=2).items,
        slice(2, 4),
        filtered=True,
    ),
    "paginate_cursor": Read(
        lambda repo, case, rows: repo.paginate_cursor(limit=2).items, slice(0, 2)
    ),
    "paginate_cursor_next_page": Read(lambda repo, case, rows: _next_page(repo, None), slice(2, 4)),
    "paginate_cursor_filtered": Read(
        lambda repo, case, rows: repo.paginate_cursor(case.filters, limit=2).items,
        slice(0, 2),
        filtered=True,
    ),
    "paginate_cursor_filtered_next_page": Read(
        lambda repo, case, rows: _next_page(repo, case.filters), slice(2, 4), filtered=True
    ),
}
ORDERED_READS = [name for name, read in READS.items() if read.window is not None]


@pytest.mark.parametrize("read", READS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_base_read_returns_the_orm_instance(case: Case, read: str) -> None:
    rows = case.build()
    repository = case.repository()
    loaded = READS[read].call(repository, case, rows)
    assert_reads_like_orm(repository, loaded)


@pytest.mark.parametrize("read", ORDERED_READS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_base_list_read_returns_the_orm_rows_in_order(case: Case, read: str) -> None:
    rows = case.build()
    repository = case.repository()
    spec = READS[read]
    assert spec.window is not None
    queryset = orm_queryset(repository).prefetch_related(None)
    if spec.filtered:
        queryset = queryset.filter(case.where)
    ordered = list(queryset.order_by(*default_orm_order(repository)).values_list("pk", flat=True))
    loaded = spec.call(repository, case, rows)
    assert [instance.pk for instance in loaded] == ordered[spec.window]
    assert loaded


@pytest.mark.parametrize("read", ["find_many", "paginate", "paginate_cursor"])
@pytest.mark.parametrize(
    "case", [c for c in CASES if c.soft_deletable], ids=[c.id for c in CASES if c.soft_deletable]
)
def test_read_with_deleted_rows_returns_the_base_manager_instance(case: Case, read: str) -> None:
    case.build()
    repository = case.repository()
    if read == "find_many":
        loaded = repository.find_many(include_deleted=True)
    elif read == "paginate":
        loaded = repository.paginate(include_deleted=True, page_size=100).items
    else:
        loaded = repository.paginate_cursor(include_deleted=True, limit=100).items
    assert any(instance.deleted_at is not None for instance in loaded)
    assert_reads_like_orm(repository, loaded, include_deleted=True)


@pytest.mark.parametrize("read", READS)
@pytest.mark.parametrize(
    "case", [c for c in CASES if c.saves], ids=[c.id for c in CASES if c.saves]
)
def test_base_read_instance_saved_unchanged_keeps_the_stored_row(case: Case, read: str) -> None:
    rows = case.build()
    loaded = READS[read].call(case.repository(), case, rows)
    assert loaded
    for instance in loaded:
        assert_save_keeps_row(instance, case.rewritten)


# --- the domain reads ----------------------------------------------------------------------


@dataclass
class World:
    """A small shop: a user with orders, sessions and audit rows; a category tree."""

    user: User
    root: Category
    child: Category
    lamp: Product
    token: str
    orders: list[Order]


def _world() -> World:
    user = UserFactory.create(email="Parity.User@example.com", last_name="Parity")
    UserFactory.create(is_active=False)
    UserFactory.create(deleted=True)
    root = CategoryFactory.create(name="Parity root")
    child = CategoryFactory.create(name="Parity child", parent=root)
    leaf = CategoryFactory.create(name="Parity leaf", parent=child)
    CategoryFactory.create(name="Parity hidden", parent=child, deleted=True)
    lamp = ProductFactory.with_stock(3, name="Parity lamp", sku="PAR-LAMP", category=root)
    ProductFactory.with_stock(5, name="Parity desk", sku="PAR-DESK", category=child)
    ProductFactory.create(name="Parity chair", sku="PAR-CHAIR", category=leaf, price=Decimal(7))
    ProductFactory.create(name="Parity stool", category=leaf, is_active=False)
    orders = [OrderFactory.create(user=user, total=Decimal("9.99") * n) for n in range(1, 4)]
    for order in orders:
        OrderItemFactory.create(order=order, product=lamp)
    OrderItemFactory.create(order=orders[0])
    token = "parity-session-token"
    UserSessionFactory.create(user=user, token_hash=hash_token(token))
    UserSessionFactory.create(user=user, ip_address=None)
    AuditLogFactory.create(
        actor=user, entity_id=str(lamp.pk), changes={"price": {"old": "1.00", "new": 2}}
    )
    AuditLogFactory.create(actor=user, entity_id=str(lamp.pk), changes={"l": [1, 1.5, None]})
    AuditLogFactory.create(actor=user, entity_type="order", changes={})
    return World(user, root, child, lamp, token, orders)


def _history_next_page(world: World) -> list[Any]:
    repository = OrderRepository()
    first = repository.history_for_user(world.user.pk, limit=2)
    assert first.has_next and first.next_cursor
    return repository.history_for_user(world.user.pk, after=first.next_cursor, limit=2).items


#: name: (the repository whose declarations the ORM reads, the read)
DOMAIN_READS: dict[str, tuple[type[Repository], Callable[[World], list[Any]]]] = {
    "ProductRepository.search": (ProductRepository, lambda w: ProductRepository().search("parity")),
    "ProductRepository.search_filtered": (
        ProductRepository,
        lambda w: ProductRepository().search("parity", filters={"currency": "EUR"}),
    ),
    "ProductRepository.in_category": (
        ProductRepository,
        lambda w: ProductRepository().in_category(w.root.pk),
    ),
    "ProductRepository.in_category_direct": (
        ProductRepository,
        lambda w: ProductRepository().in_category(w.child.pk, include_descendants=False),
    ),
    "ProductRepository.find_by_sku": (
        ProductRepository,
        lambda w: [ProductRepository().find_by_sku("PAR-LAMP")],
    ),
    "ProductRepository.low_stock": (ProductRepository, lambda w: ProductRepository().low_stock(5)),
    "OrderRepository.history_for_user": (
        OrderRepository,
        lambda w: OrderRepository().history_for_user(w.user.pk, limit=2).items,
    ),
    "OrderRepository.history_for_user_next_page": (OrderRepository, _history_next_page),
    "OrderRepository.get_with_items": (
        OrderRepository,
        lambda w: [OrderRepository().get_with_items(w.orders[0].pk)],
    ),
    "OrderRepository.place_order": (
        OrderRepository,
        lambda w: [OrderRepository().place_order(w.user.pk, [(w.lamp.pk, 2)])],
    ),
    "CategoryRepository.descendants": (
        CategoryRepository,
        lambda w: CategoryRepository().descendants(w.root.pk),
    ),
    "UserRepository.find_by_email": (
        UserRepository,
        lambda w: [UserRepository().find_by_email("parity.user@EXAMPLE.com")],
    ),
    "UserRepository.find_active_users": (
        UserRepository,
        lambda w: UserRepository().find_active_users(),
    ),
    "SessionRepository.active_for_user": (
        SessionRepository,
        lambda w: SessionRepository().active_for_user(w.user.pk),
    ),
    "SessionRepository.validate": (
        SessionRepository,
        lambda w: [SessionRepository().validate(w.token)],
    ),
    "AuditLogRepository.for_entity": (
        AuditLogRepository,
        lambda w: AuditLogRepository().for_entity("product", w.lamp.pk),
    ),
    "AuditLogRepository.by_actor": (
        AuditLogRepository,
        lambda w: AuditLogRepository().by_actor(w.user.pk),
    ),
}
SAVED_DOMAIN_READS = [
    name for name, (repo, _) in DOMAIN_READS.items() if repo is not AuditLogRepository
]


@pytest.mark.parametrize("read", DOMAIN_READS)
def test_domain_read_returns_the_orm_instance(read: str) -> None:
    repository, call = DOMAIN_READS[read]
    loaded = call(_world())
    assert_reads_like_orm(repository(), loaded)


@pytest.mark.parametrize("read", SAVED_DOMAIN_READS)
def test_domain_read_instance_saved_unchanged_keeps_the_stored_row(read: str) -> None:
    _, call = DOMAIN_READS[read]
    loaded = call(_world())
    assert loaded
    for instance in loaded:
        assert_save_keeps_row(instance, frozenset())


def test_search_returns_the_same_products_and_ranks_with_and_without_filters() -> None:
    _world()
    repository = ProductRepository()
    plain = repository.search("parity")
    filtered = repository.search("parity", filters={"currency": "EUR"})
    assert [p.pk for p in plain] == [p.pk for p in filtered]
    assert [typed(p.rank) for p in plain] == [typed(p.rank) for p in filtered]  # type: ignore[attr-defined]
    assert all(isinstance(p.rank, float) for p in plain)  # type: ignore[attr-defined]
    for mine, theirs in zip(plain, filtered, strict=True):
        assert_same_instance(mine, theirs)


def test_descendants_carry_their_depth_as_an_int() -> None:
    world = _world()
    found = CategoryRepository().descendants(world.root.pk)
    assert [(c.name, typed(c.depth)) for c in found] == [  # type: ignore[attr-defined]
        ("Parity child", ("int", 1)),
        ("Parity leaf", ("int", 2)),
    ]


def test_category_tree_nodes_hold_the_orm_values() -> None:
    world = _world()
    nodes = [node for root in CategoryRepository().tree() for node in root.walk()]
    live = {c.pk: c for c in Category._default_manager.all()}
    assert {node.id for node in nodes} == set(live)
    assert world.root.pk in live
    for node in nodes:
        expected = live[node.id]
        assert typed((node.id, node.name, node.slug, node.parent_id)) == typed(
            (expected.pk, expected.name, expected.slug, expected.parent_id)
        )
        assert isinstance(node, CategoryNode)


def test_config_get_returns_the_orm_value_and_type() -> None:
    entries = [*_config(), SystemConfigFactory.create(key="parity.null", value=None)]
    repository = SystemConfigRepository()
    for entry in entries:
        with zeal_ignore():  # one deliberate lookup per entry
            expected = SystemConfig._default_manager.get(pk=entry.pk).value
            found = repository.get(entry.key, default="absent")
        assert typed(found) == typed(expected), entry.key


def test_config_all_returns_the_orm_values_and_types() -> None:
    _config()
    expected = {e.key: e.value for e in SystemConfig._default_manager.order_by("key")}
    assert typed(SystemConfigRepository().all()) == typed(expected)
    assert list(SystemConfigRepository().all()) == list(expected)


# --- models with their own loading rules ---------------------------------------------------

TRACKED = next(case for case in CASES if case.repository is TrackedItemRepository)


@pytest.mark.parametrize("read", READS)
def test_tracked_item_loaded_by_read_has_no_changes_until_assigned(read: str) -> None:
    rows = TRACKED.build()
    loaded = READS[read].call(TrackedItemRepository(), TRACKED, rows)
    assert loaded
    for item in loaded:
        with zeal_ignore():  # one deliberate lookup per item
            fresh = TrackedItem._default_manager.get(pk=item.pk)
        assert item.changed_fields == fresh.changed_fields
        assert item.changed_fields == frozenset()
        item.quantity = item.quantity  # the same value: not a change
        item.labels = list(item.labels)
        assert item.changed_fields == frozenset()
        item.quantity += 1
        item.labels = [*item.labels, "changed"]
        assert item.changed_fields == {"quantity", "labels"}
        item.save()
        with zeal_ignore():
            saved = TrackedItem._default_manager.get(pk=item.pk)
        assert (saved.quantity, saved.labels) == (item.quantity, item.labels)


def _visible(read: str, repository: TenantNoteRepository, notes: list[TenantNote]) -> set[int]:
    """The keys of `notes` that `read` of `repository` returns now."""
    if read == "find_by_id":
        return {found.pk for found in _by_key(repository.find_by_id, notes) if found}
    if read == "get_by_id":
        visible = set()
        for note in notes:
            with contextlib.suppress(NotFoundError), zeal_ignore():
                visible.add(repository.get_by_id(note.pk).pk)
        return visible
    if read == "find_first":
        first = repository.find_first()
        return set() if first is None else {first.pk}
    if read == "find_many":
        return {n.pk for n in repository.find_many()}
    if read == "paginate":
        return {n.pk for n in repository.paginate(page_size=100).items}
    if read == "paginate_cursor":
        return {n.pk for n in repository.paginate_cursor(limit=100).items}
    assert read == "count"
    return set(range(repository.count()))


@pytest.mark.parametrize(
    "read",
    ["find_by_id", "get_by_id", "find_first", "find_many", "paginate", "paginate_cursor", "count"],
)
def test_tenant_repository_reads_the_tenant_current_at_call_time(read: str) -> None:
    first = [TenantNoteFactory.create(tenant=1, title="Note of one")]
    second = TenantNoteFactory.create_batch(2, tenant=2, title="Note of two")
    notes = first + second

    def expected(rows: list[TenantNote]) -> set[int]:
        if read == "count":
            return set(range(len(rows)))
        if read == "find_first":
            return {min(rows, key=lambda n: (n.title, n.pk)).pk} if rows else set()
        return {n.pk for n in rows}

    repository = TenantNoteRepository()
    token = current_tenant.set(1)
    try:
        assert _visible(read, repository, notes) == expected(first)
        current_tenant.set(2)
        assert _visible(read, repository, notes) == expected(second)  # the same instance
        assert _visible(read, TenantNoteRepository(), notes) == expected(second)
        current_tenant.set(None)
        assert _visible(read, repository, notes) == set()
        current_tenant.set(1)
        assert _visible(read, TenantNoteRepository(), notes) == expected(first)
    finally:
        current_tenant.reset(token)


def _orm_shelf_page() -> list[Any]:
    """An offset page as the ORM reads it: a count, then the rows (and their books)."""
    assert Shelf._default_manager.count()
    return list(Shelf._default_manager.order_by("name", "pk")[:2])


def _shelf_orm_reads() -> dict[str, tuple[Callable[[Any], list[Any]], Callable[[Any], list[Any]]]]:
    """read: (the repository's read of a shelf, the plain ORM's equivalent)."""
    ordered = ("name", "pk")
    return {
        "find_by_id": (
            lambda shelf: [ShelfRepository().find_by_id(shelf.pk)],
            lambda shelf: [Shelf._default_manager.get(pk=shelf.pk)],
        ),
        "get_by_id": (
            lambda shelf: [ShelfRepository().get_by_id(shelf.pk)],
            lambda shelf: [Shelf._default_manager.get(pk=shelf.pk)],
        ),
        "find_first": (
            lambda shelf: [ShelfRepository().find_first()],
            lambda shelf: [Shelf._default_manager.order_by(*ordered).first()],
        ),
        "find_many": (
            lambda shelf: ShelfRepository().find_many(),
            lambda shelf: list(Shelf._default_manager.order_by(*ordered)),
        ),
        "paginate": (
            lambda shelf: ShelfRepository().paginate(page_size=2).items,
            lambda shelf: _orm_shelf_page(),
        ),
        "paginate_cursor": (
            lambda shelf: ShelfRepository().paginate_cursor(limit=2).items,
            lambda shelf: list(Shelf._default_manager.order_by(*ordered)[:3])[:2],
        ),
    }


@pytest.mark.parametrize("read", list(_shelf_orm_reads()))
def test_prefetching_manager_read_fills_the_prefetch_cache_in_the_orm_queries(read: str) -> None:
    shelves = _shelves()
    ShelfRepository()  # its class set-up is not what is counted
    mine_read, orm_read = _shelf_orm_reads()[read]
    with CaptureQueriesContext(connection) as mine_queries:
        mine = mine_read(shelves[0])
    with CaptureQueriesContext(connection) as orm_queries:
        theirs = orm_read(shelves[0])
    assert len(mine_queries) == len(orm_queries)
    assert [shelf.pk for shelf in mine] == [shelf.pk for shelf in theirs]
    assert any(_prefetched(shelf).get("books") for shelf in theirs)
    for mine_shelf, theirs_shelf in zip(mine, theirs, strict=True):
        assert set(getattr(mine_shelf, "_prefetched_objects_cache", {})) == {"books"}
        assert_same_instance(mine_shelf, theirs_shelf)


def test_widget_reads_leave_notes_deferred_and_load_both_owners() -> None:
    rows = _widgets()
    widget = WidgetRepository().get_by_id(rows[1].pk)
    assert widget.get_deferred_fields() == {"notes"}
    assert typed(widget.owner.balance) == typed(rows[1].owner.balance)
    assert widget.reviewer is not None
    assert typed(widget.payload) == typed(["x", 1, 2.5, None, {"deep": [True]}])
    assert typed(widget.tags) == typed([])
    assert typed(widget.amount) == ("Decimal", "0.10")


def test_schema_qualified_table_reads_from_its_schema() -> None:
    rows = _gadgets()
    gadget = GadgetRepository().get_by_id(rows[0].pk)
    assert typed(gadget.specs) == typed({"volts": 230, "ratio": 0.5, "tags": ["x"]})
    assert typed(gadget.price) == ("Money", "19.90")


def test_session_and_audit_reads_load_their_orm_types() -> None:
    world = _world()
    session = SessionRepository().validate(world.token)
    assert session is not None and isinstance(session, UserSession)
    entries = AuditLogRepository().for_entity("product", world.lamp.pk)
    assert isinstance(entries[0], AuditLog)
    assert typed(entries[0].changes) == typed({"price": {"old": "1.00", "new": 2}})
