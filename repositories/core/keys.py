"""Parse primary keys that callers pass in, so a malformed key never reaches SQL."""

from __future__ import annotations

import uuid

from django.db import models

from repositories.core.errors import NotFoundError


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


def require_uuid(entity: str, value: object) -> uuid.UUID:
    """Return `value` as a UUID (see parse_uuid); raise NotFoundError when malformed."""
    key = parse_uuid(value)
    if key is None:
        raise NotFoundError(entity, value)
    return key
