"""The audit table is append-only: the database refuses UPDATE and DELETE from anyone."""

from __future__ import annotations

import pytest
from django.db import InternalError, ProgrammingError, connection, transaction

from domain.models import AuditLog
from tests.factories import AuditLogFactory

pytestmark = pytest.mark.django_db

# The trigger raises SQLSTATE 42501 (insufficient_privilege); Django maps it to one of these.
REFUSED = (ProgrammingError, InternalError)


def sqlstate(exc: BaseException) -> str | None:
    return getattr(exc.__cause__, "sqlstate", None)


def test_audit_insert_is_allowed():
    AuditLogFactory.create()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_logs (action, entity_type, entity_id) VALUES ('created', 'x', '1')"
        )
    assert AuditLog.objects.count() == 2


def test_raw_update_of_audit_log_is_refused():
    entry = AuditLogFactory.create()
    with pytest.raises(REFUSED) as info, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_logs SET action = 'forged' WHERE id = %s", [entry.pk])
    assert sqlstate(info.value) == "42501"
    assert "append-only" in str(info.value)
    entry.refresh_from_db()
    assert entry.action == "created"


def test_raw_delete_of_audit_log_is_refused():
    entry = AuditLogFactory.create()
    with pytest.raises(REFUSED) as info, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_logs WHERE id = %s", [entry.pk])
    assert sqlstate(info.value) == "42501"
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_orm_update_and_delete_of_audit_log_are_refused():
    entry = AuditLogFactory.create()
    with pytest.raises(REFUSED), transaction.atomic():
        AuditLog.objects.filter(pk=entry.pk).update(entity_id="other")
    with pytest.raises(REFUSED), transaction.atomic():
        AuditLog.objects.filter(pk=entry.pk).delete()
    assert AuditLog.objects.get(pk=entry.pk).entity_id == entry.entity_id


def test_audit_actor_has_no_database_foreign_key():
    import uuid

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "INSERT INTO audit_logs (action, entity_type, entity_id, actor_id) "
            "VALUES ('deleted', 'user', '1', %s)",
            [uuid.uuid4()],
        )
    assert AuditLog.objects.filter(actor_id__isnull=False).count() == 1
