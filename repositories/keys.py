"""Parse primary keys that callers pass in, so a malformed key never reaches SQL."""

from __future__ import annotations

import uuid

from django.db import models


def parse_uuid(value: object) -> uuid.UUID | None:
    """Return `value` (a UUID, its text, or a model instance) as a UUID, else None."""
    if isinstance(value, models.Model):
        value = value.pk
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value.strip())
        except ValueError:
            return None
    return None
