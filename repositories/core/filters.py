"""The strict FilterSet base: unknown keys and invalid values are errors, never ignored."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

import django_filters
from django import forms
from django.db import models
from django.db.models import QuerySet
from django_filters import filters

from repositories.core.arguments import MAX_BIGINT
from repositories.core.errors import InvalidQueryError

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_LIST_TYPES = (list, tuple, set, frozenset)


class UUIDInFilter(filters.BaseInFilter, filters.UUIDFilter):
    """`field__in` for UUID keys: a list of UUIDs, or "a,b,c" from a query string."""


class NumberInFilter(filters.BaseInFilter, filters.NumberFilter):
    """`field__in` for numbers."""


class CharInFilter(filters.BaseInFilter, filters.CharFilter):
    """`field__in` for strings (values may not contain commas)."""


class IntegerFilter(filters.Filter):
    """An integer, e.g. an integer key: "25.5" is refused, never rounded to row 25."""

    field_class = forms.IntegerField


def key_filter(pk: models.Field[Any, Any], field_name: str) -> filters.Filter:
    """Return a filter on `field_name` (a foreign key's attname) whose values are
    validated like primary key `pk`: a UUID, an integer, or else a string."""
    if isinstance(pk, models.UUIDField):
        return filters.UUIDFilter(field_name=field_name)
    if isinstance(pk, models.IntegerField):  # AutoField and BigAutoField included
        return IntegerFilter(field_name=field_name, min_value=-MAX_BIGINT, max_value=MAX_BIGINT)
    return filters.CharFilter(field_name=field_name)


class StrictFilterSet(django_filters.FilterSet):
    """A FilterSet that refuses what django-filter would silently ignore.

    `apply(filters, queryset)` validates a mapping (from code or a query string): unknown
    keys, values of unsupported types, lists given to single-value filters and invalid
    values all raise InvalidQueryError with per-field messages. "" and None mean "no
    constraint"; an empty list given to an `in` filter matches nothing.
    """

    base_filters: ClassVar[dict[str, filters.Filter]]

    @classmethod
    def data_keys(cls) -> dict[str, str]:
        """Return {accepted data key: filter name}, including range suffixes (price_min)."""
        keys: dict[str, str] = {}
        for name, declared in cls.base_filters.items():
            widget = declared.field.widget
            suffixes = getattr(widget, "suffixes", None)
            if suffixes:
                for suffix in suffixes:
                    keys[widget.suffixed(name, suffix)] = name
            else:
                keys[name] = name
        return keys

    @classmethod
    def normalize(cls, data: object) -> tuple[dict[str, Any], bool]:
        """Return (form data, matches_nothing) for a filter mapping, or raise InvalidQueryError.

        Values become the strings a query string would carry, so code and requests are
        validated alike; `matches_nothing` is True when an `in` filter got an empty list.
        """
        if data is None:
            return {}, False
        if not isinstance(data, Mapping):
            raise InvalidQueryError({"__all__": ["Filters must be a mapping of names to values."]})
        keys = cls.data_keys()
        errors: dict[str, list[str]] = {}
        form_data: dict[str, Any] = {}
        matches_nothing = False
        for key, value in data.items():
            if not isinstance(key, str) or key not in keys:
                allowed = ", ".join(sorted(keys)) or "none"
                errors[str(key)] = [f"Unknown filter. Allowed filters: {allowed}."]
                continue
            declared = cls.base_filters[keys[key]]
            try:
                converted = _form_value(declared, value)
            except ValueError as exc:
                errors[key] = [str(exc)]
                continue
            if converted is None:
                continue
            if converted == []:
                matches_nothing = True
                continue
            form_data[key] = converted
        if errors:
            raise InvalidQueryError(errors)
        return form_data, matches_nothing

    @classmethod
    def apply(cls, data: object, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Return `queryset` narrowed by `data`; raise InvalidQueryError on any bad input."""
        form_data, matches_nothing = cls.normalize(data)
        if matches_nothing:
            return queryset.none()
        return cls.apply_normalized(form_data, queryset)

    @classmethod
    def apply_normalized(cls, form_data: dict[str, Any], queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Return `queryset` narrowed by data from `normalize()`; raise InvalidQueryError."""
        if not form_data:
            return queryset
        filterset = cls(form_data, queryset=queryset)
        if not filterset.is_valid():
            raise InvalidQueryError(
                {name: [str(m) for m in messages] for name, messages in filterset.errors.items()}
            )
        return filterset.filter_queryset(queryset)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, models.Model):
        return str(value.pk)
    raise ValueError(f"Unsupported value type {type(value).__name__}.")


def _form_value(declared: filters.Filter, value: Any) -> Any:
    """Return the query-string form of `value` for `declared`, None for "no constraint"."""
    if value is None or value == "":
        return None
    many = isinstance(
        declared,
        filters.BaseCSVFilter | filters.MultipleChoiceFilter | filters.ModelMultipleChoiceFilter,
    )
    if isinstance(value, _LIST_TYPES):
        if not many:
            raise ValueError("Expected a single value, not a list.")
        items = [_scalar(item) for item in value]
        if isinstance(declared, filters.BaseCSVFilter) and any("," in item for item in items):
            raise ValueError("Values in a list may not contain commas.")
        return items
    text = _scalar(value)
    if isinstance(declared, filters.BooleanFilter):
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return "true"
        if lowered in _FALSE:
            return "false"
        raise ValueError("Enter true or false.")
    if isinstance(declared, filters.BaseCSVFilter) and text.strip() == "":
        return None
    return [text] if many and not isinstance(declared, filters.BaseCSVFilter) else text
