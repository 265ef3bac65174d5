"""The audit trail: context, snapshots, diffs and the one-statement insert."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError, connection, transaction

from domain.models import AuditLog, Product, User
from repositories.core.audit import (
    REDACTED,
    AuditEntry,
    audit_context,
    current_audit_state,
    diff,
    entity_type_of,
    record,
    snapshot,
)
from tests.factories import AuditLogFactory, ProductFactory, UserFactory, UserSessionFactory


def _entry(n: int = 0, **changes: object) -> AuditEntry:
    return AuditEntry("updated", "product", f"id-{n}", dict(changes))


def test_audit_context_sets_and_restores_the_state():
    assert current_audit_state().actor is None
    with audit_context(actor="someone", request_id="req-1", ip_address="10.0.0.1") as state:
        assert current_audit_state() is state
        assert (state.actor, state.request_id, state.ip_address) == (
            "someone",
            "req-1",
            "10.0.0.1",
        )
    assert current_audit_state().request_id == ""


def test_audit_context_nests_and_inherits_unset_values():
    with audit_context(actor="outer", request_id="req-1", ip_address="10.0.0.1"):
        with audit_context(request_id="job-7") as inner:
            assert (inner.actor, inner.request_id, inner.ip_address) == (
                "outer",
                "job-7",
                "10.0.0.1",
            )
        assert current_audit_state().request_id == "req-1"


def test_audit_context_drops_an_invalid_ip_and_truncates_the_request_id():
    with audit_context(ip_address="not-an-ip", request_id="r" * 100) as state:
        assert state.ip_address is None
        assert len(state.request_id) == 64
    with audit_context(ip_address=" ::1 ") as state:
        assert state.ip_address == "::1"


def test_audit_context_is_separate_per_thread():
    seen: list[str] = []
    with audit_context(request_id="main"):
        thread = threading.Thread(target=lambda: seen.append(current_audit_state().request_id))
        thread.start()
        thread.join()
    assert seen == [""]


@pytest.mark.django_db
def test_record_inserts_all_entries_in_one_query(django_assert_num_queries):
    user = UserFactory.create(email="actor@example.com")
    with (
        audit_context(actor=user, request_id="req-42", ip_address="192.0.2.1"),
        django_assert_num_queries(1),
    ):
        record([_entry(n, price={"old": "1", "new": "2"}) for n in range(50)])
    rows = list(AuditLog.objects.order_by("id"))
    assert len(rows) == 50
    first = rows[0]
    assert first.actor_id == user.pk
    assert first.actor_repr == "actor@example.com"
    assert first.request_id == "req-42"
    assert first.ip_address == "192.0.2.1"
    assert (first.action, first.entity_type, first.entity_id) == ("updated", "product", "id-0")
    assert first.changes == {"price": {"old": "1", "new": "2"}}
    assert [r.entity_id for r in rows] == [f"id-{n}" for n in range(50)]


@pytest.mark.django_db
def test_record_sends_nothing_for_an_empty_list(django_assert_num_queries):
    with django_assert_num_queries(0):
        record([])


@pytest.mark.django_db
def test_record_without_context_leaves_actor_empty():
    record([_entry()])
    row = AuditLog.objects.get()
    assert (row.actor_id, row.actor_repr, row.request_id, row.ip_address) == (None, "", "", None)
    assert row.occurred_at is not None


@pytest.mark.django_db
def test_record_treats_an_anonymous_user_as_no_actor():
    with audit_context(actor=AnonymousUser()):
        record([_entry()])
    assert AuditLog.objects.get().actor_id is None


@pytest.mark.django_db
def test_record_redacts_secrets_and_serialises_values_in_changes():
    changes = {
        "password": "hunter2",
        "nested": {"api_token": "abc", "ok": 1},
        "price": decimal.Decimal("9.90"),
        "at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "key": uuid.UUID(int=1),
    }
    record([AuditEntry("created", "thing", "1", changes)])
    stored = AuditLog.objects.get().changes
    assert stored == {
        "password": REDACTED,
        "nested": {"api_token": REDACTED, "ok": 1},
        "price": "9.90",
        "at": "2026-01-02T03:04:05+00:00",
        "key": str(uuid.UUID(int=1)),
    }


@pytest.mark.django_db(transaction=True)
def test_rolled_back_write_leaves_no_audit_row():
    with pytest.raises(RuntimeError), transaction.atomic():
        user = UserFactory.create()
        record([AuditEntry("created", "user", str(user.pk), {})])
        assert AuditLog.objects.count() == 1
        raise RuntimeError
    assert AuditLog.objects.count() == 0
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_audit_log_refuses_update():
    row = AuditLogFactory.create()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditLog.objects.filter(pk=row.pk).update(action="deleted")


@pytest.mark.django_db
def test_audit_log_refuses_delete():
    row = AuditLogFactory.create()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditLog.objects.filter(pk=row.pk).delete()


@pytest.mark.django_db
def test_record_writes_ten_thousand_rows_in_one_statement(django_assert_num_queries):
    with django_assert_num_queries(1):
        record([_entry(n, seq=n) for n in range(10_000)])
    assert AuditLog.objects.count() == 10_000


@pytest.mark.django_db
def test_snapshot_returns_json_safe_values_and_redacts_secrets():
    user = UserFactory.create(email="snap@example.com")
    data = snapshot(user)
    assert data["email"] == "snap@example.com"
    assert data["password"] == REDACTED
    assert data["id"] == str(user.pk)
    assert isinstance(data["created_at"], str)
    session = UserSessionFactory.create(user=user)
    assert snapshot(session)["token_hash"] == REDACTED
    assert snapshot(session)["user_id"] == str(user.pk)


@pytest.mark.django_db
def test_snapshot_skips_search_vector_and_deferred_fields_without_querying(
    django_assert_num_queries,
):
    product = ProductFactory.create(price=decimal.Decimal("12.50"))
    loaded = Product.objects.only("id", "name").get(pk=product.pk)
    with django_assert_num_queries(0):
        partial = snapshot(loaded)
    assert set(partial) == {"id", "name"}
    full = snapshot(Product.objects.get(pk=product.pk))
    assert "search_vector" not in full
    assert full["price"] == "12.50"


@pytest.mark.django_db
def test_snapshot_limits_to_the_given_fields_by_name_or_attname():
    product = ProductFactory.create()
    assert set(snapshot(product, ["name", "category"])) == {"name", "category_id"}
    assert set(snapshot(product, ["category_id"])) == {"category_id"}


def test_diff_returns_changed_fields_only():
    before = {"name": "a", "price": "1.00", "same": 1}
    after = {"name": "b", "price": "1.00", "same": 1, "new": True}
    assert diff(before, after) == {
        "name": {"old": "a", "new": "b"},
        "new": {"old": None, "new": True},
    }


def test_diff_reports_a_secret_change_but_never_its_value():
    user_before = UserFactory.build(password="old-hash")
    user_after = UserFactory.build(password="new-hash")
    changes = diff(snapshot(user_before, ["password"]), snapshot(user_after, ["password"]))
    assert changes == {"password": {"old": REDACTED, "new": REDACTED}}
    unchanged = diff(snapshot(user_before, ["password"]), snapshot(user_before, ["password"]))
    assert unchanged == {}


def test_diff_redacts_raw_secret_values_and_serialises_others():
    changes = diff(
        {"token_hash": "aaa", "price": decimal.Decimal("1.0")},
        {"token_hash": "bbb", "price": decimal.Decimal("2.0")},
    )
    assert changes == {
        "token_hash": {"old": REDACTED, "new": REDACTED},
        "price": {"old": "1.0", "new": "2.0"},
    }


def test_diff_keeps_a_secret_set_to_none_visible():
    assert diff({"secret": "x"}, {"secret": None}) == {"secret": {"old": REDACTED, "new": None}}


def test_entity_type_of_is_the_model_name():
    assert entity_type_of(Product) == "product"
    assert entity_type_of(UserFactory.build()) == "user"


def test_json_safe_handles_other_types():
    from repositories.core.audit import _json_safe

    assert _json_safe({"t": dt.timedelta(seconds=2), "b": b"\x01", "s": {3}}) == {
        "t": 2.0,
        "b": "01",
        "s": [3],
    }
    assert _json_safe(dt.date(2026, 1, 1)) == "2026-01-01"
    assert _json_safe(dt.UTC) == "UTC"


@pytest.mark.django_db
def test_record_runs_on_the_callers_connection_inside_its_transaction():
    with transaction.atomic():
        record([_entry()])
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM audit_logs")
            assert cursor.fetchone() == (1,)
