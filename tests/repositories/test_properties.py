"""Property-based tests: whatever callers pass, the only errors are the typed ones."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.models import Product
from repositories.errors import (
    ConflictError,
    InvalidQueryError,
    NotFoundError,
    ValidationError,
)
from tests.factories import CategoryFactory, ProductFactory
from tests.repositories.sample_repositories import (
    SampleProductFilterSet,
    SampleProductRepository,
)

pytestmark = pytest.mark.django_db

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.datetimes(timezones=st.sampled_from([dt.UTC, None])),
    st.dates(),
    st.uuids(),
    st.binary(max_size=4),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
)
filter_keys = st.one_of(
    st.sampled_from(
        [*SampleProductFilterSet.data_keys(), "bogus", "name__regex", "user__password", "", "id"]
    ),
    st.text(max_size=10),
)
filter_maps = st.one_of(
    st.none(),
    st.dictionaries(filter_keys, values, max_size=4),
    st.lists(scalars, max_size=2),
    st.text(max_size=5),
    st.integers(),
)
sort_items = st.one_of(
    st.sampled_from(
        [
            "name",
            "-name",
            "price",
            "-price",
            "created_at",
            "-created_at",
            "stock_quantity",
            "-sku",
            "category_id",
            "-category_id",
            "?",
            "user__password",
            "",
            "-",
            "id",
            "pk",
            "name; DROP TABLE products",
        ]
    ),
    st.text(max_size=10),
    st.integers(),
    st.none(),
)
orders = st.one_of(st.none(), st.lists(sort_items, max_size=4), sort_items)
numbers = st.one_of(
    st.integers(min_value=-3, max_value=150),
    st.integers(),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.floats(),
)
valid_orders = st.lists(
    st.sampled_from(["name", "price", "created_at", "stock_quantity", "sku", "category_id"]),
    unique=True,
    max_size=3,
).flatmap(lambda names: st.tuples(*[st.sampled_from([n, f"-{n}"]) for n in names]).map(list))


@pytest.fixture
def catalog() -> Iterator[dict[str, Any]]:
    """A fixed catalog: 14 products, some sharing names/prices, some without category."""
    categories = CategoryFactory.create_batch(2)
    products = [
        ProductFactory.create(
            name=f"Item {i % 5}",
            price=Decimal(i % 4) + Decimal("0.5"),
            stock_quantity=i % 3,
            is_active=i % 4 != 0,
            category=categories[i % 2] if i % 3 else None,
        )
        for i in range(14)
    ]
    deleted = ProductFactory.create(deleted=True)
    repository = SampleProductRepository()
    cursor = repository.paginate_cursor(limit=3).next_cursor
    yield {"products": products, "cursor": cursor, "repository": repository, "deleted": deleted}


def isolated(call):
    """Run one example inside a savepoint that is always rolled back."""
    sid = transaction.savepoint()
    try:
        return call()
    finally:
        transaction.savepoint_rollback(sid)


@st.composite
def cursors(draw, real: str) -> object:
    choice = draw(st.integers(min_value=0, max_value=4))
    if choice == 0:
        return real
    if choice == 1 and real:
        index = draw(st.integers(min_value=0, max_value=len(real) - 1))
        char = draw(st.sampled_from("AZaz09-_.=+/!"))
        return real[:index] + char + real[index + 1 :]
    if choice == 2:
        return draw(st.text(max_size=80))
    if choice == 3:
        return draw(st.one_of(st.none(), st.integers(), st.binary(max_size=10)))
    return real[: draw(st.integers(min_value=0, max_value=len(real)))]


@PROPERTY_SETTINGS
@given(filters=filter_maps, order_by=orders, limit=numbers, offset=numbers)
def test_list_reads_raise_only_invalid_query_error(catalog, filters, order_by, limit, offset):
    repository = catalog["repository"]

    def call() -> None:
        rows = repository.find_many(filters, order_by=order_by, limit=limit, offset=offset)
        assert isinstance(rows, list)
        assert all(isinstance(row, Product) for row in rows)
        assert isinstance(repository.count(filters), int)
        assert isinstance(repository.exists(filters), bool)
        repository.find_first(filters, order_by=order_by)

    try:
        isolated(call)
    except InvalidQueryError as exc:
        assert exc.errors


@PROPERTY_SETTINGS
@given(filters=filter_maps, order_by=orders, page=numbers, page_size=numbers)
def test_offset_pages_raise_only_invalid_query_error(catalog, filters, order_by, page, page_size):
    repository = catalog["repository"]
    try:
        result = isolated(
            lambda: repository.paginate(filters, order_by=order_by, page=page, page_size=page_size)
        )
    except InvalidQueryError as exc:
        assert exc.errors
    else:
        assert 1 <= result.page <= result.pages
        assert len(result.items) <= result.page_size


@PROPERTY_SETTINGS
@given(data=st.data(), filters=filter_maps, order_by=orders, limit=numbers)
def test_cursor_pages_raise_only_invalid_query_error(catalog, data, filters, order_by, limit):
    repository = catalog["repository"]
    after = data.draw(cursors(catalog["cursor"]))
    try:
        result = isolated(
            lambda: repository.paginate_cursor(filters, order_by=order_by, after=after, limit=limit)
        )
    except InvalidQueryError as exc:
        assert exc.errors
    else:
        assert len(result.items) <= limit
        assert result.has_next == (result.next_cursor is not None)


@PROPERTY_SETTINGS
@given(order_by=valid_orders, limit=st.integers(min_value=1, max_value=5))
def test_cursor_iteration_matches_the_full_list(catalog, order_by, limit):
    repository = catalog["repository"]
    expected = [p.pk for p in repository.find_many(order_by=order_by)]
    seen: list[Any] = []
    after = None
    for _ in range(len(expected) + 2):
        page = repository.paginate_cursor(order_by=order_by, after=after, limit=limit)
        seen.extend(p.pk for p in page.items)
        if not page.has_next:
            break
        after = page.next_cursor
    assert seen == expected


@PROPERTY_SETTINGS
@given(key=st.one_of(scalars, st.lists(scalars, max_size=2), st.text()))
def test_find_by_id_never_raises(catalog, key):
    found = isolated(lambda: catalog["repository"].find_by_id(key))
    assert found is None or isinstance(found, Product)


writable_names = st.sampled_from(
    [
        "sku",
        "name",
        "description",
        "price",
        "currency",
        "stock_quantity",
        "is_active",
        "category",
        "category_id",
        "version",
        "bogus",
    ]
)


@PROPERTY_SETTINGS
@given(data=st.dictionaries(writable_names, values, max_size=5), as_update=st.booleans())
def test_writes_raise_only_typed_errors(catalog, data, as_update):
    repository = catalog["repository"]
    target = catalog["products"][1].pk
    base = {"sku": "PROP-1", "name": "Prop", "price": Decimal("1.00")}

    def call() -> None:
        if as_update:
            repository.update(target, data)
        else:
            repository.create({**base, **data})

    try:
        isolated(call)
    except ValidationError as exc:
        assert exc.errors
    except ConflictError as exc:
        assert exc.fields


@PROPERTY_SETTINGS
@given(
    filters=filter_maps,
    data=st.dictionaries(writable_names, values, max_size=3),
    delete=st.booleans(),
)
def test_bulk_writes_raise_only_typed_errors(catalog, filters, data, delete):
    repository = catalog["repository"]

    def call() -> int:
        if delete:
            return repository.delete_many(filters)
        return repository.update_many(filters, data)

    try:
        assert isinstance(isolated(call), int)
    except (InvalidQueryError, ValidationError) as exc:
        assert exc.errors
    except ConflictError as exc:
        assert exc.fields


@PROPERTY_SETTINGS
@given(
    key=st.one_of(scalars, st.sampled_from(["first", "deleted"])),
    action=st.sampled_from(["soft_delete", "restore", "delete", "get_by_id"]),
)
def test_single_row_actions_raise_only_not_found_for_bad_keys(catalog, key, action):
    repository = catalog["repository"]
    if key == "first":
        key = catalog["products"][0].pk
    elif key == "deleted":
        key = catalog["deleted"].pk
    try:
        isolated(lambda: getattr(repository, action)(key))
    except NotFoundError as exc:
        assert exc.entity == "Product"
    except ValidationError as exc:  # a hard delete of a protected row
        assert action == "delete" and exc.errors
