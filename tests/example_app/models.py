"""Two models that share none of the commerce schema's conventions.

- Note: an integer (BigAutoField) key, a JSONField, a `created` time that is not the
  layer's `created_at`; no soft delete, no version, no updated-at column.
- Document: a UUID key generated in Python (`default=uuid.uuid4`), a custom field with
  `from_db_value` (the parity app's `CommaSeparatedField`), soft delete under
  `removed_at`, a version under `revision` and a last-change time under `modified`. Its
  default manager hides removed rows; the manager showing every row is called
  `everything`, not `all_objects`.

Document's key is `default=uuid.uuid4` rather than `db_default=RandomUUID()`: it is what
most Django projects write, the commerce models already cover database-generated keys
(`domain.models.base.TimestampedModel`), and a key known before the INSERT takes the
other branch of the layer's bulk insert (COPY with the key, no `gen_random_uuid()` batch).
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.utils import timezone

from tests.parity_app.models import CommaSeparatedField


class Note(models.Model):
    """A note: integer key, JSON payload; deleted for good, never versioned."""

    id = models.BigAutoField(primary_key=True)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.title


class LiveDocumentManager(models.Manager["Document"]):
    """Documents that are not removed."""

    def get_queryset(self) -> models.QuerySet[Document]:
        return super().get_queryset().filter(removed_at__isnull=True)


class Document(models.Model):
    """A document: UUID key, a custom tags field, soft delete, a version, a change time."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=200)
    tags = CommaSeparatedField(default=list, blank=True)
    revision = models.PositiveIntegerField(default=1)
    modified = models.DateTimeField(auto_now=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    # The default manager (declared first) hides removed rows; `Meta.base_manager_name`
    # stays unset, so `_base_manager` (used for relations and include_deleted) sees all.
    objects = LiveDocumentManager()
    everything: ClassVar[models.Manager[Document]] = models.Manager()

    def __str__(self) -> str:
        return self.title


class PlainDocument(Document):
    """Documents through a default manager that shows removed ones too: the repository
    must hide them itself (its `soft_delete_field`)."""

    objects = models.Manager()  # type: ignore[assignment]

    class Meta:
        proxy = True
