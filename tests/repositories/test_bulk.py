"""COPY writes: copy_rows, create_many's COPY path, initial stock and big audit batches."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import Sum
from django.db.models.expressions import DatabaseDefault
from django.test.utils import CaptureQueriesContext

from domain.models import AuditLog, InventoryMovement, Product, SystemConfig
from repositories import ProductRepository
from repositories.core import audit
from repositories.core.audit import REDACTED, AuditEntry, audit_context, record
from repositories.core.bulk import copy_rows
from repositories.core.error_mapping import translate_errors
from repositories.core.instrumentation import count_queries, query_label
from repositories.errors import ConflictError, ValidationError
from tests.factories import CategoryFactory, ProductFactory, UserFactory
from tests.repositories.sample_repositories import (
    SampleAuditLogRepository,
    SampleConfigRepository,
    SampleProductRepository,
)

pytestmark = pytest.mark.django_db

_PRODUCT_COLUMNS = ("id", "sku", "name", "price", "created_at", "updated_at")


def _product_row(sku: str, price: str = "1.00") -> tuple[object, ...]:
    now = "2026-01-01T00:00:00+00:00"
    return (uuid.uuid4(), sku, f"Item {sku}", Decimal(price), now, now)


def _rows(count: int, prefix: str = "P", **extra: object) -> list[dict[str, object]]:
    return [
        {"sku": f"{prefix}-{i}", "name": f"Item {i}", "price": Decimal("2.50"), **extra}
        for i in range(count)
    ]


def _ledger(product: Product) -> list[tuple[int, str]]:
    movements = InventoryMovement.objects.filter(product=product).order_by("created_at", "id")
    return list(movements.values_list("delta", "reason"))


# --- copy_rows -----------------------------------------------------------------------------


def test_copy_rows_inserts_rows_as_one_labelled_statement_in_the_open_transaction():
    with transaction.atomic():
        with (
            CaptureQueriesContext(connection) as logged,
            count_queries() as counted,
            query_label("Bulk.test"),
        ):
            copy_rows(
                "default", "products", _PRODUCT_COLUMNS, [_product_row("A"), _product_row("B")]
            )
        assert len(logged) == 1
        assert logged[0]["sql"].startswith('COPY "products" ("id", "sku", "name"')
        assert counted.queries[0]["sql"].startswith("/* repo:Bulk.test */ COPY ")
        assert sorted(Product.objects.values_list("sku", flat=True)) == ["A", "B"]
        transaction.set_rollback(True)
    assert not Product.objects.exists()


def test_copy_rows_unique_violation_maps_to_conflict_error():
    ProductFactory.create(sku="DUP")
    with pytest.raises(ConflictError) as caught, translate_errors(Product), transaction.atomic():
        copy_rows("default", "products", _PRODUCT_COLUMNS, [_product_row("DUP")])
    assert caught.value.fields == ("sku",)
    assert caught.value.constraint == "products_sku_live_uniq"
    assert Product.objects.count() == 1


def test_copy_rows_check_violation_maps_to_validation_error():
    with pytest.raises(ValidationError) as caught, translate_errors(Product), transaction.atomic():
        copy_rows("default", "products", _PRODUCT_COLUMNS, [_product_row("NEG", "-1.00")])
    assert "price" in caught.value.errors
    assert not Product.objects.exists()


# --- create_many: COPY, its fallback, its errors ---------------------------------------------


def test_create_many_copies_rows_with_database_keys_and_adapted_values():
    category = CategoryFactory.create()
    rows = _rows(3, category=category.pk, price="7.5", description="d", is_active=False)
    with CaptureQueriesContext(connection) as queries:
        created = SampleProductRepository().create_many(rows)
    statements = [q["sql"].split(" */ ")[-1] for q in queries]
    assert sum(s.startswith('COPY "products"') for s in statements) == 1
    assert not any(s.startswith('INSERT INTO "products"') for s in statements)
    stored = {p.pk: p for p in Product.objects.all()}
    assert set(stored) == {p.pk for p in created}
    for product in created:
        row = stored[product.pk]
        assert (row.sku, row.price, row.category_id, row.is_active) == (
            product.sku,
            Decimal("7.50"),
            category.pk,
            False,
        )
        assert (row.currency, row.version, row.created_at) == ("EUR", 1, product.created_at)
        assert row.search_vector  # the generated column was computed by the database


def test_create_many_copies_json_values_as_an_insert_stores_them():
    values = [{"a": [1, "x", None]}, "text", 3.5, None, True]
    rows = [{"key": f"json.{n}", "value": value} for n, value in enumerate(values)]
    with CaptureQueriesContext(connection) as queries:
        created = SampleConfigRepository().create_many(rows)
    assert any(q["sql"].startswith('COPY "system_config') for q in queries)
    stored = dict(SystemConfig.objects.values_list("key", "value"))
    assert stored == {f"json.{n}": value for n, value in enumerate(values)}
    # None is SQL NULL, as bulk_create and save() store it, not the JSON null
    assert list(SystemConfig.objects.filter(value__isnull=True).values_list("key", flat=True)) == [
        "json.3"
    ]
    assert [c.value for c in created] == values


def test_create_many_duplicate_within_one_copy_raises_conflict_and_writes_nothing():
    rows = [*_rows(2), _rows(1)[0]]
    with pytest.raises(ConflictError) as caught:
        SampleProductRepository().create_many(rows)
    assert caught.value.fields == ("sku",)
    assert not Product.objects.exists()
    assert not AuditLog.objects.exists()


def test_create_many_falls_back_to_bulk_create_for_auto_increment_keys():
    rows = [{"action": "noted", "entity_type": "thing", "entity_id": str(n)} for n in range(3)]
    with CaptureQueriesContext(connection) as queries:
        created = SampleAuditLogRepository().create_many(rows)
    assert all(isinstance(row.pk, int) for row in created)
    assert not any('COPY "audit_logs"' in q["sql"] for q in queries)
    stored = AuditLog.objects.filter(action="noted").order_by("id")
    assert [r.pk for r in stored] == [r.pk for r in created]


def test_create_many_falls_back_to_bulk_create_when_a_value_is_left_to_the_database(
    monkeypatch,
):
    currency = Product._meta.get_field("currency")
    expression = currency._db_default_expression  # type: ignore[attr-defined]
    monkeypatch.setattr(
        currency, "_get_default", lambda: DatabaseDefault(expression, output_field=currency)
    )
    with CaptureQueriesContext(connection) as queries:
        created = SampleProductRepository().create_many(_rows(2))
    assert not any('COPY "products"' in q["sql"] for q in queries)
    assert [p.currency for p in created] == ["EUR", "EUR"]  # read back by bulk_create
    assert Product.objects.filter(currency="EUR").count() == 2


# --- ProductRepository: initial stock and its ledger --------------------------------------


def test_product_create_with_stock_writes_the_initial_movement():
    product = ProductRepository().create(
        {"sku": "S-1", "name": "Lamp", "price": "3.00", "stock_quantity": 4}
    )
    assert product.stock_quantity == 4
    assert _ledger(product) == [(4, "initial")]
    [entry] = AuditLog.objects.filter(action="created", entity_id=str(product.pk))
    assert entry.changes["stock_quantity"] == 4


def test_product_create_without_stock_writes_no_movement(django_assert_num_queries):
    with django_assert_num_queries(5):  # savepoint, INSERT, audit INSERT, reload, release
        product = ProductRepository().create({"sku": "S-0", "name": "Lamp", "price": "3.00"})
    assert product.stock_quantity == 0
    assert _ledger(product) == []


def test_product_create_many_writes_one_initial_movement_per_stocked_product():
    stocks = [0, 5, 12, 0, 1]
    rows = [{**row, "stock_quantity": s} for row, s in zip(_rows(5), stocks, strict=True)]
    created = ProductRepository().create_many(rows, batch_size=2)
    assert [p.stock_quantity for p in created] == stocks
    stored = dict(Product.objects.values_list("pk", "stock_quantity"))
    ledger = dict(
        InventoryMovement.objects.filter(reason="initial").values_list("product_id", "delta")
    )
    assert len(ledger) == 3
    for product, stock in zip(created, stocks, strict=True):
        assert stored[product.pk] == stock == ledger.get(product.pk, 0)
    assert InventoryMovement.objects.aggregate(s=Sum("delta"))["s"] == sum(stocks)
    assert AuditLog.objects.filter(action="created", entity_type="product").count() == 5


def test_product_create_many_with_stock_sends_one_more_statement_per_batch_whatever_the_rows():
    repository = ProductRepository()
    with CaptureQueriesContext(connection) as without_stock:
        repository.create_many(_rows(3, "N"))
    with CaptureQueriesContext(connection) as small:
        repository.create_many(_rows(2, "S", stock_quantity=3))
    with CaptureQueriesContext(connection) as large:
        repository.create_many(_rows(60, "L", stock_quantity=3))
    assert len(small) == len(large) == len(without_stock) + 1
    with CaptureQueriesContext(connection) as batched:
        repository.create_many(_rows(5, "B", stock_quantity=1), batch_size=2)
    # three batches of (keys, COPY products, COPY ledger, audit) instead of one
    assert len(batched) == len(small) + 2 * 4
    assert InventoryMovement.objects.count() == 2 + 60 + 5


def test_product_create_many_rejects_negative_or_oversized_stock_before_sending(
    django_assert_num_queries,
):
    rows = [*_rows(2, stock_quantity=1), {**_rows(1, "X")[0], "stock_quantity": -1}]
    rows.append({**_rows(1, "Y")[0], "stock_quantity": 2**40})
    with django_assert_num_queries(0), pytest.raises(ValidationError) as caught:
        ProductRepository().create_many(rows)
    assert set(caught.value.errors) == {"2.stock_quantity", "3.stock_quantity"}


def test_product_create_many_rolls_back_products_and_ledger_when_a_later_batch_conflicts():
    ProductFactory.create(sku="P-3")
    with pytest.raises(ConflictError):
        ProductRepository().create_many(_rows(4, stock_quantity=2), batch_size=2)
    assert Product.objects.count() == 1
    assert not InventoryMovement.objects.exists()
    assert not AuditLog.objects.exists()


def test_product_updates_refuse_stock_changes():
    repository = ProductRepository()
    product = ProductFactory.with_stock(3)
    with pytest.raises(ValidationError) as caught:
        repository.update(product.pk, {"stock_quantity": 9})
    assert caught.value.errors == {"stock_quantity": ["Can only be set when the row is created."]}
    with pytest.raises(ValidationError):
        repository.update_many({"sku": product.sku}, {"stock_quantity": 9})
    assert Product.objects.get(pk=product.pk).stock_quantity == 3


# --- audit.record by COPY -------------------------------------------------------------------


def test_record_copies_large_batches_stamped_with_the_context_and_redacted(
    django_assert_num_queries,
):
    user = UserFactory.create(email="bulk@example.com")
    count = audit.COPY_THRESHOLD
    entries = [
        AuditEntry("created", "thing", str(n), {"n": n, "api_token": "s3cret", "when": None})
        for n in range(count)
    ]
    with (
        audit_context(actor=user, request_id="req-9", ip_address="2001:db8::1"),
        CaptureQueriesContext(connection) as queries,
        django_assert_num_queries(1),
    ):
        record(entries)
    assert queries[0]["sql"].startswith('COPY "audit_logs"')
    rows = list(AuditLog.objects.order_by("id"))
    assert [r.entity_id for r in rows] == [str(n) for n in range(count)]
    first = rows[0]
    assert (first.actor_id, first.actor_repr) == (user.pk, "bulk@example.com")
    assert (first.request_id, first.ip_address) == ("req-9", "2001:db8::1")
    assert first.changes == {"n": 0, "api_token": REDACTED, "when": None}
    assert len({r.occurred_at for r in rows}) == 1


def test_record_below_the_copy_threshold_sends_one_insert():
    entries = [AuditEntry("created", "thing", str(n), {}) for n in range(audit.COPY_THRESHOLD - 1)]
    with CaptureQueriesContext(connection) as queries:
        record(entries)
    assert len(queries) == 1
    assert queries[0]["sql"].startswith('INSERT INTO "audit_logs"')
    assert AuditLog.objects.count() == audit.COPY_THRESHOLD - 1
