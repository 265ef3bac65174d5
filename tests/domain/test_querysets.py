"""QuerySet helpers filter as their names say (they hold no business rules)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from domain.models import Category, Order, Product, User, UserSession
from domain.models.base import new_uuid
from tests.factories import (
    CategoryFactory,
    OrderFactory,
    OrderItemFactory,
    ProductFactory,
    UserFactory,
    UserSessionFactory,
)

pytestmark = pytest.mark.django_db


def test_user_active_excludes_inactive_users():
    active = UserFactory.create()
    UserFactory.create(is_active=False)
    assert list(User.all_objects.alive().active()) == [active]


def test_category_roots_are_parentless_categories():
    root = CategoryFactory.create()
    CategoryFactory.create(parent=root)
    assert list(Category.objects.roots()) == [root]


def test_product_helpers_filter_and_preload(django_assert_num_queries):
    category = CategoryFactory.create()
    active = ProductFactory.create(category=category)
    ProductFactory.create(category=category, is_active=False)
    ProductFactory.create()
    assert list(Product.objects.active().for_category(category.pk)) == [active]
    with django_assert_num_queries(1):
        names = [p.category.name for p in Product.objects.with_category()]
    assert len(names) == 3


def test_order_helpers_filter_and_prefetch(django_assert_num_queries):
    user = UserFactory.create()
    paid = OrderFactory.create(user=user, status="paid")
    OrderFactory.create(user=user, status="pending")
    OrderFactory.create(status="delivered")
    OrderItemFactory.create_batch(2, order=paid)
    assert set(Order.objects.for_user(user.pk)) == {paid, Order.objects.get(status="pending")}
    assert set(Order.objects.revenue_bearing().values_list("status", flat=True)) == {
        "paid",
        "delivered",
    }
    with django_assert_num_queries(3):  # orders; items; products
        skus = [i.product.sku for o in Order.objects.with_items() for i in o.items.all()]
    assert len(skus) == 2


def test_session_helpers_split_active_expired_and_revoked():
    user = UserFactory.create()
    active = UserSessionFactory.create(user=user)
    UserSessionFactory.create(user=user, revoked_at=timezone.now())
    expired = UserSessionFactory.create()
    UserSession.objects.filter(pk=expired.pk).update(
        created_at=timezone.now() - timedelta(days=2),
        expires_at=timezone.now() - timedelta(days=1),
    )
    assert list(UserSession.objects.for_user(user.pk).active()) == [active]
    assert list(UserSession.objects.expired()) == [expired]


def test_new_uuid_returns_distinct_version_4_keys():
    first, second = new_uuid(), new_uuid()
    assert first != second
    assert first.version == 4
