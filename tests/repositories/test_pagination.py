"""Offset pages, the signed cursor codec, the keyset condition and cursor iteration."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from domain.models import Product
from repositories.core.pagination import (
    MAX_CURSOR_LENGTH,
    CursorPage,
    Page,
    RowComparison,
    SortKey,
    _b64decode,
    _b64encode,
    _secret,
    decode_cursor,
    encode_cursor,
    keyset_condition,
    query_fingerprint,
)
from repositories.errors import InvalidQueryError
from tests.factories import CategoryFactory, ProductFactory
from tests.parity_app.factories import GadgetFactory
from tests.parity_app.models import Gadget, Money
from tests.repositories.sample_repositories import SampleProductRepository


def key(name: str, descending: bool = False) -> SortKey:
    return SortKey(Product._meta.get_field(name), descending)  # type: ignore[arg-type]


KEYS = (key("created_at"), key("price", True), key("category"), key("id"))
VALUES = [
    dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC),
    Decimal("12.50"),
    None,
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
]


# --- cursor codec (no database) ------------------------------------------------------------


def test_cursor_round_trips_typed_values():
    cursor = encode_cursor(VALUES, "fp")
    assert decode_cursor(cursor, "fp", KEYS) == VALUES


def test_cursor_is_opaque_url_safe_text():
    cursor = encode_cursor(VALUES, "fp")
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert "12.50" not in cursor


def test_cursor_from_another_query_is_refused():
    cursor = encode_cursor(VALUES, query_fingerprint("products", ["name"]))
    with pytest.raises(InvalidQueryError) as caught:
        decode_cursor(cursor, query_fingerprint("products", ["-name"]), KEYS)
    assert caught.value.errors == {
        "after": ["This cursor belongs to a query with other filters or another order."]
    }


def test_tampered_cursor_payload_is_refused():
    body, signature = encode_cursor(VALUES, "fp").split(".")
    payload = json.loads(_b64decode(body))
    payload["k"][1] = "0.01"
    forged = f"{_b64encode(json.dumps(payload).encode())}.{signature}"
    with pytest.raises(InvalidQueryError) as caught:
        decode_cursor(forged, "fp", KEYS)
    assert caught.value.errors == {"after": ["Invalid cursor signature (tampered or foreign)."]}


def test_cursor_with_flipped_signature_byte_is_refused():
    cursor = encode_cursor(VALUES, "fp")
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    with pytest.raises(InvalidQueryError):
        decode_cursor(flipped, "fp", KEYS)


def test_cursor_signed_with_another_secret_is_refused(settings):
    cursor = encode_cursor(VALUES, "fp")
    settings.REPOSITORIES = {**settings.REPOSITORIES, "CURSOR_SECRET": "rotated"}
    with pytest.raises(InvalidQueryError):
        decode_cursor(cursor, "fp", KEYS)


def test_cursor_secret_falls_back_to_secret_key_and_each_secret_signs_differently(settings):
    # CURSOR_SECRET empty: the key derives from SECRET_KEY, never from a public constant.
    settings.REPOSITORIES = {**settings.REPOSITORIES, "CURSOR_SECRET": ""}
    settings.SECRET_KEY = "first-secret-key"
    from_secret_key = encode_cursor(VALUES, "fp")
    assert decode_cursor(from_secret_key, "fp", KEYS) == VALUES
    settings.SECRET_KEY = "second-secret-key"
    with pytest.raises(InvalidQueryError) as caught:
        decode_cursor(from_secret_key, "fp", KEYS)
    assert "signature" in str(caught.value)
    # CURSOR_SECRET set: it is the key, so another CURSOR_SECRET refuses the cursor.
    settings.REPOSITORIES = {**settings.REPOSITORIES, "CURSOR_SECRET": "cursor-secret-a"}
    from_cursor_secret = encode_cursor(VALUES, "fp")
    assert decode_cursor(from_cursor_secret, "fp", KEYS) == VALUES
    settings.REPOSITORIES = {**settings.REPOSITORIES, "CURSOR_SECRET": "cursor-secret-b"}
    with pytest.raises(InvalidQueryError) as caught:
        decode_cursor(from_cursor_secret, "fp", KEYS)
    assert "signature" in str(caught.value)


@pytest.mark.parametrize(
    "cursor",
    ["", "abc", "a.b", "é.é", "x" * 5000, 12, None, b"abc", "!!!.???", "YWJj.YWJj=="],
)
def test_malformed_cursor_is_refused(cursor):
    with pytest.raises(InvalidQueryError) as caught:
        decode_cursor(cursor, "fp", KEYS)
    assert caught.value.errors == {"after": ["Malformed cursor."]}


def test_cursor_with_nothing_around_the_dot_is_refused_as_unsigned():
    with pytest.raises(InvalidQueryError) as caught:
        decode_cursor(".", "fp", KEYS)
    assert caught.value.errors == {"after": ["Invalid cursor signature (tampered or foreign)."]}


def _variants(cursor: str) -> list[str]:
    body, signature = cursor.split(".")
    assert {"-", "_"} <= set(signature)
    return [
        f"{body}=.{signature}",  # padding the issued text leaves out
        f"{body}.{signature}=",
        f"{body[:5]}!{body[5:]}.{signature}",  # characters the decoder would skip
        f"{body[:5]}\n{body[5:]}.{signature}",
        f"{body}.{signature[:3]}.{signature[3:]}",  # a second dot
        f"{body}.{signature}.",
        f"{body}.{signature.replace('-', '+').replace('_', '/')}",  # the other alphabet
    ]


def test_cursor_is_accepted_only_as_the_text_it_was_issued(golden_secret):
    # Each variant decodes to the same bytes with a lenient decoder: one cursor, one text.
    assert decode_cursor(GOLDEN_CURSOR, GOLDEN_FINGERPRINT, GOLDEN_KEYS) == GOLDEN_VALUES
    for variant in _variants(GOLDEN_CURSOR):
        with pytest.raises(InvalidQueryError) as caught:
            decode_cursor(variant, GOLDEN_FINGERPRINT, GOLDEN_KEYS)
        assert caught.value.errors == {"after": ["Malformed cursor."]}, variant


def _cursor_of_length(length: int) -> tuple[str, list[object]]:
    """Return the shortest (name, id) cursor at least `length` long, and its values."""
    for size in range(MAX_CURSOR_LENGTH):
        values: list[object] = ["n" * size, uuid.UUID(int=1)]
        cursor = encode_cursor(values, "fp")
        if len(cursor) >= length:
            return cursor, values
    raise AssertionError(length)


def test_cursor_up_to_max_cursor_length_is_read_and_a_longer_one_refused_unread():
    keys = (key("name"), key("id"))
    longest, values = _cursor_of_length(MAX_CURSOR_LENGTH)
    assert len(longest) == MAX_CURSOR_LENGTH
    assert decode_cursor(longest, "fp", keys) == values
    too_long, _ = _cursor_of_length(MAX_CURSOR_LENGTH + 1)
    assert len(too_long) > MAX_CURSOR_LENGTH
    with pytest.raises(InvalidQueryError) as caught:
        decode_cursor(too_long, "fp", keys)  # validly signed, refused for its length alone
    assert caught.value.errors == {"after": ["Malformed cursor."]}


#: A version-1 cursor for SampleProductRepository's page of products named "lamp" in
#: name order, after ("Lamp", the UUID below), signed with CURSOR_SECRET "golden-secret".
GOLDEN_FINGERPRINT = "bWp1ykYZtuu5yRn7"
GOLDEN_CURSOR = (
    "eyJ2IjoxLCJmIjoiYldwMXlrWVp0dXU1eVJuNyIsImsiOlsiTGFtcCIsIjEyMzQ1Njc4LTEyMzQtNTY3OC0xMjM0"
    "LTU2NzgxMjM0NTY3OCJdfQ.6-qliSeS7hW0_L-BodYu-ll_pwyUHuqrVGctMRKJMc8"
)
GOLDEN_KEYS = (key("name"), key("id"))
GOLDEN_VALUES = ["Lamp", VALUES[3]]


@pytest.fixture
def golden_secret(settings):
    settings.REPOSITORIES = {**settings.REPOSITORIES, "CURSOR_SECRET": "golden-secret"}


def test_cursors_issued_before_a_deploy_are_accepted_after_it(golden_secret):
    # The fingerprint, the payload and the key derivation are a wire format: changing any
    # of them refuses every cursor that clients hold (a new format needs a new version).
    fingerprint = query_fingerprint(
        "domain.Product",
        "SampleProductRepository",
        False,
        [("name", "lamp")],
        [("name", False), ("id", False)],
    )
    assert fingerprint == GOLDEN_FINGERPRINT
    assert decode_cursor(GOLDEN_CURSOR, fingerprint, GOLDEN_KEYS) == GOLDEN_VALUES
    assert encode_cursor(GOLDEN_VALUES, fingerprint) == GOLDEN_CURSOR
    # A subclass may fingerprint its own narrowing with a mapping.
    assert query_fingerprint({"name": "lamp", "price_min": "2"}) == "k7wHSn-rzTKyj4ix"


def _sign(raw: bytes) -> str:
    return f"{_b64encode(raw)}.{_b64encode(hmac.new(_secret(), raw, hashlib.sha256).digest())}"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        json.dumps({"v": 1, "f": "fp", "k": ["2024-01-01T00:00:00Z"]}).encode(),
        json.dumps(
            {"v": 1, "f": "fp", "k": ["2024-01-01T00:00:00Z", "1", None, str(uuid.UUID(int=5)), 1]}
        ).encode(),
        json.dumps([1, 2]).encode(),
        json.dumps({"v": 2, "f": "fp", "k": []}).encode(),
        json.dumps({"v": 1, "f": "fp", "k": "x"}).encode(),
        json.dumps({"v": 1, "f": "fp", "k": [1]}).encode(),
        json.dumps(
            {"v": 1, "f": "fp", "k": ["yesterday", "1", None, str(uuid.UUID(int=5))]}
        ).encode(),
        json.dumps({"v": 1, "f": "fp", "k": [None, "1", None, str(uuid.UUID(int=5))]}).encode(),
        json.dumps({"v": 1, "f": "fp", "k": ["2024-01-01T00:00:00Z", "x", None, "y"]}).encode(),
    ],
)
def test_signed_but_malformed_cursor_is_refused(payload):
    with pytest.raises(InvalidQueryError) as caught:
        decode_cursor(_sign(payload), "fp", KEYS)
    assert caught.value.errors == {"after": ["Malformed cursor."]}


def test_signed_cursor_of_another_version_or_without_a_value_list_is_refused():
    keys = (key("price"), key("stock_quantity"))
    assert decode_cursor(_sign(b'{"v":1,"f":"fp","k":["1","2"]}'), "fp", keys) == [Decimal(1), 2]
    for payload in (b'{"v":2,"f":"fp","k":["1","2"]}', b'{"v":1,"f":"fp","k":"12"}'):
        with pytest.raises(InvalidQueryError) as caught:
            decode_cursor(_sign(payload), "fp", keys)
        assert caught.value.errors == {"after": ["Malformed cursor."]}


def test_query_fingerprint_depends_on_every_part():
    base = query_fingerprint("a", {"x": 1}, ["name"])
    assert base == query_fingerprint("a", {"x": 1}, ["name"])
    assert base != query_fingerprint("a", {"x": 2}, ["name"])
    assert base != query_fingerprint("a", {"x": 1}, ["-name"])


def test_query_fingerprint_ignores_mapping_order_and_takes_any_filter_value():
    assert query_fingerprint({"a": 1, "b": 2}) == query_fingerprint({"b": 2, "a": 1})
    day = dt.date(2024, 5, 6)
    typed = query_fingerprint({"category": uuid.UUID(int=1), "price": Decimal("2.5"), "on": day})
    assert typed == query_fingerprint(
        {"category": uuid.UUID(int=1), "price": Decimal("2.5"), "on": day}
    )
    assert typed != query_fingerprint(
        {"category": uuid.UUID(int=2), "price": Decimal("2.5"), "on": day}
    )


# --- keyset condition (no database) --------------------------------------------------------


def test_uniform_direction_uses_a_row_comparison():
    condition = keyset_condition((key("created_at"), key("id")), VALUES[:1] + VALUES[3:])
    assert isinstance(condition, RowComparison)
    assert condition.operator == ">"
    descending = keyset_condition((key("name", True), key("id", True)), ["a", VALUES[3]])
    assert descending.operator == "<"


def test_mixed_directions_use_or_expansion_with_leading_bound():
    condition = keyset_condition((key("price", True), key("name"), key("id")), [1, "a", 2])
    assert isinstance(condition, Q)
    assert ("price__lte", 1) in condition.children


def test_nullable_key_uses_or_expansion():
    condition = keyset_condition((key("category"), key("id")), [None, VALUES[3]])
    assert isinstance(condition, Q)


@pytest.mark.parametrize(
    "keys",
    [(key("price", True), key("name"), key("id")), (key("created_at"), key("id"))],
)
def test_keyset_condition_needs_one_value_per_key(keys):
    with pytest.raises(ValueError):
        keyset_condition(keys, [1, "a", VALUES[3], 4][: len(keys) - 1])


def test_row_comparison_rejects_unknown_operators_and_shapes():
    with pytest.raises(ValueError, match="row comparison"):
        RowComparison([], ">", [])
    with pytest.raises(ValueError, match="row comparison"):
        RowComparison(["a"], ">=", [1])


@pytest.mark.parametrize(
    ("total", "page", "size", "expected"),
    [(0, 1, 20, (1, False, False)), (45, 2, 20, (3, True, True)), (40, 2, 20, (2, False, True))],
)
def test_page_build_derives_pages_and_neighbours(total, page, size, expected):
    built: Page[Product] = Page.build([], total=total, page=page, page_size=size)
    assert (built.pages, built.has_next, built.has_previous) == expected


# --- offset pages --------------------------------------------------------------------------


@pytest.mark.django_db
def test_paginate_returns_page_with_totals_in_two_queries(django_assert_num_queries):
    for name in "abcde":
        ProductFactory.create(name=name)
    with django_assert_num_queries(2):
        page = SampleProductRepository().paginate(page=2, page_size=2)
        [str(p.category) for p in page.items]
    assert [p.name for p in page.items] == ["c", "d"]
    assert (page.total, page.page, page.page_size, page.pages) == (5, 2, 2, 3)
    assert page.has_next and page.has_previous
    assert isinstance(page.items, list)


@pytest.mark.django_db
def test_paginate_empty_result_is_one_empty_page():
    page = SampleProductRepository().paginate({"name": "nothing"})
    assert (page.items, page.total, page.pages, page.has_next) == ([], 0, 1, False)


@pytest.mark.django_db
def test_paginate_past_the_last_page_raises():
    ProductFactory.create()
    with pytest.raises(InvalidQueryError) as caught:
        SampleProductRepository().paginate(page=2, page_size=10)
    assert "page" in caught.value.errors


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("page", 0),
        ("page", "1"),
        ("page", None),
        ("page_size", 0),
        ("page_size", 101),
        ("page_size", 10**9),
        ("page_size", True),
    ],
)
def test_paginate_rejects_bad_page_or_size_before_any_query(
    argument, value, django_assert_num_queries
):
    with django_assert_num_queries(0), pytest.raises(InvalidQueryError) as caught:
        SampleProductRepository().paginate(**{argument: value})
    assert argument in caught.value.errors


@pytest.mark.django_db
def test_page_size_cap_follows_settings(settings):
    settings.REPOSITORIES = {**settings.REPOSITORIES, "MAX_PAGE_SIZE": 3}
    with pytest.raises(InvalidQueryError):
        SampleProductRepository().paginate(page_size=4)
    assert SampleProductRepository().paginate(page_size=3).page_size == 3


# --- cursor pages --------------------------------------------------------------------------


def _all_pages(repository, limit=3, **kwargs) -> list[list[Product]]:
    pages: list[list[Product]] = []
    after = None
    for _ in range(20):  # a keyset that never moves on fails here instead of hanging
        page = repository.paginate_cursor(after=after, limit=limit, **kwargs)
        pages.append(page.items)
        if not page.has_next:
            assert page.next_cursor is None
            return pages
        after = page.next_cursor
    pytest.fail(f"still a next page after 20: {[len(p) for p in pages]}")


def _spread_created_at(products: list[Product]) -> None:
    start = timezone.now() - dt.timedelta(days=1)
    for index, product in enumerate(products):
        # pairs share a timestamp so the primary key has to break ties
        Product.objects.filter(pk=product.pk).update(
            created_at=start + dt.timedelta(minutes=index // 2)
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "order_by",
    [
        ["created_at"],
        ["-created_at"],
        ["name"],
        ["-price", "name"],
        ["price", "-created_at"],
        ["category_id"],
        ["-category_id", "-name"],
        ["category_id", "-price"],
    ],
)
def test_cursor_pages_return_every_row_once_in_order(order_by, django_assert_max_num_queries):
    categories = CategoryFactory.create_batch(2)
    products = [
        ProductFactory.create(
            name=f"n{i % 4}",
            price=Decimal(i % 3),
            category=categories[i % 2] if i % 3 else None,
        )
        for i in range(11)
    ]
    _spread_created_at(products)
    repository = SampleProductRepository()
    expected = repository.find_many(order_by=order_by)
    with django_assert_max_num_queries(5):
        pages = _all_pages(repository, order_by=order_by)
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    assert [p.pk for page in pages for p in page] == [p.pk for p in expected]


@pytest.mark.django_db
def test_cursor_pages_over_three_columns_in_mixed_directions_return_every_row_once():
    # Keys in creation order, so the primary key tiebreak is known: a row that ties with
    # the cursor on a later column but not on an earlier one must not come back.
    repository = SampleProductRepository()
    combinations = itertools.product((1, 2), ("a", "b"), (1, 2))
    for number, (price, name, stock) in enumerate(combinations, start=1):
        ProductFactory.create(
            id=uuid.UUID(int=number), price=price, name=name, stock_quantity=stock
        )
    order_by = ["price", "-name", "stock_quantity"]
    expected = [p.pk for p in repository.find_many(order_by=order_by)]
    pages = _all_pages(repository, limit=1, order_by=order_by)
    assert [p.pk for page in pages for p in page] == expected
    assert [p.int for p in expected] == [3, 4, 1, 2, 7, 8, 5, 6]


@pytest.mark.django_db
def test_nulls_sort_last_ascending_and_first_descending():
    ProductFactory.create(category=None)
    ProductFactory.create_batch(2)
    repository = SampleProductRepository()
    ascending = repository.find_many(order_by=["category_id"])
    descending = repository.find_many(order_by=["-category_id"])
    assert [p.category_id is None for p in ascending] == [False, False, True]
    assert [p.category_id is None for p in descending] == [True, False, False]
    assert descending[1:] == ascending[1::-1]


@pytest.mark.django_db
def test_keyset_on_the_primary_key_alone_selects_the_rows_after_it():
    # A repository without default_order pages by the primary key alone.
    products = sorted(ProductFactory.create_batch(3), key=lambda p: p.pk)
    after_first = Product.objects.filter(keyset_condition((key("id"),), [products[0].pk]))
    assert sorted(after_first, key=lambda p: p.pk) == products[1:]
    before_last = Product.objects.filter(keyset_condition((key("id", True),), [products[2].pk]))
    assert sorted(before_last, key=lambda p: p.pk) == products[:2]


@pytest.mark.django_db
def test_keyset_compares_values_as_the_sort_field_stores_them():
    # Gadget.price is a custom field: Money in Python, whole cents in the column.
    gadgets = [GadgetFactory.create(price=Money(Decimal(p))) for p in ("1.00", "2.00", "3.00")]
    keys = (
        SortKey(Gadget._meta.get_field("price"), False),
        SortKey(Gadget._meta.pk, False),
    )
    condition = keyset_condition(keys, [Money(Decimal("2.00")), gadgets[1].pk])
    assert list(Gadget._default_manager.filter(condition)) == [gadgets[2]]


def test_a_cursor_value_its_field_cannot_convert_is_refused_typed():
    """A custom field's value goes into the cursor as str(value) and comes back through
    the field's to_python, as with Django's serializers; where that does not round-trip
    (Money's str() is its repr, and to_python raises decimal.InvalidOperation on it) the
    cursor is refused with the layer's error, not the field's exception."""
    keys = (SortKey(Gadget._meta.get_field("price"), False), SortKey(Gadget._meta.pk, False))
    fingerprint = "f"
    cursor = encode_cursor([Money(Decimal("2.00")), 7], fingerprint)
    with pytest.raises(InvalidQueryError) as caught:
        decode_cursor(cursor, fingerprint, keys)
    assert caught.value.errors == {"after": ["Malformed cursor."]}


@pytest.mark.django_db
def test_cursor_page_loads_relations_in_one_query(django_assert_num_queries):
    ProductFactory.create_batch(4)
    with django_assert_num_queries(1):
        page = SampleProductRepository().paginate_cursor(limit=3)
        [str(p.category) for p in page.items]
    assert isinstance(page, CursorPage)
    assert page.has_next and page.next_cursor


@pytest.mark.django_db
def test_cursor_iteration_sees_rows_inserted_ahead_once_and_never_repeats():
    originals = ProductFactory.create_batch(7)
    _spread_created_at(originals)
    repository = SampleProductRepository()
    seen: list[uuid.UUID] = []
    inserted_ahead: list[uuid.UUID] = []
    after = None
    for _ in range(20):
        page = repository.paginate_cursor(order_by=["created_at"], after=after, limit=2)
        seen.extend(p.pk for p in page.items)
        # one row ahead of the cursor (newest) and one behind it (oldest) per page
        ahead = ProductFactory.create()
        if len(inserted_ahead) < 3:
            inserted_ahead.append(ahead.pk)
        else:
            Product.objects.filter(pk=ahead.pk).update(deleted_at=timezone.now())
        behind = ProductFactory.create()
        Product.objects.filter(pk=behind.pk).update(
            created_at=timezone.now() - dt.timedelta(days=30)
        )
        if not page.has_next:
            break
        after = page.next_cursor
    assert len(seen) == len(set(seen))
    assert set(seen) == {p.pk for p in originals} | set(inserted_ahead)


@pytest.mark.django_db
def test_cursor_with_other_filters_or_order_is_refused():
    ProductFactory.create_batch(3, name="lamp")
    repository = SampleProductRepository()
    cursor = repository.paginate_cursor({"name": "lamp"}, limit=1).next_cursor
    assert cursor
    with pytest.raises(InvalidQueryError):
        repository.paginate_cursor({"name": "lam"}, after=cursor, limit=1)
    with pytest.raises(InvalidQueryError):
        repository.paginate_cursor({"name": "lamp"}, order_by=["-name"], after=cursor, limit=1)
    with pytest.raises(InvalidQueryError):
        repository.paginate_cursor({"name": "lamp"}, after=cursor, include_deleted=True)
    second = repository.paginate_cursor({"name": "lamp"}, after=cursor, limit=1)
    assert len(second.items) == 1


@pytest.mark.django_db
def test_cursor_from_another_repository_is_refused():
    from tests.repositories.sample_repositories import SampleCategoryRepository

    CategoryFactory.create_batch(2)
    cursor = SampleCategoryRepository().paginate_cursor(limit=1).next_cursor
    with pytest.raises(InvalidQueryError):
        SampleProductRepository().paginate_cursor(after=cursor, limit=1)


@pytest.mark.django_db
@pytest.mark.parametrize("limit", [0, -1, 101, "5", True, None, 2.0])
def test_cursor_page_rejects_bad_limit_before_any_query(limit, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(InvalidQueryError) as caught:
        SampleProductRepository().paginate_cursor(limit=limit)
    assert "limit" in caught.value.errors


@pytest.mark.django_db
def test_empty_cursor_text_means_first_page():
    ProductFactory.create()
    assert len(SampleProductRepository().paginate_cursor(after="").items) == 1


# --- the keyset condition is answered from the index ---------------------------------------


def _plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def _cursor_page_sql(order_by: list[str]) -> str:
    repository = SampleProductRepository()
    repository.create_many(
        [{"sku": f"E{i}", "name": f"n{i % 7}", "price": i % 50} for i in range(400)]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE products")
    cursor_text = repository.paginate_cursor(order_by=order_by, limit=2).next_cursor
    with CaptureQueriesContext(connection) as captured:
        repository.paginate_cursor(order_by=order_by, after=cursor_text, limit=2)
    [query] = captured.captured_queries
    return query["sql"]


@pytest.mark.django_db
@pytest.mark.parametrize("order_by", [["created_at"], ["-created_at"]])
def test_keyset_row_comparison_is_an_index_condition(order_by):
    sql = _cursor_page_sql(order_by)
    assert "ROW(" in sql
    plan = _plan(sql)
    assert "products_created_idx" in plan
    index_cond = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert "created_at" in index_cond
    assert "id" in index_cond
    assert "Sort" not in plan


@pytest.mark.django_db
def test_mixed_direction_keyset_bounds_the_leading_column_from_the_index():
    sql = _cursor_page_sql(["-price", "name"])
    plan = _plan(sql)
    assert "products_price_idx" in plan
    index_cond = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert "price <=" in index_cond
