"""Abstract bases: database-generated UUID keys, timestamps, soft delete, versions."""

from __future__ import annotations

import uuid

from django.contrib.postgres.functions import RandomUUID
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone


class TimestampedModel(models.Model):
    """A table whose rows have a database-generated UUID key and a `created_at`."""

    # The key comes from gen_random_uuid() in the database; Django reads it back with
    # RETURNING, so raw SQL inserts and ORM inserts produce keys the same way.
    id = models.UUIDField(primary_key=True, db_default=RandomUUID(), editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)

    class Meta:
        abstract = True


class MutableModel(TimestampedModel):
    """A table whose rows change after insert, so they carry `updated_at`."""

    updated_at = models.DateTimeField(default=timezone.now, db_default=Now())

    class Meta:
        abstract = True


class SoftDeleteModel(MutableModel):
    """A table whose rows are hidden, not removed, by `deleted_at` (NULL = alive)."""

    deleted_at = models.DateTimeField(null=True, blank=True, db_index=False)

    class Meta:
        abstract = True

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class VersionedModel(models.Model):
    """A table with optimistic locking: every update increments `version`."""

    version = models.PositiveIntegerField(default=1, db_default=1)

    class Meta:
        abstract = True


def new_uuid() -> uuid.UUID:
    """Return a fresh random UUID (for callers that need a key before insert)."""
    return uuid.uuid4()
