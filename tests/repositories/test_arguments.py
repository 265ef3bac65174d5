"""Values PostgreSQL cannot store exactly are refused, typed, before any SQL is sent."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from domain.models import AuditLog, InventoryMovement, Order, Product, UserSession
from repositories import ProductRepository
from repositories.audit_log import AuditLogRepository
from repositories.core.arguments import unstorable_value
from repositories.errors import InvalidQueryError, ValidationError
from repositories.orders import OrderRepository
from repositories.sessions import SessionRepository
from repositories.users import UserRepository
from tests.factories import AuditLogFactory, ProductFactory, UserFactory

SURROGATE = "\ud800"  # what json.loads('"\\ud800"') returns
NUL = "a\x00b"


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (SURROGATE, ()),
        (NUL, ()),
        ({"name": ["ok", f"x{SURROGATE}"]}, ("name", "1")),
        ([{"sku": "fine"}, {"name": NUL}], ("1", "name")),
        ({NUL: 1}, ("<key>",)),
        (("ok", "déjà vu", 3, None, {"n": 2.5}), None),
    ],
)
def test_unstorable_value_finds_surrogates_and_nul_anywhere(value, path):
    found = unstorable_value(value)
    if path is None:
        assert found is None
    else:
        assert found is not None
        assert found[0] == path


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [SURROGATE, NUL])
def test_reads_refuse_unstorable_text_without_querying(bad):
    products = ProductRepository()
    with CaptureQueriesContext(connection) as queries:
        with pytest.raises(InvalidQueryError) as caught:
            products.find_many({"name": bad})
        assert "name" in caught.value.errors
        with pytest.raises(InvalidQueryError) as caught:
            products.search(f"shoes {bad}")
        assert "query" in caught.value.errors
        assert products.find_by_sku(bad) is None
        assert UserRepository().find_by_email(f"{bad}@example.com") is None
        assert SessionRepository().validate(bad) is None
    assert len(queries) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [SURROGATE, NUL])
def test_writes_refuse_unstorable_text_and_write_nothing(bad):
    product = ProductFactory.with_stock(5)
    description = product.description
    user = UserFactory.create()
    products = ProductRepository()
    orders = OrderRepository()
    before = (Product.objects.count(), Order.objects.count(), AuditLog.objects.count())
    with pytest.raises(ValidationError) as caught:
        products.create({"sku": "NEW-1", "name": bad, "price": "1.00", "currency": "EUR"})
    assert "name" in caught.value.errors
    with pytest.raises(ValidationError) as caught:
        products.create_many([{"sku": "NEW-2", "name": "ok"}, {"sku": bad, "name": "x"}])
    assert "1.sku" in caught.value.errors
    with pytest.raises(ValidationError):
        products.update(product.pk, {"description": bad})
    with pytest.raises(ValidationError) as caught:
        orders.place_order(user.pk, [(product.pk, 1)], idempotency_key=bad)
    assert "idempotency_key" in caught.value.errors
    with pytest.raises(ValidationError) as caught:
        SessionRepository().create_session(user.pk, user_agent=f"Mozilla {bad}")
    assert "user_agent" in caught.value.errors
    after = (Product.objects.count(), Order.objects.count(), AuditLog.objects.count())
    assert after == before
    assert not UserSession.objects.exists()
    product.refresh_from_db()
    assert product.description == description


@pytest.mark.django_db
def test_transition_note_with_a_lone_surrogate_is_refused():
    product = ProductFactory.with_stock(2)
    order = OrderRepository().place_order(UserFactory.create().pk, [(product.pk, 1)])
    with pytest.raises(ValidationError) as caught:
        OrderRepository().transition(order.pk, "paid", note=SURROGATE)
    assert "note" in caught.value.errors
    order.refresh_from_db()
    assert order.status == "pending"


@pytest.mark.django_db
@pytest.mark.parametrize("stock", [2.7, 2.0, Decimal("2"), float("nan")])
def test_create_refuses_a_float_or_decimal_for_an_integer_field(stock):
    with pytest.raises(ValidationError) as caught:
        ProductRepository().create(
            {"sku": "FLOAT-1", "name": "Float", "price": "1.00", "stock_quantity": stock}
        )
    assert "stock_quantity" in caught.value.errors
    assert not Product.objects.filter(sku="FLOAT-1").exists()
    assert not InventoryMovement.objects.exists()


@pytest.mark.django_db
def test_find_by_id_does_not_truncate_a_float_key():
    entry = AuditLogFactory.create()
    repository = AuditLogRepository()
    assert repository.find_by_id(entry.pk) is not None
    assert repository.find_by_id(entry.pk + 0.5) is None
    assert repository.find_by_id(float(entry.pk)) is None
    assert repository.find_by_id(Decimal(entry.pk)) is None


@pytest.mark.django_db
def test_adjust_stock_refuses_a_reason_that_is_not_a_string():
    product = ProductFactory.with_stock(1)
    with pytest.raises(ValidationError) as caught:
        ProductRepository().adjust_stock(product.pk, 1, reason=["restock"])  # type: ignore[arg-type]
    assert "reason" in caught.value.errors


@pytest.mark.django_db
def test_create_session_refuses_a_lifetime_that_overflows():
    user = UserFactory.create()
    with pytest.raises(ValidationError) as caught:
        SessionRepository().create_session(user.pk, ttl=timedelta.max)
    assert "ttl" in caught.value.errors
    assert not UserSession.objects.exists()
