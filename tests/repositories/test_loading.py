"""Instances from hand-written rows (repositories.core.loading) match what the ORM builds."""

from __future__ import annotations

import operator

import pytest
from django.db import connection
from django.db.models import Prefetch

from domain.models import Order, OrderItem, SystemConfig
from repositories.core.loading import attach_prefetched, row_loader
from tests.factories import OrderFactory, OrderItemFactory, SystemConfigFactory

pytestmark = pytest.mark.django_db


def _fields(model):
    return [f for f in model._meta.concrete_fields if not f.generated]


def test_row_loader_applies_field_converters_like_the_orm():
    entry = SystemConfigFactory.create(value={"limit": 3, "tags": ["a"]})
    fields = _fields(SystemConfig)
    columns = ", ".join(f'"{f.column}"' for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM system_config WHERE id = %s", [entry.pk])
        row = cursor.fetchone()
    loaded = row_loader(SystemConfig, fields, "default")(row)
    expected = SystemConfig.objects.get(pk=entry.pk)
    assert loaded.value == {"limit": 3, "tags": ["a"]}
    assert isinstance(loaded.value, dict)
    for field in fields:
        assert getattr(loaded, field.attname) == getattr(expected, field.attname)
        assert type(getattr(loaded, field.attname)) is type(getattr(expected, field.attname))
    assert loaded._state.adding is False
    assert loaded._state.db == "default"


def test_row_loader_leaves_fields_not_given_deferred():
    entry = SystemConfigFactory.create(value=[1, 2])
    fields = [SystemConfig._meta.pk, SystemConfig._meta.get_field("value")]
    loaded = row_loader(SystemConfig, fields, "default")((entry.pk, "[1, 2]"))
    assert loaded.value == [1, 2]
    assert "key" in loaded.get_deferred_fields()


def test_attach_prefetched_stores_what_prefetch_related_stores(django_assert_num_queries):
    order = OrderFactory.create()
    OrderItemFactory.create_batch(2, order=order)
    base = OrderItem.objects.order_by("product_name", "id")
    expected = Order.objects.prefetch_related(Prefetch("items", queryset=base)).get(pk=order.pk)
    built = Order.objects.get(pk=order.pk)
    attach_prefetched(built, "items", list(base.filter(order=order)), base)
    cache_of = operator.attrgetter("_prefetched_objects_cache")
    assert cache_of(built).keys() == cache_of(expected).keys()
    with django_assert_num_queries(0):
        items = list(built.items.all())
        assert all(item.order is built for item in items)
    assert [i.pk for i in items] == [i.pk for i in expected.items.all()]
    with django_assert_num_queries(1):  # further filtering still reads the database
        assert built.items.filter(quantity__gt=0).count() == 2
