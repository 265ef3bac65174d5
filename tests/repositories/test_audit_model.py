"""Audit is opt-in per repository and writes to REPOSITORIES["AUDIT_MODEL"]."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.models import AuditLog
from repositories.core.audit import COPY_THRESHOLD, audit_context, audit_model
from tests.factories import UserFactory
from tests.parity_app.factories import OwnerFactory
from tests.parity_app.models import TrailEntry, Widget
from tests.parity_app.repositories import WidgetRepository

pytestmark = pytest.mark.django_db


class AuditedWidgetRepository(WidgetRepository):
    audit = True


@pytest.fixture
def trail(settings):
    settings.REPOSITORIES = {**settings.REPOSITORIES, "AUDIT_MODEL": "parity_app.TrailEntry"}
    return settings


def _widget_data(owner) -> dict[str, object]:
    return {"name": "Gear", "payload": {"k": 1}, "amount": Decimal("2.50"), "owner": owner}


def test_audit_is_off_unless_the_repository_asks_for_it():
    WidgetRepository().create(_widget_data(OwnerFactory.create()))
    assert Widget.objects.count() == 1
    assert not AuditLog.objects.exists()
    assert not TrailEntry.objects.exists()


def test_audited_writes_go_to_the_configured_audit_model_with_any_actor_key(trail):
    actor = UserFactory.create()
    repository = AuditedWidgetRepository()
    with audit_context(actor=actor, request_id="req-1", ip_address="10.0.0.1"):
        widget = repository.create(_widget_data(OwnerFactory.create()))
        repository.update(widget.pk, {"name": "Gear 2"})
    assert audit_model() is TrailEntry
    assert not AuditLog.objects.exists()
    created, updated = TrailEntry.objects.order_by("id")
    assert (created.action, created.entity_type, created.entity_id) == (
        "created",
        "widget",
        str(widget.pk),  # an integer key, stored as text
    )
    assert created.changes["payload"] == {"k": 1}
    assert updated.changes["name"] == {"old": "Gear", "new": "Gear 2"}
    assert (updated.actor.pk if updated.actor else None, updated.actor_repr) == (
        actor.pk,
        actor.email,
    )
    assert (updated.request_id, updated.ip_address) == ("req-1", "10.0.0.1")


def test_bulk_writes_audit_per_row_into_the_configured_model(trail):
    owner = OwnerFactory.create()
    rows = [{**_widget_data(owner), "name": f"W{n}"} for n in range(COPY_THRESHOLD + 2)]
    created = AuditedWidgetRepository().create_many(rows)  # COPY path of record()
    assert TrailEntry.objects.filter(action="created").count() == len(created)
    assert set(TrailEntry.objects.values_list("entity_id", flat=True)) == {
        str(w.pk) for w in created
    }


def test_an_audited_repository_without_an_installed_audit_model_is_refused_at_set_up(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.REPOSITORIES = {**settings.REPOSITORIES, "AUDIT_MODEL": "missing.Trail"}

    class Audited(WidgetRepository):
        audit = True

    with pytest.raises(ImproperlyConfigured, match=r"missing\.Trail"):
        Audited()
