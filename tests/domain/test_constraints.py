"""Every schema rule is enforced by PostgreSQL itself, for the ORM and for raw SQL alike."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from domain.models import Category, Order, Product, User
from tests.factories import (
    CategoryFactory,
    OrderFactory,
    OrderItemFactory,
    ProductFactory,
    SystemConfigFactory,
    UserFactory,
    UserSessionFactory,
)

pytestmark = pytest.mark.django_db


def constraint_of(exc: BaseException) -> str | None:
    """Return the name of the constraint PostgreSQL reported for a failed statement."""
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    return getattr(diag, "constraint_name", None)


def raw_insert(table: str, **values: Any) -> uuid.UUID:
    """INSERT one row with raw SQL (no Django validation at all); return its key."""
    columns = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    with connection.cursor() as cursor:
        # Foreign keys are DEFERRABLE INITIALLY DEFERRED: check them at the statement.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING id",
            list(values.values()),
        )
        return cursor.fetchone()[0]


def expect_violation(constraint: str, table: str, **values: Any) -> None:
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        raw_insert(table, **values)
    assert constraint_of(info.value) == constraint


@pytest.fixture
def rows() -> dict[str, Any]:
    """Valid parent rows, inserted with raw SQL, for the child rows under test."""
    user = raw_insert("users", email="raw@example.com", password="!", is_superuser=False)
    product = raw_insert("products", sku="RAW-1", name="Raw", price=Decimal("1.00"))
    order = raw_insert(
        "orders",
        number="RAW-0001",
        user_id=user,
        subtotal=Decimal("0"),
        total=Decimal("0"),
        placed_at=timezone.now(),
    )
    return {"user": user, "product": product, "order": order}


def item(rows: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    values = {
        "order_id": rows["order"],
        "product_id": rows["product"],
        "sku": "RAW-1",
        "product_name": "Raw",
        "unit_price": Decimal("2.00"),
        "quantity": 2,
        "line_total": Decimal("4.00"),
    }
    return values | overrides


def test_raw_insert_of_valid_rows_succeeds(rows):
    raw_insert("order_items", **item(rows))
    raw_insert("inventory_movements", product_id=rows["product"], delta=5, reason="initial")
    raw_insert("order_status_history", order_id=rows["order"], to_status="pending")
    assert Order.objects.get(pk=rows["order"]).items.count() == 1


@pytest.mark.parametrize(
    ("constraint", "table", "values"),
    [
        ("users_email_not_empty", "users", {"email": "", "password": "!", "is_superuser": False}),
        ("categories_slug_not_empty", "categories", {"name": "A", "slug": ""}),
        ("products_price_non_negative", "products", {"sku": "P", "name": "P", "price": -1}),
        (
            "products_stock_non_negative",
            "products",
            {"sku": "P", "name": "P", "price": 1, "stock_quantity": -1},
        ),
        (
            "products_currency_iso4217",
            "products",
            {"sku": "P", "name": "P", "price": 1, "currency": "eur"},
        ),
        ("products_sku_not_empty", "products", {"sku": "", "name": "P", "price": 1}),
        ("system_config_key_format", "system_config", {"key": "bad key!"}),
    ],
)
def test_check_constraint_rejects_bad_row_via_raw_sql(constraint, table, values):
    expect_violation(constraint, table, **values)


@pytest.mark.parametrize(
    ("constraint", "overrides"),
    [
        ("order_items_quantity_positive", {"quantity": 0, "line_total": Decimal("0")}),
        ("order_items_unit_price_non_negative", {"unit_price": -1, "line_total": -2}),
        ("order_items_line_total_matches", {"line_total": Decimal("5.00")}),
        ("order_items_product_id_dd557d5a_fk_products_id", {"product_id": uuid.uuid4()}),
        ("order_items_order_id_412ad78b_fk_orders_id", {"order_id": uuid.uuid4()}),
    ],
)
def test_order_item_rule_rejects_bad_row_via_raw_sql(rows, constraint, overrides):
    expect_violation(constraint, "order_items", **item(rows, **overrides))


@pytest.mark.parametrize(
    ("constraint", "values"),
    [
        ("orders_status_valid", {"status": "lost"}),
        ("orders_subtotal_non_negative", {"subtotal": -1}),
        ("orders_total_non_negative", {"total": -1}),
        ("orders_currency_iso4217", {"currency": "eur"}),
        ("orders_number_key", {"number": "RAW-0001"}),
    ],
)
def test_order_rule_rejects_bad_row_via_raw_sql(rows, constraint, values):
    base = {
        "number": "RAW-0002",
        "user_id": rows["user"],
        "subtotal": 0,
        "total": 0,
        "placed_at": timezone.now(),
    }
    expect_violation(constraint, "orders", **(base | values))


def test_order_idempotency_key_is_unique_per_user_only(rows):
    other_user = UserFactory.create()
    base = {"subtotal": 0, "total": 0, "placed_at": timezone.now(), "idempotency_key": "k-1"}
    raw_insert("orders", number="RAW-A", user_id=rows["user"], **base)
    raw_insert("orders", number="RAW-B", user_id=other_user.pk, **base)  # another user: fine
    expect_violation(
        "orders_user_idempotency_uniq", "orders", number="RAW-C", user_id=rows["user"], **base
    )
    # NULL keys never clash.
    base["idempotency_key"] = None
    raw_insert("orders", number="RAW-D", user_id=rows["user"], **base)
    raw_insert("orders", number="RAW-E", user_id=rows["user"], **base)


@pytest.mark.parametrize(
    ("constraint", "values"),
    [
        ("inventory_delta_non_zero", {"delta": 0, "reason": "adjustment"}),
        ("inventory_reason_valid", {"delta": 1, "reason": "gift"}),
    ],
)
def test_inventory_rule_rejects_bad_row_via_raw_sql(rows, constraint, values):
    expect_violation(constraint, "inventory_movements", product_id=rows["product"], **values)


@pytest.mark.parametrize(
    ("constraint", "values"),
    [
        ("order_history_to_status_valid", {"to_status": "lost"}),
        ("order_history_from_status_valid", {"from_status": "lost", "to_status": "paid"}),
    ],
)
def test_status_history_rule_rejects_bad_row_via_raw_sql(rows, constraint, values):
    expect_violation(constraint, "order_status_history", order_id=rows["order"], **values)


def test_session_rules_reject_bad_rows_via_raw_sql(rows):
    later = timezone.now() + timedelta(days=1)
    expect_violation(
        "user_sessions_token_hash_sha256",
        "user_sessions",
        user_id=rows["user"],
        token_hash="not-a-hash",
        expires_at=later,
    )
    expect_violation(
        "user_sessions_expiry_after_creation",
        "user_sessions",
        user_id=rows["user"],
        token_hash="a" * 64,
        expires_at=timezone.now() - timedelta(days=1),
    )
    session = UserSessionFactory.create()
    expect_violation(
        "user_sessions_token_hash_key",
        "user_sessions",
        user_id=rows["user"],
        token_hash=session.token_hash,
        expires_at=later,
    )


def test_check_constraint_rejects_bad_row_via_orm():
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        Product.objects.create(sku="NEG", name="Negative", price=Decimal("-0.01"))
    assert constraint_of(info.value) == "products_price_non_negative"


def test_update_to_negative_stock_is_rejected():
    product = ProductFactory.with_stock(2)
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        Product.objects.filter(pk=product.pk).update(stock_quantity=-1)
    assert constraint_of(info.value) == "products_stock_non_negative"


def test_order_item_one_row_per_product_per_order():
    line = OrderItemFactory.create()
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        OrderItemFactory.create(order=line.order, product=line.product)
    assert constraint_of(info.value) == "order_items_one_per_product"


def test_system_config_key_is_unique():
    SystemConfigFactory.create(key="feature.x")
    with pytest.raises(IntegrityError), transaction.atomic():
        SystemConfigFactory.create(key="feature.x")


# --- live-only uniqueness ------------------------------------------------------------------


def test_user_email_unique_ignoring_case_among_live_users():
    UserFactory.create(email="Alice@Example.com")
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        raw_insert("users", email="alice@example.COM", password="!", is_superuser=False)
    assert constraint_of(info.value) == "users_email_live_uniq"


def test_deleted_users_email_can_register_again():
    old = UserFactory.create(email="bob@example.com", deleted=True)
    new = User.objects.create_user("BOB@example.com", "pw")
    assert new.pk != old.pk
    # Several deleted rows may share the email too.
    User.all_objects.filter(pk=new.pk).soft_delete()
    User.objects.create_user("bob@example.com", "pw")
    assert User.all_objects.with_email("bob@example.com").count() == 3
    assert User.objects.with_email("bob@example.com").count() == 1


def test_restoring_a_user_whose_email_was_taken_again_is_rejected():
    old = UserFactory.create(email="carol@example.com", deleted=True)
    UserFactory.create(email="carol@example.com")
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        User.all_objects.filter(pk=old.pk).update(deleted_at=None)
    assert constraint_of(info.value) == "users_email_live_uniq"


def test_category_slug_unique_among_live_rows_only():
    CategoryFactory.create(slug="garden", deleted=True)
    CategoryFactory.create(slug="garden")
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        CategoryFactory.create(slug="garden")
    assert constraint_of(info.value) == "categories_slug_live_uniq"


def test_product_sku_unique_among_live_rows_only():
    ProductFactory.create(sku="SKU-X", deleted=True)
    ProductFactory.create(sku="SKU-X")
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        raw_insert("products", sku="SKU-X", name="Dup", price=1)
    assert constraint_of(info.value) == "products_sku_live_uniq"


# --- foreign keys and the category tree ----------------------------------------------------


def test_protected_foreign_key_refuses_delete_at_database_level():
    line = OrderItemFactory.create()
    with pytest.raises(IntegrityError) as info, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("DELETE FROM products WHERE id = %s", [line.product_id])
    assert constraint_of(info.value) == "order_items_product_id_dd557d5a_fk_products_id"


def test_category_cannot_be_its_own_parent():
    # An INSERT, since on UPDATE the cycle trigger (which also sees this) fires first.
    key = uuid.uuid4()
    expect_violation(
        "categories_not_own_parent", "categories", id=key, parent_id=key, name="A", slug="a"
    )


def test_category_update_to_own_parent_is_refused():
    category = CategoryFactory.create()
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        Category.objects.filter(pk=category.pk).update(parent=category.pk)
    assert constraint_of(info.value) == "categories_no_cycle"


def test_category_cycle_is_refused_by_trigger():
    root = CategoryFactory.create()
    child = CategoryFactory.create(parent=root)
    grandchild = CategoryFactory.create(parent=child)
    with pytest.raises(IntegrityError) as info, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE categories SET parent_id = %s WHERE id = %s", [grandchild.pk, root.pk]
        )
    assert constraint_of(info.value) == "categories_no_cycle"
    assert getattr(info.value.__cause__, "sqlstate", None) == "23514"


def test_category_move_without_cycle_is_allowed():
    root, other = CategoryFactory.create(), CategoryFactory.create()
    child = CategoryFactory.create(parent=root)
    Category.objects.filter(pk=child.pk).update(parent=other)
    Category.objects.filter(pk=root.pk).update(parent=child)  # root under other's subtree
    assert Category.objects.get(pk=root.pk).parent_id == child.pk


def test_order_status_check_rejects_unknown_status_via_orm():
    order = OrderFactory.create()
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        Order.objects.filter(pk=order.pk).update(status="lost")
    assert constraint_of(info.value) == "orders_status_valid"
