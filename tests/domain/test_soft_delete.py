"""Soft delete: default and related managers hide deleted rows; forward keys still load them."""

from __future__ import annotations

import pytest

from domain.models import Category, Product, User
from tests.factories import CategoryFactory, OrderItemFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_default_managers_hide_deleted_rows():
    live_user, dead_user = UserFactory.create(), UserFactory.create(deleted=True)
    live_cat = CategoryFactory.create()
    CategoryFactory.create(deleted=True)
    live_prod = ProductFactory.create(category=live_cat)
    dead_prod = ProductFactory.create(category=live_cat, deleted=True)
    assert list(User.objects.all()) == [live_user]
    assert list(Category.objects.all()) == [live_cat]
    assert list(Product.objects.all()) == [live_prod]
    assert dead_user not in User.objects.all()
    assert dead_prod not in Product.objects.all()


def test_all_objects_include_deleted_rows():
    live, dead = UserFactory.create(), UserFactory.create(deleted=True)
    assert set(User.all_objects.all()) == {live, dead}
    assert list(User.all_objects.deleted()) == [dead]
    assert list(User.all_objects.alive()) == [live]
    product = ProductFactory.create(deleted=True)
    assert Product.all_objects.filter(pk=product.pk).exists()
    category = CategoryFactory.create(deleted=True)
    assert Category.all_objects.filter(pk=category.pk).exists()


def test_related_manager_hides_deleted_products():
    category = CategoryFactory.create()
    live = ProductFactory.create(category=category)
    ProductFactory.create(category=category, deleted=True)
    assert list(category.products.all()) == [live]
    assert category.products.count() == 1


def test_related_manager_hides_deleted_children():
    root = CategoryFactory.create()
    child = CategoryFactory.create(parent=root)
    CategoryFactory.create(parent=root, deleted=True)
    assert list(root.children.all()) == [child]


def test_prefetch_of_related_manager_hides_deleted_rows():
    category = CategoryFactory.create()
    live = ProductFactory.create(category=category)
    ProductFactory.create(category=category, deleted=True)
    (loaded,) = Category.objects.filter(pk=category.pk).prefetch_related("products")
    assert list(loaded.products.all()) == [live]


def test_forward_key_loads_deleted_product_from_order_item():
    line = OrderItemFactory.create()
    Product.objects.filter(pk=line.product_id).soft_delete()
    line.refresh_from_db()
    assert line.product.is_deleted
    assert line.product.sku == line.sku


def test_forward_key_loads_deleted_row_with_select_related():
    line = OrderItemFactory.create()
    Product.objects.filter(pk=line.product_id).soft_delete()
    loaded = type(line).objects.select_related("product", "order__user").get(pk=line.pk)
    assert loaded.product.deleted_at is not None


def test_forward_key_loads_deleted_parent_category():
    parent = CategoryFactory.create()
    child = CategoryFactory.create(parent=parent)
    Category.objects.filter(pk=parent.pk).soft_delete()
    child = Category.objects.get(pk=child.pk)
    assert child.parent == parent
    assert child.parent is not None
    assert child.parent.is_deleted


def test_soft_delete_queryset_marks_rows_and_returns_count():
    products = ProductFactory.create_batch(3)
    touched = Product.objects.filter(pk__in=[p.pk for p in products[:2]]).soft_delete()
    assert touched == 2
    assert Product.objects.count() == 1
    assert Product.all_objects.deleted().count() == 2


def test_user_manager_lookup_ignores_deleted_users():
    UserFactory.create(email="gone@example.com", deleted=True)
    assert User.objects.with_email("GONE@example.com").first() is None
    with pytest.raises(User.DoesNotExist):
        User.objects.get_by_natural_key("gone@example.com")
