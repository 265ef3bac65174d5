"""The base repository contract (SPEC §4, §5, §7, §9), one suite run over every repository.

Each test is parametrized over `CASES`: the commerce repositories (Product, Category,
User: UUID keys from the database, `deleted_at`, `version`, `updated_at`, audited) and
the example app's (tests/example_app: Note, an integer key, JSON, no soft delete, no
version, not audited; Document, a UUID key from Python, a custom field, soft delete under
`removed_at`, a version under `revision`, `modified` as the change time, audited). What a
case lacks is not skipped: the test asserts the documented refusal instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, models
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from zeal import zeal_ignore

from domain.models import AuditLog
from repositories.audit import audit_context
from repositories.categories import CategoryRepository
from repositories.core.base import BaseRepository
from repositories.core.pagination import max_page_size
from repositories.errors import (
    InvalidQueryError,
    NotFoundError,
    StaleObjectError,
    ValidationError,
)
from repositories.products import ProductRepository
from repositories.transactions import atomic
from repositories.users import UserRepository
from tests.example_app.factories import DocumentFactory, NoteFactory
from tests.example_app.repositories import DocumentRepository, NoteRepository
from tests.factories import CategoryFactory, ProductFactory, UserFactory


@dataclass(frozen=True)
class Case:
    """How to exercise one repository class with the generic suite."""

    name: str
    repository: type[BaseRepository[Any]]
    #: factory-boy factory of existing rows (written with the ORM, not the repository).
    factory: Any
    #: Valid `create` data; rows for different `n` never clash on unique fields.
    make_data: Callable[[int], dict[str, Any]]
    #: Valid `update` data (no unique fields, so it can go to many rows at once).
    update_data: dict[str, Any]
    #: A filter matching exactly `row` among the factory's rows.
    filter_one: Callable[[Any], dict[str, Any]]
    #: A sortable field whose values differ between the factory's rows.
    sort_field: str
    #: More sortable fields, whose values may tie (the key then decides).
    other_sorts: tuple[str, ...]
    soft_delete_field: str | None
    version_field: str | None
    updated_at_field: str | None
    audited: bool
    #: Values of the fields' own Python types as the ORM takes them (a JSON document, a
    #: custom field's value), for create and update.
    typed_data: dict[str, Any] = field(default_factory=dict)
    #: {test function name: reason}: a core bug this case shows, run as a strict xfail.
    core_bugs: dict[str, str] = field(default_factory=dict)

    @property
    def model(self) -> type[models.Model]:
        return self.repository.model

    def rows(self, count: int) -> list[Any]:
        return list(self.factory.create_batch(count))


CASES = [
    Case(
        name="product",
        repository=ProductRepository,
        factory=ProductFactory,
        make_data=lambda n: {
            "sku": f"CONTRACT-{n}",
            "name": f"Contract product #{n}#",
            "price": Decimal("12.50"),
            "currency": "USD",
        },
        update_data={"name": "Renamed product", "price": Decimal("13.00")},
        filter_one=lambda row: {"sku": row.sku},
        sort_field="name",
        other_sorts=("price", "created_at", "stock_quantity"),
        soft_delete_field="deleted_at",
        version_field="version",
        updated_at_field="updated_at",
        audited=True,
        typed_data={"description": "Two\nlines ✓", "price": Decimal("7.25"), "is_active": False},
    ),
    Case(
        name="category",
        repository=CategoryRepository,
        factory=CategoryFactory,
        make_data=lambda n: {"name": f"Contract category #{n}#", "slug": f"contract-{n}"},
        update_data={"name": "Renamed category"},
        filter_one=lambda row: {"slug": row.slug},
        sort_field="slug",
        other_sorts=("name", "created_at"),
        soft_delete_field="deleted_at",
        version_field=None,
        updated_at_field="updated_at",
        audited=True,
        typed_data={"name": "Ünïcode ✓ category"},
    ),
    Case(
        name="user",
        repository=UserRepository,
        factory=UserFactory,
        make_data=lambda n: {
            "email": f"contract{n}@example.com",
            "first_name": "Ada",
            "last_name": f"Lovelace {n}",
        },
        update_data={"first_name": "Grace", "last_name": "Hopper"},
        filter_one=lambda row: {"email": row.email},
        sort_field="email",
        other_sorts=("last_name", "created_at"),
        soft_delete_field="deleted_at",
        version_field=None,
        updated_at_field="updated_at",
        audited=True,
        typed_data={"avatar_url": "https://example.com/a.png", "email_verified": True},
    ),
    Case(
        name="note",
        repository=NoteRepository,
        factory=NoteFactory,
        make_data=lambda n: {
            "title": f"Written note #{n}#",
            "body": "Line one\nline two",
            "payload": {"n": n, "ratio": 0.25, "big": 2**40, "items": [1, "two", None, True]},
        },
        update_data={"title": "Renamed note", "payload": {"changed": [1, 2.5], "ok": False}},
        filter_one=lambda row: {"title": row.title},
        sort_field="title",
        other_sorts=("created",),
        soft_delete_field=None,
        version_field=None,
        updated_at_field=None,
        audited=False,
        typed_data={"payload": [{"nested": {"list": [1, 2.5, None, "x"]}}, 7, "text"]},
    ),
    Case(
        name="document",
        repository=DocumentRepository,
        factory=DocumentFactory,
        make_data=lambda n: {"title": f"Written document #{n}#", "tags": [f"t{n}"]},
        update_data={"title": "Renamed document"},
        filter_one=lambda row: {"title": row.title},
        sort_field="title",
        other_sorts=("modified", "revision"),
        soft_delete_field="removed_at",
        version_field="revision",
        updated_at_field="modified",
        audited=True,
        typed_data={"tags": ["draft", "reviewed"]},
    ),
]

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES]),
]


@pytest.fixture(autouse=True)
def _known_core_bugs(request: pytest.FixtureRequest, case: Case) -> None:
    """Run a test that a core bug breaks for this case as a strict xfail (see core_bugs)."""
    reason = case.core_bugs.get(request.node.originalname)
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


# --- helpers -------------------------------------------------------------------------------


def typed(value: Any) -> Any:
    """`value` with the type of every scalar beside it, so 1 and 1.0 or "1" compare unequal."""
    if isinstance(value, dict):
        return ("dict", {key: typed(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(item) for item in value])
    return (type(value).__name__, value)


def field_values(instance: models.Model, names: set[str] | None = None) -> dict[str, Any]:
    """The loaded concrete fields of `instance` (or those in `names`), typed."""
    deferred = instance.get_deferred_fields()
    return {
        f.attname: typed(getattr(instance, f.attname))
        for f in instance._meta.concrete_fields
        if f.attname not in deferred and (names is None or f.attname in names)
    }


def assert_loads_like_orm(case: Case, instance: Any) -> None:
    """`instance` equals, field by field in value and type, what the default manager loads."""
    assert type(instance) is case.model
    assert instance.get_deferred_fields() == set(case.repository.deferred_fields)
    with zeal_ignore():  # one ORM load per instance checked, on purpose
        orm = case.model._default_manager.get(pk=instance.pk)
    loaded = field_values(instance)
    assert loaded == field_values(orm, set(loaded))


def assert_has_data(instance: Any, data: dict[str, Any]) -> None:
    for name, value in data.items():
        assert typed(getattr(instance, name)) == typed(value), name


def pks(rows: list[Any]) -> list[Any]:
    return [row.pk for row in rows]


def orm_order(case: Case, name: str | None = None, *, descending: bool = False) -> list[Any]:
    """The keys in the order of `name` (the case's sort field), ties broken by the key."""
    sign = "-" if descending else ""
    ordering = (f"{sign}{name or case.sort_field}", f"{sign}pk")
    queryset = case.model._default_manager.order_by(*ordering)
    return list(queryset.values_list("pk", flat=True))


def integer_keys(case: Case) -> bool:
    return isinstance(case.model._meta.pk, models.AutoField | models.BigAutoField)


def unknown_key(case: Case) -> Any:
    return 2**40 if integer_keys(case) else uuid.uuid4()


def audit_rows(case: Case, pk: Any) -> list[AuditLog]:
    rows = AuditLog.objects.filter(entity_type=case.model._meta.model_name, entity_id=str(pk))
    return list(rows.order_by("id"))


def all_rows(case: Case) -> int:
    return case.model._base_manager.count()


# --- reads ---------------------------------------------------------------------------------


def test_create_then_get_by_id_loads_what_the_orm_loads(case: Case):
    repository = case.repository()
    data = case.make_data(1)
    created = repository.create(data)
    assert created.pk is not None
    assert isinstance(created.pk, int if integer_keys(case) else uuid.UUID)
    loaded = repository.get_by_id(created.pk)
    for instance in (created, loaded, repository.find_by_id(str(created.pk))):
        assert instance is not None
        assert instance.pk == created.pk
        assert_loads_like_orm(case, instance)
        assert_has_data(instance, data)


def test_create_and_update_take_field_values_as_the_orm_takes_them(case: Case):
    repository = case.repository()
    data = {**case.make_data(1), **case.typed_data}
    created = repository.create(data)
    assert_has_data(created, data)
    assert_loads_like_orm(case, created)
    other = case.rows(1)[0]
    updated = repository.update(other.pk, dict(case.typed_data))
    assert_has_data(updated, case.typed_data)
    assert_loads_like_orm(case, updated)
    bulk = repository.create_many([{**case.make_data(2), **case.typed_data}])
    assert_has_data(repository.get_by_id(bulk[0].pk), case.typed_data)


def test_find_by_id_returns_none_for_unknown_malformed_and_float_keys(case: Case):
    row = case.rows(1)[0]
    repository = case.repository()
    # A float or Decimal never loads a row, even one whose key it equals (25.5 is not 25).
    float_key, decimal_key = (
        (float(row.pk), Decimal(row.pk)) if integer_keys(case) else (1.0, Decimal(1))
    )
    for key in (
        unknown_key(case),
        2**63,  # past bigint
        "not-a-key",
        "",
        None,
        True,
        float_key,
        decimal_key,
        [row.pk],
    ):
        assert repository.find_by_id(key) is None, repr(key)
    found = repository.find_by_id(row.pk)
    assert found is not None
    assert_loads_like_orm(case, found)


def test_get_by_id_raises_not_found_for_unknown_and_malformed_keys(case: Case):
    repository = case.repository()
    for key in (unknown_key(case), "not-a-key", 1.5):
        with pytest.raises(NotFoundError):
            repository.get_by_id(key)


def test_find_many_filters_sorts_both_ways_and_slices(case: Case):
    rows = case.rows(5)
    repository = case.repository()
    target = rows[2]
    found = repository.find_many(case.filter_one(target))
    assert pks(found) == [target.pk]
    assert_loads_like_orm(case, found[0])
    ascending = orm_order(case)
    descending = orm_order(case, descending=True)
    assert pks(repository.find_many(order_by=[case.sort_field])) == ascending
    assert pks(repository.find_many(order_by=[f"-{case.sort_field}"])) == descending
    assert descending == ascending[::-1]  # the values differ: the tiebreak never decides
    sliced = repository.find_many(order_by=[case.sort_field], limit=2, offset=1)
    assert pks(sliced) == ascending[1:3]
    assert pks(repository.find_many(order_by=[case.sort_field], offset=4)) == ascending[4:]
    assert repository.find_many(order_by=[case.sort_field], limit=0) == []
    first = repository.find_first(order_by=[f"-{case.sort_field}"])
    assert first is not None
    assert first.pk == descending[0]
    assert sorted(pks(repository.find_many()), key=str) == sorted(ascending, key=str)
    for name in case.other_sorts:
        assert pks(repository.find_many(order_by=[name])) == orm_order(case, name), name
        assert pks(repository.find_many(order_by=[f"-{name}"])) == orm_order(
            case, name, descending=True
        ), name


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda r, c: r.find_many({"no_such_filter": 1}), id="unknown-filter"),
        pytest.param(lambda r, c: r.count({"no_such_filter": 1}), id="unknown-filter-count"),
        pytest.param(lambda r, c: r.find_many(["not", "a", "mapping"]), id="filters-not-mapping"),
        pytest.param(lambda r, c: r.find_many(order_by=["no_such_field"]), id="unknown-sort"),
        pytest.param(lambda r, c: r.find_many(order_by=["pk"]), id="pk-not-declared"),
        pytest.param(
            lambda r, c: r.find_many(order_by=[f"{c.sort_field}; DROP TABLE audit_logs --"]),
            id="sql-in-sort",
        ),
        pytest.param(
            lambda r, c: r.find_many(order_by=[f"{c.sort_field} DESC NULLS FIRST"]),
            id="sql-direction-in-sort",
        ),
        pytest.param(lambda r, c: r.find_many(order_by=[c.sort_field] * 2), id="sort-twice"),
        pytest.param(lambda r, c: r.find_many(limit=-1), id="negative-limit"),
        pytest.param(lambda r, c: r.find_many(offset=-1), id="negative-offset"),
        pytest.param(lambda r, c: r.find_many(limit=2.5), id="float-limit"),
        pytest.param(lambda r, c: r.find_many(include_deleted="yes"), id="include-deleted-text"),
    ],
)
def test_reads_raise_invalid_query_for_bad_filters_sorts_and_limits(case: Case, call):
    case.rows(2)
    with pytest.raises(InvalidQueryError):
        call(case.repository(), case)


def test_count_and_exists_follow_filters(case: Case):
    rows = case.rows(3)
    repository = case.repository()
    missing = case.factory.build()  # never saved: its filter matches nothing
    assert repository.count() == 3
    assert repository.exists()
    assert repository.count(case.filter_one(rows[1])) == 1
    assert repository.exists(case.filter_one(rows[1]))
    assert repository.count(case.filter_one(missing)) == 0
    assert not repository.exists(case.filter_one(missing))


def test_paginate_returns_pages_and_refuses_past_last_page_and_oversized_pages(case: Case):
    case.rows(5)
    repository = case.repository()
    expected = orm_order(case)
    page = repository.paginate(order_by=[case.sort_field], page=2, page_size=2)
    assert pks(page.items) == expected[2:4]
    assert (page.total, page.page, page.page_size, page.pages) == (5, 2, 2, 3)
    assert (page.has_next, page.has_previous) == (True, True)
    last = repository.paginate(order_by=[case.sort_field], page=3, page_size=2)
    assert pks(last.items) == expected[4:]
    assert (last.has_next, last.has_previous) == (False, True)
    whole = repository.paginate(order_by=[case.sort_field], page_size=max_page_size())
    assert pks(whole.items) == expected
    bad_pages: list[dict[str, Any]] = [
        {"page": 4, "page_size": 2},  # past the last page (3)
        {"page": 0},
        {"page_size": max_page_size() + 1},
    ]
    for bad in bad_pages:
        with pytest.raises(InvalidQueryError):
            repository.paginate(order_by=[case.sort_field], **bad)


def test_paginate_cursor_walks_every_row_in_find_many_order(case: Case):
    case.rows(5)
    repository = case.repository()
    orders: list[list[str] | None] = [None, [case.sort_field], [f"-{case.sort_field}"]]
    orders += [[name, f"-{case.sort_field}"] for name in case.other_sorts]
    orders += [[f"-{name}"] for name in case.other_sorts]
    for order_by in orders:
        walked: list[Any] = []
        after = None
        for _ in range(10):
            page = repository.paginate_cursor(order_by=order_by, after=after, limit=2)
            walked += pks(page.items)
            if not page.has_next:
                assert page.next_cursor is None
                break
            after = page.next_cursor
        assert walked == pks(repository.find_many(order_by=order_by)), order_by


def test_paginate_cursor_refuses_tampered_and_foreign_cursors(case: Case):
    case.rows(3)
    repository = case.repository()
    cursor = repository.paginate_cursor(order_by=[case.sort_field], limit=1).next_cursor
    assert cursor is not None
    middle = len(cursor) // 2
    tampered = cursor[:middle] + ("B" if cursor[middle] == "A" else "A") + cursor[middle + 1 :]
    for bad in (tampered, cursor[:-4], "not-a-cursor", "x" * 5000):
        with pytest.raises(InvalidQueryError):
            repository.paginate_cursor(order_by=[case.sort_field], after=bad, limit=1)
    with pytest.raises(InvalidQueryError):  # a cursor of another order
        repository.paginate_cursor(order_by=[f"-{case.sort_field}"], after=cursor, limit=1)
    with pytest.raises(InvalidQueryError):  # a cursor of other filters
        repository.paginate_cursor({"no_such_filter": 1}, order_by=[case.sort_field], after=cursor)
    with pytest.raises(InvalidQueryError):
        repository.paginate_cursor(order_by=[case.sort_field], limit=max_page_size() + 1)


def test_list_reads_take_the_same_queries_for_3_and_6_rows(case: Case):
    repository = case.repository()

    def queries() -> list[int]:
        counts = []
        for read in (
            lambda: repository.find_many(),
            lambda: repository.paginate(page_size=10).items,
            lambda: repository.paginate_cursor(limit=10).items,
        ):
            with CaptureQueriesContext(connection) as captured:
                for row in read():
                    for relation in case.repository.select_related:
                        getattr(row, relation)
            counts.append(len(captured))
        return counts

    case.rows(3)
    three = queries()
    case.rows(3)
    assert queries() == three
    assert len(repository.find_many()) == 6


# --- writes --------------------------------------------------------------------------------


def test_writes_refuse_unknown_and_bookkeeping_fields(case: Case):
    existing = case.rows(1)[0]
    repository = case.repository()
    with pytest.raises(ValidationError) as unknown:
        repository.create({**case.make_data(1), "no_such_field": 1})
    assert "no_such_field" in unknown.value.errors
    assert all_rows(case) == 1
    managed = {
        case.soft_delete_field: timezone.now(),
        case.version_field: 5,
        case.updated_at_field: timezone.now(),
    }
    for name, value in managed.items():
        if name is None:
            continue
        with pytest.raises(ValidationError) as refused_create:
            repository.create({**case.make_data(1), name: value})
        with pytest.raises(ValidationError) as refused_update:
            repository.update(existing.pk, {name: value})
        assert name in refused_create.value.errors
        assert name in refused_update.value.errors
    assert all_rows(case) == 1
    assert field_values(case.model._base_manager.get(pk=existing.pk)) == field_values(existing)


def test_update_changes_fields_bumps_bookkeeping_and_reloads(case: Case):
    row = case.rows(1)[0]
    repository = case.repository()
    updated = repository.update(row.pk, dict(case.update_data))
    assert_has_data(updated, case.update_data)
    assert_loads_like_orm(case, updated)
    assert_has_data(case.model._default_manager.get(pk=row.pk), case.update_data)
    if case.version_field:
        assert getattr(updated, case.version_field) == getattr(row, case.version_field) + 1
    if case.updated_at_field:
        assert getattr(updated, case.updated_at_field) > getattr(row, case.updated_at_field)
    with pytest.raises(NotFoundError):
        repository.update(unknown_key(case), dict(case.update_data))
    with pytest.raises(ValidationError):
        repository.update(row.pk, {"no_such_field": 1})


def test_update_with_expected_version_is_optimistic_where_versioned(case: Case):
    row = case.rows(1)[0]
    repository = case.repository()
    if case.version_field is None:
        with pytest.raises(ValidationError) as refused:
            repository.update(row.pk, dict(case.update_data), expected_version=1)
        assert "expected_version" in refused.value.errors
        return
    version = getattr(row, case.version_field)
    updated = repository.update(row.pk, dict(case.update_data), expected_version=version)
    assert getattr(updated, case.version_field) == version + 1
    with pytest.raises(StaleObjectError):
        repository.update(row.pk, dict(case.update_data), expected_version=version)
    stored = case.model._default_manager.get(pk=row.pk)
    assert getattr(stored, case.version_field) == version + 1


def test_update_many_and_delete_many_return_counts(case: Case):
    rows = case.rows(4)
    repository = case.repository()
    missing = case.factory.build()
    assert repository.update_many(case.filter_one(missing), dict(case.update_data)) == 0
    assert repository.update_many(case.filter_one(rows[0]), dict(case.update_data)) == 1
    assert_has_data(repository.get_by_id(rows[0].pk), case.update_data)
    assert repository.delete_many(case.filter_one(rows[1])) == 1
    assert not case.model._base_manager.filter(pk=rows[1].pk).exists()
    assert repository.update_many({}, dict(case.update_data)) == 3
    for row in repository.find_many():
        assert_has_data(row, case.update_data)
        if case.version_field:
            expected = 3 if row.pk == rows[0].pk else 2
            assert getattr(row, case.version_field) == expected
        if case.updated_at_field:
            original = next(r for r in rows if r.pk == row.pk)
            assert getattr(row, case.updated_at_field) > getattr(original, case.updated_at_field)
    assert repository.delete_many({}) == 3
    assert all_rows(case) == 0


def test_create_many_returns_keys_and_writes_one_row_each(case: Case):
    repository = case.repository()
    data = [case.make_data(n) for n in range(3)]
    created = repository.create_many(data)
    assert len(created) == 3
    assert all(row.pk is not None for row in created)
    assert len(set(pks(created))) == 3
    assert case.model._default_manager.filter(pk__in=pks(created)).count() == 3
    assert all_rows(case) == 3
    for row, values in zip(created, data, strict=True):
        loaded = repository.get_by_id(row.pk)
        assert_has_data(loaded, values)
        assert_loads_like_orm(case, loaded)
    assert repository.create_many([]) == []
    with pytest.raises(ValidationError) as refused:
        repository.create_many([case.make_data(10), {**case.make_data(11), "no_such_field": 1}])
    assert "1.no_such_field" in refused.value.errors
    assert all_rows(case) == 3


def test_create_many_takes_the_same_queries_for_2_and_5_rows(case: Case):
    repository = case.repository()
    with CaptureQueriesContext(connection) as two:
        repository.create_many([case.make_data(n) for n in range(2)])
    with CaptureQueriesContext(connection) as five:
        repository.create_many([case.make_data(n) for n in range(10, 15)])
    assert len(five) == len(two)
    assert all_rows(case) == 7


def test_soft_delete_hides_and_restore_shows_or_both_are_refused(case: Case):
    target, other = case.rows(2)
    repository = case.repository()
    field = case.soft_delete_field
    if field is None:
        for method in (repository.soft_delete, repository.restore):
            with pytest.raises(ValidationError):
                method(target.pk)
        assert repository.count(include_deleted=True) == repository.count() == 2
        assert set(pks(repository.find_many(include_deleted=True))) == {target.pk, other.pk}
        return
    deleted = repository.soft_delete(target.pk)
    assert getattr(deleted, field) is not None
    if case.version_field:
        assert getattr(deleted, case.version_field) == getattr(target, case.version_field) + 1
    assert repository.find_by_id(target.pk) is None
    with pytest.raises(NotFoundError):
        repository.get_by_id(target.pk)
    assert pks(repository.find_many()) == [other.pk]
    assert set(pks(repository.find_many(include_deleted=True))) == {target.pk, other.pk}
    assert (repository.count(), repository.count(include_deleted=True)) == (1, 2)
    assert repository.paginate(include_deleted=True).total == 2
    assert repository.find_many(case.filter_one(target)) == []
    assert pks(repository.find_many(case.filter_one(target), include_deleted=True)) == [target.pk]
    assert not case.model._default_manager.filter(pk=target.pk).exists()
    with pytest.raises(NotFoundError):
        repository.soft_delete(target.pk)
    with pytest.raises(NotFoundError):
        repository.update(target.pk, dict(case.update_data))
    restored = repository.restore(target.pk)
    assert getattr(restored, field) is None
    if case.version_field:
        assert getattr(restored, case.version_field) == getattr(target, case.version_field) + 2
    live = repository.restore(other.pk)  # a live row is returned as is
    assert field_values(live) == field_values(repository.get_by_id(other.pk))
    if case.version_field:
        assert getattr(live, case.version_field) == getattr(other, case.version_field)
    assert_loads_like_orm(case, restored)
    assert repository.find_by_id(target.pk) is not None
    assert repository.count() == 2


def test_delete_removes_the_row_for_good(case: Case):
    first, second = case.rows(2)
    repository = case.repository()
    repository.delete(first.pk)
    assert not case.model._base_manager.filter(pk=first.pk).exists()
    assert repository.find_by_id(first.pk) is None
    for key in (first.pk, unknown_key(case), "not-a-key"):
        with pytest.raises(NotFoundError):
            repository.delete(key)
    if case.soft_delete_field:  # a soft-deleted row can still be deleted for good
        repository.soft_delete(second.pk)
        assert repository.delete_many({}) == 0  # hidden rows are not matched...
        assert repository.delete_many({}, include_deleted=True) == 1  # ...unless asked
    else:
        repository.delete(second.pk)
    assert all_rows(case) == 0


# --- audit (§7) ----------------------------------------------------------------------------


@pytest.mark.parametrize("flip", [False, True], ids=["as-declared", "audit-flipped"])
def test_audit_rows_are_written_iff_the_repository_audits(case: Case, flip: bool):
    assert case.repository.audit is case.audited
    repository_class: type[BaseRepository[Any]] = case.repository
    if flip:
        repository_class = type(
            f"Flipped{case.repository.__name__}", (case.repository,), {"audit": not case.audited}
        )
    audited = repository_class.audit
    actor = UserFactory.create()
    repository = repository_class()
    with audit_context(actor=actor, request_id="contract-request"):
        created = repository.create(case.make_data(1))
        repository.update(created.pk, dict(case.update_data))
        expected = ["created", "updated"]
        if case.soft_delete_field:
            repository.soft_delete(created.pk)
            repository.restore(created.pk)
            expected += ["soft_deleted", "restored"]
        repository.delete(created.pk)
        expected.append("deleted")
        # 8 rows: from audit.COPY_THRESHOLD on the audit rows travel by COPY.
        bulk = repository.create_many([case.make_data(n) for n in range(2, 10)])
    rows = audit_rows(case, created.pk)
    bulk_rows = [row for row in bulk if audit_rows(case, row.pk)]
    if not audited:
        assert rows == []
        assert bulk_rows == []
        return
    assert [row.action for row in rows] == expected
    assert {(row.actor_id, row.request_id) for row in rows} == {(actor.pk, "contract-request")}
    assert set(case.make_data(1)) <= set(rows[0].changes)
    assert set(case.update_data) <= set(rows[1].changes)
    if case.soft_delete_field:
        assert set(rows[2].changes) == set(rows[3].changes) == {case.soft_delete_field}
    assert len(bulk_rows) == 8
    assert {row.action for row in AuditLog.objects.filter(entity_id__in=map(str, pks(bulk)))} == {
        "created"
    }


# --- transactions (§5) ---------------------------------------------------------------------


class CallerError(Exception):
    """Raised by the test itself inside a transaction."""


@pytest.mark.django_db(transaction=True)
def test_failing_write_inside_atomic_leaves_nothing(case: Case):
    existing = case.rows(1)[0]
    repository = case.repository()
    before = field_values(case.model._base_manager.get(pk=existing.pk))
    audit_count = AuditLog.objects.count()
    with pytest.raises(ValidationError), atomic():
        repository.create(case.make_data(1))
        repository.update(existing.pk, dict(case.update_data))
        repository.create_many([case.make_data(2), case.make_data(3)])
        repository.create({**case.make_data(4), "no_such_field": 1})
    with pytest.raises(CallerError), atomic():
        repository.delete(existing.pk)
        raise CallerError
    assert all_rows(case) == 1
    assert field_values(case.model._base_manager.get(pk=existing.pk)) == before
    assert AuditLog.objects.count() == audit_count
    with atomic():  # an inner failure rolls back only the inner block (a savepoint)
        kept = repository.create(case.make_data(5))
        with pytest.raises(ValidationError), atomic():
            repository.create(case.make_data(6))
            repository.update(kept.pk, {"no_such_field": 1})
    assert all_rows(case) == 2
    assert repository.find_by_id(kept.pk) is not None
    assert len(AuditLog.objects.all()) == audit_count + (1 if case.audited else 0)
