"""seed_demo: consistent, deterministic, idempotent demo data."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from domain.models import (
    Category,
    InventoryMovement,
    Order,
    OrderItem,
    OrderStatus,
    OrderStatusHistory,
    Product,
    User,
)

pytestmark = pytest.mark.django_db

SMALL = {"users": 12, "categories": 6, "products": 30, "orders": 40}


def seed(**options):
    out = StringIO()
    call_command("seed_demo", no_progress=True, stdout=out, stderr=StringIO(), **(SMALL | options))
    return out.getvalue()


def scalar(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def fingerprint():
    """Everything seed_demo decides, minus database keys and wall-clock times."""
    return {
        "users": list(
            User.all_objects.order_by("email").values_list(
                "email", "first_name", "last_name", "is_active", "email_verified"
            )
        ),
        "categories": list(
            Category.all_objects.order_by("slug").values_list("slug", "name", "parent__slug")
        ),
        "products": list(
            Product.all_objects.order_by("sku").values_list(
                "sku", "name", "price", "stock_quantity", "is_active", "category__slug"
            )
        ),
        "orders": list(
            Order.objects.order_by("number").values_list(
                "number", "user__email", "status", "total", "version"
            )
        ),
        "items": list(
            OrderItem.objects.order_by("order__number", "sku").values_list(
                "order__number", "sku", "quantity", "line_total"
            )
        ),
    }


def test_seed_creates_requested_sizes():
    out = seed()
    assert User.all_objects.count() == 12
    assert Category.all_objects.count() == 6
    assert Product.all_objects.count() == 30
    assert Order.objects.count() == 40
    assert "Seeded 12 users, 6 categories, 30 products, 40 orders" in out


def test_seed_stock_equals_ledger_for_every_product():
    seed()
    mismatches = scalar(
        """SELECT count(*) FROM products p WHERE p.stock_quantity <>
           COALESCE((SELECT sum(delta) FROM inventory_movements m WHERE m.product_id = p.id), 0)"""
    )
    assert mismatches == 0
    reasons = set(InventoryMovement.objects.values_list("reason", flat=True))
    assert {"initial", "sale", "cancellation"} <= reasons


def test_seed_orders_cover_every_status_with_consistent_items_and_history():
    seed()
    assert set(Order.objects.values_list("status", flat=True)) == set(OrderStatus.values)
    assert not Order.objects.filter(items__isnull=True).exists()
    bad_totals = scalar(
        """SELECT count(*) FROM orders o WHERE o.subtotal <> o.total OR o.subtotal <>
           (SELECT sum(line_total) FROM order_items i WHERE i.order_id = o.id)"""
    )
    assert bad_totals == 0
    bad_history = scalar(
        """SELECT count(*) FROM orders o WHERE o.version <>
             (SELECT count(*) FROM order_status_history h WHERE h.order_id = o.id)
           OR o.status <> (SELECT to_status FROM order_status_history h WHERE h.order_id = o.id
                           ORDER BY created_at DESC, to_status = o.status DESC LIMIT 1)"""
    )
    assert bad_history == 0
    firsts = OrderStatusHistory.objects.filter(from_status__isnull=True)
    assert firsts.count() == Order.objects.count()
    assert set(firsts.values_list("to_status", flat=True)) == {"pending"}
    snapshot_mismatch = OrderItem.objects.exclude(sku=models_f("product__sku")).count()
    assert snapshot_mismatch == 0


def models_f(name):
    from django.db.models import F

    return F(name)


def test_seed_cancelled_orders_return_their_stock():
    seed()
    cancelled = Order.objects.filter(status="cancelled")
    assert cancelled.exists()
    for order in cancelled:
        moves = InventoryMovement.objects.filter(order=order)
        assert sum(m.delta for m in moves) == 0
    refunded_returns = InventoryMovement.objects.filter(
        order__status="refunded", reason="cancellation"
    )
    assert not refunded_returns.exists()


def test_seed_categories_form_a_tree():
    seed()
    roots = Category.objects.filter(parent__isnull=True)
    assert roots.exists()
    assert Category.objects.filter(parent__isnull=False).exists()
    # Every category reaches a root (the cycle trigger guarantees no loops on update).
    depth = scalar(
        """WITH RECURSIVE walk(id, parent_id, depth) AS (
               SELECT id, parent_id, 0 FROM categories
               UNION ALL
               SELECT w.id, c.parent_id, w.depth + 1 FROM walk w
               JOIN categories c ON c.id = w.parent_id WHERE w.depth < 50)
           SELECT max(depth) FROM walk"""
    )
    assert depth < 50


def test_second_run_does_nothing():
    seed()
    before = fingerprint()
    out = seed(users=50, orders=100)
    assert "nothing to do" in out
    assert fingerprint() == before


def test_same_seed_gives_same_data_and_other_seed_differs():
    seed(seed=3)
    first = fingerprint()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred FK checks pending
        cursor.execute(
            "TRUNCATE inventory_movements, order_items, order_status_history, orders, "
            "products, categories, users CASCADE"
        )
    seed(seed=3)
    assert fingerprint() == first
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred FK checks pending
        cursor.execute(
            "TRUNCATE inventory_movements, order_items, order_status_history, orders, "
            "products, categories, users CASCADE"
        )
    seed(seed=4)
    assert fingerprint() != first


def test_negative_sizes_are_refused():
    with pytest.raises(CommandError, match="zero or more"):
        seed(users=-1)


def test_orders_without_users_are_refused():
    with pytest.raises(CommandError, match="active user"):
        seed(users=0)
    assert not Product.all_objects.exists()  # nothing half-written


def test_empty_seed_writes_nothing():
    out = seed(users=0, categories=0, products=0, orders=0)
    assert "Seeded 0 users" in out
    assert not User.all_objects.exists()


def test_seed_never_oversells_when_stock_runs_out():
    seed(products=1, orders=200)
    product = Product.all_objects.get()
    sold = -sum(m.delta for m in InventoryMovement.objects.filter(reason="sale"))
    assert product.stock_quantity >= 0
    assert Order.objects.count() < 200  # orders that found no stock were not placed
    assert sold > 0


def test_seed_shows_a_progress_bar(capsys):
    call_command("seed_demo", stdout=StringIO(), **(SMALL | {"orders": 5}))
    assert "seed_demo" in capsys.readouterr().err


def test_seed_writes_an_audit_trail_dated_like_the_data():
    from domain.models import AuditLog

    seed()
    created = dict(
        AuditLog.objects.filter(action="created")
        .values_list("entity_type")
        .annotate(n=Count("id"))
        .values_list("entity_type", "n")
    )
    assert created == {"user": 12, "category": 6, "product": 30, "order": 40}
    transitions = OrderStatusHistory.objects.exclude(from_status=None).count()
    assert AuditLog.objects.filter(action="status_changed").count() == transitions
    deleted = User.all_objects.exclude(deleted_at=None).count()
    deleted += Product.all_objects.exclude(deleted_at=None).count()
    assert AuditLog.objects.filter(action="soft_deleted").count() == deleted
    assert set(AuditLog.objects.values_list("actor_repr", flat=True)) == {"seed_demo"}
    order = Order.objects.filter(status="shipped").first()
    assert order is not None
    steps = AuditLog.objects.filter(entity_id=str(order.pk), action="status_changed")
    assert [s.changes["status"]["new"] for s in steps.order_by("occurred_at")] == [
        "paid",
        "shipped",
    ]
    last = steps.order_by("occurred_at").last()
    assert last is not None
    assert last.changes["version"]["new"] == order.version
    product = Product.all_objects.order_by("sku").first()
    assert product is not None
    entry = AuditLog.objects.get(entity_id=str(product.pk), action="created")
    assert entry.occurred_at == product.created_at


def test_seed_audit_rows_go_in_one_insert_per_batch():
    from domain.demo import BATCH_SIZE
    from domain.models import AuditLog

    with CaptureQueriesContext(connection) as ctx:
        seed()
    inserts = [q["sql"] for q in ctx.captured_queries if 'INSERT INTO "audit_logs"' in q["sql"]]
    assert len(inserts) == -(-AuditLog.objects.count() // BATCH_SIZE)


def test_seed_prints_no_slow_query_warnings(caplog, settings):
    settings.REPOSITORIES = settings.REPOSITORIES | {"SLOW_QUERY_MS": 0}
    with caplog.at_level("WARNING", logger="repositories.queries"):
        seed()
    assert not [r for r in caplog.records if r.name == "repositories.queries"]
