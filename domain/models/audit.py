"""The append-only audit trail; the database itself refuses UPDATE and DELETE."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone


class AuditLog(models.Model):
    """Who did what to which entity, when. High volume, so a bigint identity key.

    The table is partitioned by month on `occurred_at` (migration 0004; partitions kept by
    `manage.py manage_audit_partitions`, docs/scaling.md). Its primary key is therefore
    `(id, occurred_at)`: PostgreSQL requires the partition key in every unique constraint.
    Django's key stays `id`, unique in practice because only the identity assigns it.
    """

    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField(default=timezone.now, db_default=Now())
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    # No database constraint: the trail outlives a deleted actor and nothing may rewrite it.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # covered by a composite index in Meta.indexes
        related_name="+",
    )
    actor_repr = models.CharField(max_length=254, blank=True, default="", db_default="")
    action = models.CharField(max_length=32)
    entity_type = models.CharField(max_length=64)
    entity_id = models.CharField(max_length=64)
    changes = models.JSONField(default=dict, db_default={}, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="", db_default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    objects: ClassVar[models.Manager[AuditLog]] = models.Manager()

    class Meta:
        db_table = "audit_logs"
        indexes = [
            models.Index(
                fields=["entity_type", "entity_id", "occurred_at"], name="audit_entity_idx"
            ),
            models.Index(fields=["actor", "occurred_at"], name="audit_actor_idx"),
            models.Index(fields=["occurred_at", "id"], name="audit_occurred_idx"),
            models.Index(fields=["action", "occurred_at"], name="audit_action_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.entity_type} {self.entity_id}"
