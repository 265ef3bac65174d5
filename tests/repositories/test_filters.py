"""StrictFilterSet: unknown keys and invalid values are errors; every filter kind works."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import models
from django.http import QueryDict
from django.utils import timezone
from django_filters import filters

from domain.models import AuditLog, Category, Product
from repositories.core.arguments import MAX_BIGINT
from repositories.core.filters import StrictFilterSet, key_filter
from repositories.errors import InvalidQueryError
from tests.factories import CategoryFactory, ProductFactory
from tests.repositories.sample_repositories import (
    SampleProductFilterSet,
    SampleProductRepository,
)

# --- validation without a database ---------------------------------------------------------


class RangedFilterSet(StrictFilterSet):
    name = filters.CharFilter()
    price = filters.RangeFilter()
    created = filters.IsoDateTimeFromToRangeFilter(field_name="created_at")


def test_data_keys_include_range_suffixes():
    keys = SampleProductFilterSet.data_keys()
    assert keys["price_min"] == "price"
    assert keys["price_max"] == "price"
    assert keys["created_after"] == "created"
    assert "price" not in keys


def test_data_keys_map_each_accepted_key_to_its_filter():
    assert RangedFilterSet.data_keys() == {
        "name": "name",
        "price_min": "price",
        "price_max": "price",
        "created_after": "created",
        "created_before": "created",
    }


def test_a_subclass_accepts_its_own_filters_and_the_parent_does_not():
    class WithSku(RangedFilterSet):
        sku = filters.CharFilter()

    assert RangedFilterSet.normalize({"name": "x"}) == ({"name": "x"}, False)  # parent first
    assert WithSku.normalize({"sku": "A-1", "price_min": "2"}) == (
        {"sku": "A-1", "price_min": "2"},
        False,
    )
    with pytest.raises(InvalidQueryError) as caught:
        RangedFilterSet.normalize({"sku": "A-1"})
    assert list(caught.value.errors) == ["sku"]


def test_unknown_filter_message_lists_every_accepted_key_in_order():
    with pytest.raises(InvalidQueryError) as caught:
        RangedFilterSet.normalize({"bogus": "x"})
    allowed = "created_after, created_before, name, price_max, price_min"
    assert caught.value.errors == {"bogus": [f"Unknown filter. Allowed filters: {allowed}."]}


@pytest.mark.parametrize(
    "key", ["bogus", "name__regex", "email__regex", "price", "user__password", "id", ""]
)
def test_unknown_filter_key_raises_with_allowed_names(key):
    with pytest.raises(InvalidQueryError) as caught:
        SampleProductFilterSet.normalize({key: "x"})
    [message] = caught.value.errors[key]
    assert "Unknown filter" in message
    assert "price_min" in message


def test_every_unknown_key_is_reported_at_once():
    with pytest.raises(InvalidQueryError) as caught:
        SampleProductFilterSet.normalize({"a": 1, "b": 2, "name": "ok", 3: "x"})
    assert set(caught.value.errors) == {"a", "b", "3"}


@pytest.mark.parametrize("data", [["name"], "name=x", 5, ("a", 1)])
def test_filters_that_are_not_a_mapping_raise(data):
    with pytest.raises(InvalidQueryError) as caught:
        SampleProductFilterSet.normalize(data)
    assert caught.value.errors == {"__all__": ["Filters must be a mapping of names to values."]}


def test_every_invalid_value_is_reported_at_once():
    data = {"is_active": "maybe", "name": ["a", "b"], "sku": "ok", "bogus": 1}
    with pytest.raises(InvalidQueryError) as caught:
        SampleProductFilterSet.normalize(data)
    assert set(caught.value.errors) == {"is_active", "name", "bogus"}


def test_empty_in_list_does_not_hide_an_invalid_filter_after_it():
    with pytest.raises(InvalidQueryError) as caught:
        SampleProductFilterSet.normalize({"id__in": [], "is_active": "maybe", "bogus": 1})
    assert set(caught.value.errors) == {"is_active", "bogus"}


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("is_active", True, "true"),
        ("is_active", False, "false"),
        ("name", True, "true"),
        ("name", False, "false"),
        ("is_active", "False", "false"),
        ("is_active", "1", "true"),
        ("is_active", "off", "false"),
        ("price_min", Decimal("2.5"), "2.5"),
        ("price_min", 3, "3"),
        ("category", uuid.UUID(int=7), str(uuid.UUID(int=7))),
        ("created_after", dt.datetime(2024, 1, 2, tzinfo=dt.UTC), "2024-01-02T00:00:00+00:00"),
        ("id__in", [uuid.UUID(int=1), uuid.UUID(int=2)], [str(uuid.UUID(int=i)) for i in (1, 2)]),
        ("currency", "EUR", ["EUR"]),
        ("currency", ("EUR", "USD"), ["EUR", "USD"]),
        ("id__in", "a,b", "a,b"),
    ],
)
def test_values_become_query_string_values(key, value, expected):
    form_data, nothing = SampleProductFilterSet.normalize({key: value})
    assert form_data == {key: expected}
    assert nothing is False


@pytest.mark.parametrize("value", [None, "", " "])
def test_empty_values_mean_no_constraint(value):
    key = "id__in" if value == " " else "name"
    assert SampleProductFilterSet.normalize({key: value}) == ({}, False)


@pytest.mark.parametrize("blank", [None, ""])
def test_blank_value_before_a_real_filter_keeps_the_real_filter(blank):
    data = {"name": blank, "category_name": blank, "sku": "SKU-1", "is_active": "yes"}
    assert SampleProductFilterSet.normalize(data) == ({"sku": "SKU-1", "is_active": "true"}, False)


def test_empty_list_for_an_in_filter_matches_nothing():
    assert SampleProductFilterSet.normalize({"id__in": []}) == ({}, True)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("is_active", "maybe", "Enter true or false."),
        ("name", ["a", "b"], "Expected a single value, not a list."),
        ("id__in", ["a,b"], "Values in a list may not contain commas."),
        ("name", object(), "Unsupported value type object."),
        ("name", {"a": 1}, "Unsupported value type dict."),
        ("id__in", [["nested"]], "Unsupported value type list."),
    ],
)
def test_values_of_the_wrong_shape_raise(key, value, message):
    with pytest.raises(InvalidQueryError) as caught:
        SampleProductFilterSet.normalize({key: value})
    assert caught.value.errors == {key: [message]}


def test_query_dict_from_a_request_is_accepted():
    query = QueryDict("name=lamp&price_min=2&is_active=true")
    form_data, _ = SampleProductFilterSet.normalize(query)
    assert form_data == {"name": "lamp", "price_min": "2", "is_active": "true"}


def test_filterset_without_filters_accepts_nothing():
    class Empty(StrictFilterSet):
        pass

    assert Empty.data_keys() == {}
    with pytest.raises(InvalidQueryError) as caught:
        Empty.normalize({"name": "x"})
    assert caught.value.errors == {"name": ["Unknown filter. Allowed filters: none."]}


def _keyed_filterset() -> type[StrictFilterSet]:
    # Declared when called: key_filter runs inside the test, and the filters' names differ
    # from the columns they filter, as `user = user_key_filter("user_id")` does.
    class Keyed(StrictFilterSet):
        in_category = key_filter(Category._meta.pk, "category_id")
        stock = key_filter(AuditLog._meta.pk, "stock_quantity")
        code = key_filter(models.CharField(primary_key=True, max_length=20), "sku")

    return Keyed


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("in_category", "not-a-uuid", "Enter a valid UUID."),
        ("stock", "25.5", "Enter a whole number."),
        ("stock", MAX_BIGINT + 1, f"Ensure this value is less than or equal to {MAX_BIGINT}."),
        ("stock", -MAX_BIGINT - 1, f"Ensure this value is greater than or equal to {-MAX_BIGINT}."),
    ],
)
def test_key_filter_validates_values_like_the_primary_key(key, value, message):
    with pytest.raises(InvalidQueryError) as caught:
        _keyed_filterset().apply({key: value}, Product.objects.all())
    assert caught.value.errors == {key: [message]}


@pytest.mark.parametrize("value", [MAX_BIGINT, -MAX_BIGINT, 0])
def test_integer_key_filter_accepts_every_bigint_key(value):
    _keyed_filterset().apply({"stock": value}, Product.objects.all())  # valid: no error


# --- applied to a repository ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("price_min", "abc"),
        ("price_max", "NaN"),
        ("created_after", "yesterday"),
        ("category", "not-a-uuid"),
        ("id__in", ["x"]),
        ("stock_quantity__in", "1,a"),
        ("currency", ["GBP"]),
        ("name", "a\x00b"),
    ],
)
def test_invalid_value_raises_with_form_errors_before_any_query(
    key, value, django_assert_num_queries
):
    field = SampleProductFilterSet.data_keys()[key]
    with django_assert_num_queries(0), pytest.raises(InvalidQueryError) as caught:
        SampleProductRepository().find_many({key: value})
    assert list(caught.value.errors) == [field]
    assert caught.value.errors[field]


@pytest.mark.django_db
def test_text_contains_filter_is_case_insensitive():
    ProductFactory.create(name="Red Lamp")
    ProductFactory.create(name="Chair")
    assert [p.name for p in SampleProductRepository().find_many({"name": "lamp"})] == ["Red Lamp"]


@pytest.mark.django_db
def test_blank_filter_first_does_not_drop_the_filters_after_it():
    ProductFactory.create(name="Lamp", sku="WANTED-1")
    ProductFactory.create(name="Lamp", sku="OTHER-2")
    rows = SampleProductRepository().find_many({"name": "", "sku": "WANTED-1"})
    assert [p.sku for p in rows] == ["WANTED-1"]


@pytest.mark.django_db
def test_price_range_filter_is_inclusive():
    for price in ("1.00", "5.00", "9.00"):
        ProductFactory.create(price=Decimal(price))
    repository = SampleProductRepository()
    rows = repository.find_many({"price_min": "5", "price_max": Decimal("9")}, order_by=["price"])
    assert [p.price for p in rows] == [Decimal("5.00"), Decimal("9.00")]
    assert repository.count({"price_max": 1}) == 1


@pytest.mark.django_db
def test_date_range_filter_uses_created_at():
    old = ProductFactory.create()
    Product.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=10))
    new = ProductFactory.create()
    cutoff = timezone.now() - dt.timedelta(days=1)
    repository = SampleProductRepository()
    assert repository.find_many({"created_after": cutoff}) == [new]
    assert repository.find_many({"created_before": cutoff.isoformat()}) == [old]


@pytest.mark.django_db
def test_in_filters_accept_lists_and_comma_separated_text():
    products = ProductFactory.create_batch(3)
    repository = SampleProductRepository()
    wanted = [products[0].pk, products[2].pk]
    assert set(repository.find_many({"id__in": wanted})) == {products[0], products[2]}
    text = ",".join(str(k) for k in wanted)
    assert repository.count({"id__in": text}) == 2


@pytest.mark.django_db
def test_empty_in_list_matches_nothing_without_a_query(django_assert_num_queries):
    ProductFactory.create()
    with django_assert_num_queries(0):
        assert SampleProductRepository().find_many({"id__in": []}) == []


@pytest.mark.django_db
def test_boolean_filter_accepts_booleans_and_text():
    ProductFactory.create(is_active=True)
    ProductFactory.create(is_active=False)
    repository = SampleProductRepository()
    assert repository.count({"is_active": True}) == 1
    assert repository.count({"is_active": "false"}) == 1
    assert repository.count({"is_active": None}) == 2


@pytest.mark.django_db
def test_related_id_filters_accept_keys_and_instances():
    tools, toys = CategoryFactory.create_batch(2)
    ProductFactory.create_batch(2, category=tools)
    ProductFactory.create(category=toys)
    repository = SampleProductRepository()
    assert repository.count({"category": tools.pk}) == 2
    assert repository.count({"category": tools}) == 2
    assert repository.count({"category__in": [tools, toys]}) == 3
    assert repository.count({"category_name": tools.name.upper()}) == 2


@pytest.mark.django_db
def test_invalid_value_error_carries_the_form_field_message():
    with pytest.raises(InvalidQueryError) as caught:
        SampleProductRepository().find_many({"price_min": "abc", "category": "x"})
    assert caught.value.errors == {
        "price": ["Enter a number."],
        "category": ["Enter a valid UUID."],
    }


@pytest.mark.django_db
def test_key_filters_narrow_the_column_they_name():
    wanted = ProductFactory.create(sku="K-1", stock_quantity=5)
    ProductFactory.create(sku="K-2", stock_quantity=6)
    keyed = _keyed_filterset()
    for data in ({"in_category": wanted.category_id}, {"stock": 5}, {"code": "K-1"}):
        assert list(keyed.apply(data, Product.objects.all())) == [wanted], data


@pytest.mark.django_db
def test_multiple_choice_filter_matches_any_of_the_values():
    ProductFactory.create(currency="EUR")
    ProductFactory.create(currency="USD")
    repository = SampleProductRepository()
    assert repository.count({"currency": ["EUR", "USD"]}) == 2
    assert repository.count({"currency": "USD"}) == 1


@pytest.mark.django_db
def test_apply_narrows_any_queryset():
    ProductFactory.create(name="lamp")
    ProductFactory.create(name="desk")
    narrowed = SampleProductFilterSet.apply({"name": "lam"}, Product.objects.all())
    assert [p.name for p in narrowed] == ["lamp"]
    assert SampleProductFilterSet.apply({"id__in": []}, Product.objects.all()).count() == 0
    assert SampleProductFilterSet.apply(None, Product.objects.all()).count() == 2
