"""Parse primary keys that callers pass in, so a malformed key never reaches SQL."""

from __future__ import annotations

import decimal
import uuid
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models

from repositories.core.arguments import MAX_BIGINT
from repositories.core.errors import NotFoundError


def parse_key(pk: models.Field[Any, Any], value: object) -> Any:
    """Return `value` (a key, its text, or a model instance) as a value of primary key
    field `pk` (UUID, integer, ...), else None."""
    if value is None or isinstance(value, bool | float | decimal.Decimal):
        # A float or Decimal is never a key: 25.5 must not load row 25.
        return None
    if isinstance(value, models.Model):
        value = value.pk
    try:
        key = pk.to_python(value)
    except (DjangoValidationError, TypeError, ValueError, AttributeError, OverflowError):
        return None
    if isinstance(key, int) and not -MAX_BIGINT <= key <= MAX_BIGINT:
        return None
    return key


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
