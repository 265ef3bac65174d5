"""Migrations: complete (no pending changes) and reversible on a database holding data.

These tests migrate the test database itself, so they run with transaction=True and always
migrate it forward again, even when an assertion fails. Under pytest-xdist each worker has
its own test database (test_<name>_gw<N>), so nothing else sees the intermediate states.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from domain.models import Order, Product, User
from tests.factories import AuditLogFactory, OrderItemFactory, ProductFactory

LATEST = "0003_secondary_indexes"


def tables() -> set[str]:
    return set(connection.introspection.table_names())


def triggers() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        return {row[0] for row in cursor.fetchall()}


def indexes(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table])
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def remigrate():
    """Leave the test database fully migrated whatever the test did."""
    yield
    call_command("migrate", verbosity=0)


@pytest.mark.django_db
def test_makemigrations_check_is_clean():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)  # SystemExit(1) if not
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_migrations_reverse_keeps_data_and_forward_restores_rules(remigrate):
    line = OrderItemFactory.create(product=ProductFactory.with_stock(3))
    AuditLogFactory.create()

    call_command("migrate", "domain", "0001", verbosity=0)
    assert "audit_logs_append_only" not in triggers()
    assert "categories_no_cycle" not in triggers()
    assert "products_search_gin" not in indexes("products")
    assert Product.all_objects.get(pk=line.product_id).stock_quantity == 3
    assert Order.objects.filter(pk=line.order_id).exists()

    call_command("migrate", "domain", LATEST, verbosity=0)
    assert {"audit_logs_append_only", "categories_no_cycle"} <= triggers()
    assert "products_search_gin" in indexes("products")
    assert Order.objects.get(pk=line.order_id).items.count() == 1


@pytest.mark.django_db(transaction=True)
def test_migrate_domain_zero_and_back(remigrate):
    User.objects.create_user("before@example.com", "pw")
    call_command("migrate", "domain", "zero", verbosity=0)
    assert not {"users", "products", "orders", "audit_logs"} & tables()

    call_command("migrate", verbosity=0)
    assert {"users", "products", "orders", "audit_logs", "user_sessions"} <= tables()
    # The schema is whole again: rules and the generated search column work.
    user = User.objects.create_user("after@example.com", "pw")
    product = ProductFactory.create(name="Round trip lamp")
    assert Product.objects.filter(search_vector="lamp").get() == product
    assert User.objects.with_email("AFTER@example.com").get() == user
