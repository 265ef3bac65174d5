"""The commerce app in a project whose AUTH_USER_MODEL is auth.User (integer keys).

Run by `make test` with `--ds tests.auth_user_project.settings`: system checks pass,
migrations build the schema on a fresh database without a `users` table, and orders,
sessions, users and the audit trail work with auth.User, degrading where it lacks
domain.User's fields (deleted_at, email_verified, unique emails).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User as AuthUser
from django.core.management import call_command
from django.db import connection

from domain.auth import EmailBackend
from domain.models import Order, OrderStatusHistory, Product, User
from repositories import (
    AuditLogRepository,
    OrderRepository,
    ProductRepository,
    SessionRepository,
    UserRepository,
)
from repositories.audit import audit_context
from repositories.errors import InvalidQueryError, NotFoundError, ValidationError

PASSWORD = "correct horse battery staple"


@pytest.fixture
def alice() -> AuthUser:
    return AuthUser.objects.create_user("alice", "alice@example.com", PASSWORD)


@pytest.fixture
def product() -> Product:
    return ProductRepository().create(
        {"sku": "SOCK-1", "name": "Socks", "price": Decimal("4.50"), "stock_quantity": 10}
    )


@pytest.mark.django_db
def test_domain_user_is_swapped_out_and_system_checks_pass():
    assert get_user_model() is AuthUser
    assert User._meta.swapped == "auth.User"
    call_command("check", stdout=StringIO())  # SystemCheckError on any error
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


@pytest.mark.django_db
def test_fresh_schema_has_no_users_table_and_foreign_keys_point_at_auth_user():
    tables = set(connection.introspection.table_names())
    assert "users" not in tables
    assert {"auth_user", "orders", "user_sessions", "audit_logs"} <= tables
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "orders")
    targets = {c["foreign_key"] for c in constraints.values() if c["columns"] == ["user_id"]}
    assert targets == {("auth_user", "id")}


@pytest.mark.django_db
def test_order_placed_moved_and_listed_for_an_auth_user(alice, product):
    orders = OrderRepository()
    order = orders.place_order(alice.pk, [(product.pk, 3)])
    assert order.user == alice
    assert order.total == Decimal("13.50")
    assert Product.objects.get(pk=product.pk).stock_quantity == 7

    paid = orders.transition(order.pk, "paid", actor=alice)
    assert paid.status == "paid"
    history = OrderStatusHistory.objects.filter(order=order).order_by("created_at", "id")
    assert [(h.to_status, h.actor_id) for h in history] == [
        ("pending", alice.pk),
        ("paid", alice.pk),
    ]
    assert [o.pk for o in orders.history_for_user(alice.pk).items] == [order.pk]
    assert [o.pk for o in orders.find_many({"user": alice.pk})] == [order.pk]
    assert [o.pk for o in orders.find_many({"user": str(alice.pk)})] == [order.pk]
    with pytest.raises(InvalidQueryError):
        orders.find_many({"user": "25.5"})


@pytest.mark.django_db
def test_order_refused_for_inactive_unknown_or_malformed_users(alice, product):
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    orders = OrderRepository()
    for user_id in (alice.pk, alice.pk + 1000, "not-a-key", 2.0):
        with pytest.raises(NotFoundError) as info:
            orders.place_order(user_id, [(product.pk, 1)])
        assert info.value.entity == "User"
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_audit_rows_carry_the_auth_user_as_actor(alice, product):
    with audit_context(actor=alice):
        order = OrderRepository().place_order(alice.pk, [(product.pk, 1)])
        OrderRepository().transition(order.pk, "paid")
    trail = AuditLogRepository()
    rows = trail.find_many({"actor": alice.pk})
    assert sorted((row.entity_type, row.action) for row in rows) == [
        ("order", "created"),
        ("order", "status_changed"),
        ("product", "stock_adjusted"),
    ]
    assert all(row.actor == alice for row in trail.by_actor(alice.pk))
    assert trail.by_actor("not-a-key") == []


@pytest.mark.django_db
def test_sessions_open_validate_and_end_with_the_user(alice):
    sessions = SessionRepository()
    session, token = sessions.create_session(alice.pk, ip_address="10.0.0.1")
    validated = sessions.validate(token)
    assert validated is not None
    assert validated.pk == session.pk
    assert validated.user == alice
    assert [s.pk for s in sessions.active_for_user(alice.pk)] == [session.pk]
    assert [s.pk for s in sessions.find_many({"user": alice.pk})] == [session.pk]
    [suspect] = sessions.suspicious_users(window=timedelta(hours=1), min_distinct_ips=1)
    assert (suspect.user_id, suspect.email) == (alice.pk, "alice@example.com")

    alice.is_active = False  # auth.User has no soft delete: inactive is the end of it
    alice.save(update_fields=["is_active"])
    assert sessions.validate(token) is None
    assert sessions.active_for_user(alice.pk) == []
    with pytest.raises(ValidationError):
        sessions.create_session(alice.pk)
    assert sessions.revoke_all(alice.pk) == 1


@pytest.mark.django_db
def test_user_repository_serves_auth_user_where_its_fields_allow(alice):
    users = UserRepository()
    bob = users.create({"username": "bob", "email": " Bob@Example.com ", "password": PASSWORD})
    assert isinstance(bob, AuthUser)
    assert bob.email == "Bob@Example.com"
    assert bob.check_password(PASSWORD)
    assert users.find_by_email("bob@EXAMPLE.com") == bob
    # auth.User lets two users share an email: the oldest one is found.
    users.create({"username": "bob2", "email": "bob@example.com"})
    assert users.find_by_email("BOB@example.com") == bob
    assert {u.username for u in users.find_active_users(order_by=["email"])} == {
        "alice",
        "bob",
        "bob2",
    }
    assert users.find_many({"joined_after": alice.date_joined}, order_by=["date_joined"])
    with pytest.raises(InvalidQueryError):
        users.find_many({"email_verified": True})
    with pytest.raises(ValidationError):
        users.verify_email(bob.pk)
    with pytest.raises(ValidationError):
        users.soft_delete(bob.pk)

    _session, token = SessionRepository().create_session(bob.pk)
    users.set_password(bob.pk, "another long passphrase")
    assert SessionRepository().validate(token) is None


@pytest.mark.django_db
def test_email_backend_logs_in_by_email_unless_the_email_is_shared(alice):
    backend = EmailBackend()
    assert backend.authenticate(None, username="ALICE@example.com", password=PASSWORD) == alice
    assert backend.authenticate(None, email="alice@example.com", password=PASSWORD) == alice
    AuthUser.objects.create_user("alice2", "Alice@Example.com", PASSWORD)
    assert backend.authenticate(None, username="alice@example.com", password=PASSWORD) is None


@pytest.mark.django_db
def test_initial_migration_creates_no_users_table():
    out = StringIO()
    call_command("sqlmigrate", "domain", "0001", stdout=out)
    sql = out.getvalue()
    assert 'CREATE TABLE "users"' not in sql
    assert 'REFERENCES "auth_user" ("id")' in sql
