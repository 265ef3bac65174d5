"""Values a caller passes to create and update, checked against the model's fields.

Each value must be one the column stores exactly: no collections for Django's scalar
fields (a custom field decides for itself), only strings for Django's text fields (never
`str(value)` of a number, bytes or an object), no booleans for numbers, no floats for
integers, no NaN or infinities, Decimals fitted to the field's places (5 becomes 5.00,
5.001 is refused).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models

from repositories.core.errors import ValidationError
from repositories.core.spec import ModelSpec

__all__ = ["clean_data", "clean_value"]


def clean_data(spec: ModelSpec, data: object, *, creating: bool) -> dict[str, Any]:
    """Validate `data` against the model fields; return {name or attname: value}."""
    if not isinstance(data, Mapping):
        raise ValidationError({"__all__": ["Give a mapping of field names to values."]})
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    given: set[str] = set()
    for key, raw in data.items():
        field = spec.writable.get(key) if isinstance(key, str) else None
        if field is None:
            errors[str(key)] = ["Unknown field."]
            continue
        if not creating and key in spec.create_only:
            errors[field.name] = ["Can only be set when the row is created."]
            continue
        if field.name in given:
            errors[field.name] = [f"Given twice (as {field.name} and {field.attname})."]
            continue
        given.add(field.name)
        try:
            name, value = clean_value(field, key, raw)
        except DjangoValidationError as exc:
            errors[field.name] = list(exc.messages)
            continue
        values[name] = value
    if creating:
        for name in spec.required:
            if name not in given and name not in errors:
                errors[name] = ["This field is required."]
    if errors:
        raise ValidationError(errors)
    return values


def clean_value(field: models.Field[Any, Any], key: str, raw: Any) -> tuple[str, Any]:
    if raw is None:
        if not field.null:
            raise DjangoValidationError("This field cannot be null.")
        return key, None
    if isinstance(raw, str) and "\x00" in raw:
        raise DjangoValidationError("Null characters are not allowed.")
    if field.is_relation:
        related = field.related_model
        if isinstance(raw, models.Model):
            if not isinstance(raw, related):  # type: ignore[arg-type]
                raise DjangoValidationError(f"Expected a {related.__name__} or its key.")  # type: ignore[union-attr]
            if key == field.name:
                return key, raw
            raw = raw.pk
        if isinstance(raw, bool):
            raise DjangoValidationError("Enter a valid key.")
        target = field.target_field  # type: ignore[attr-defined]
        try:
            return field.attname, target.to_python(raw)
        except (TypeError, ValueError, AttributeError, OverflowError):
            raise DjangoValidationError("Enter a valid key.") from None
    if not isinstance(field, models.JSONField):
        if isinstance(raw, list | tuple | set | frozenset | dict) and _scalar_field(field):
            raise DjangoValidationError("Enter a single value, not a collection.")
        if (
            isinstance(field, models.CharField | models.TextField)
            and _scalar_field(field)
            and not isinstance(raw, str)
        ):
            # Django would store str(raw): "b'x'" for bytes, an address for an object.
            raise DjangoValidationError("Enter a string.")
        if isinstance(raw, bool) and not isinstance(field, models.BooleanField):
            raise DjangoValidationError("Enter a value of the field's type, not a boolean.")
        if isinstance(field, models.IntegerField) and isinstance(raw, float | decimal.Decimal):
            # int(2.7) is 2: a fractional or float value would be stored truncated.
            raise DjangoValidationError("Enter a whole number (an int), not a float.")
        if isinstance(raw, float) and not math.isfinite(raw):
            raise DjangoValidationError("Enter a finite number.")
    try:
        value = field.clean(raw, None)
        if isinstance(field, models.DecimalField) and isinstance(value, decimal.Decimal):
            # Store-exact: 5 becomes 5.00, as the column will hold it.
            value = value.quantize(decimal.Decimal(1).scaleb(-(field.decimal_places or 0)))
        return key, value
    except (TypeError, ValueError, AttributeError, OverflowError, decimal.InvalidOperation):
        raise DjangoValidationError("Enter a valid value.") from None


def _scalar_field(field: models.Field[Any, Any]) -> bool:
    """Whether `field` is one of Django's own scalar fields, whose values are never
    collections. A custom field (a list stored as text) or an ArrayField takes the
    value its own `to_python` accepts."""
    return type(field).__module__.startswith("django.db.models.")
