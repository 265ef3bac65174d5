"""What a repository knows about its model, computed once per repository class."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

from django.apps import apps
from django.contrib.postgres.functions import RandomUUID
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models

from repositories.core.audit import entity_type_of
from repositories.core.conf import setting
from repositories.core.errors import InvalidQueryError
from repositories.core.filters import StrictFilterSet
from repositories.core.pagination import SortKey

__all__ = ["ModelSpec", "build_spec", "parse_order"]


@dataclass(frozen=True)
class ModelSpec:
    """What a repository needs to know about its model, computed once per class."""

    pk: models.Field[Any, Any]
    #: The database fills the key with gen_random_uuid() (create_many asks it for a
    #: batch of keys first, so rows can travel by COPY).
    uuid_keys_from_database: bool
    #: The column holding the deletion time (None: rows are deleted for good only).
    soft_delete_field: str | None
    #: The optimistic-locking counter (None: no version checks).
    version_field: str | None
    #: The last-change time the repository sets on every update (None: none).
    updated_at_field: str | None
    writable: dict[str, models.Field[Any, Any]]
    required: tuple[str, ...]
    sortable: dict[str, models.Field[Any, Any]]
    default_keys: tuple[SortKey, ...]
    filterset: type[StrictFilterSet]
    audit_fields: tuple[str, ...]
    entity_type: str
    generated: tuple[str, ...]
    #: Names and attnames accepted by create/create_many but refused by updates.
    create_only: frozenset[str] = frozenset()
    #: The columns an INSERT writes (every concrete field except generated ones).
    insert_fields: tuple[models.Field[Any, Any], ...] = ()

    @property
    def soft_deletable(self) -> bool:
        return self.soft_delete_field is not None

    @property
    def versioned(self) -> bool:
        return self.version_field is not None


def _present(fields: dict[str, Any], name: str | None) -> str | None:
    return name if name and name in fields else None


def build_spec(cls: Any) -> ModelSpec:
    """Return the spec of repository class `cls` (its model and class attributes).

    Raises TypeError for a repository without `model`, an unknown sortable field or a
    misspelled deferred field: mistakes in the class, found when it is first used.
    """
    model = getattr(cls, "model", None)
    if model is None:
        raise TypeError(f"{cls.__name__} must set `model`.")
    meta = model._meta
    fields = {f.name: f for f in meta.concrete_fields}
    soft_delete_field = _present(fields, cls.soft_delete_field)
    version_field = _present(fields, cls.version_field)
    updated_at_field = _present(fields, cls.updated_at_field)
    # Columns the repository maintains itself; callers never write them directly.
    managed = {soft_delete_field, version_field, updated_at_field, cls.created_at_field}
    writable: dict[str, models.Field[Any, Any]] = {}
    required: list[str] = []
    for field in meta.concrete_fields:
        if (
            field.primary_key
            or field.generated
            or field.name in managed
            or field.name in cls.readonly_fields
            or not field.editable
        ):
            continue
        writable[field.name] = field
        if field.attname != field.name:
            writable[field.attname] = field
        if not (field.null or field.has_default() or field.has_db_default() or field.blank):
            required.append(field.name)
    for name in cls.deferred_fields:
        check_field_path(cls, model, name, "deferred_fields")
    if cls.audit:
        _check_audit_model(cls)
    filterset = cls.filterset_class or cast(
        type[StrictFilterSet], type(f"{model.__name__}FilterSet", (StrictFilterSet,), {})
    )
    spec = ModelSpec(
        pk=meta.pk,
        uuid_keys_from_database=isinstance(getattr(meta.pk, "db_default", None), RandomUUID),
        soft_delete_field=soft_delete_field,
        version_field=version_field,
        updated_at_field=updated_at_field,
        writable=writable,
        required=tuple(required),
        sortable=_sortable(cls, model, fields),
        default_keys=(),
        filterset=filterset,
        audit_fields=tuple(
            f.attname
            for f in meta.concrete_fields
            if f.name not in cls.audit_exclude and f.attname not in cls.audit_exclude
        ),
        entity_type=entity_type_of(model),
        generated=tuple(f.attname for f in meta.concrete_fields if f.generated),
        create_only=frozenset(
            key for key, f in writable.items() if f.name in cls.create_only_fields
        ),
        insert_fields=tuple(f for f in meta.concrete_fields if not f.generated),
    )
    keys = parse_order(spec, cls.default_order, source="default_order")
    return dataclasses.replace(spec, default_keys=keys)


def _check_audit_model(cls: Any) -> None:
    """Refuse an audited repository whose audit model is not installed, at set-up rather
    than at its first write."""
    label = setting("AUDIT_MODEL")
    try:
        apps.get_model(label)
    except (LookupError, ValueError):
        raise ImproperlyConfigured(
            f"{cls.__name__}.audit is on but the audit model {label!r} is not installed: "
            'add its app, or set REPOSITORIES["AUDIT_MODEL"] to a model with the fields of '
            "repositories.core.audit.AUDIT_FIELDS."
        ) from None


def _sortable(
    cls: Any, model: type[models.Model], fields: dict[str, models.Field[Any, Any]]
) -> dict[str, models.Field[Any, Any]]:
    sortable: dict[str, models.Field[Any, Any]] = {}
    for name in cls.sortable_fields:
        field = fields.get(name) or next(
            (f for f in model._meta.concrete_fields if f.attname == name), None
        )
        if field is None or (field.is_relation and name != field.attname) or field.generated:
            raise TypeError(
                f"{cls.__name__}.sortable_fields: {name!r} is not a sortable column of "
                f"{model.__name__} (use the attname, e.g. category_id, for a foreign key)."
            )
        sortable[name] = field
    return sortable


def check_field_path(cls: Any, model: type[models.Model], path: str, source: str) -> None:
    """Refuse a `<field>[__<field>...]` path that names no field (a misspelling)."""
    current: Any = model
    for part in path.split("__"):
        try:
            field = current._meta.get_field(part)
        except (FieldDoesNotExist, AttributeError):
            raise TypeError(
                f"{cls.__name__}.{source}: {path!r} is not a field path of {model.__name__}."
            ) from None
        current = field.related_model


def parse_order(spec: ModelSpec, order_by: object, *, source: str) -> tuple[SortKey, ...]:
    """Return the validated sort keys of `order_by`, the primary key last (the tiebreak)."""

    if isinstance(order_by, str):
        order_by = [order_by]
    if not isinstance(order_by, list | tuple):
        raise InvalidQueryError({source: ["Give a list of field names, e.g. ['-created_at']."]})
    keys: list[SortKey] = []
    seen: set[str] = set()
    errors: list[str] = []
    for item in order_by:
        if not isinstance(item, str):
            errors.append(f"{item!r} is not a field name.")
            continue
        descending = item.startswith("-")
        name = item[1:] if descending else item
        field = spec.sortable.get(name)
        if field is None:
            allowed = ", ".join(spec.sortable) or "none"
            errors.append(f"Cannot sort by {item!r}. Sortable fields: {allowed}.")
            continue
        if name in seen:
            errors.append(f"{name!r} appears more than once.")
            continue
        seen.add(name)
        keys.append(SortKey(field, descending))
    if errors:
        raise InvalidQueryError({source: errors})
    if not any(key.field.primary_key for key in keys):
        # The primary key breaks ties, in the direction of the last key, so one index
        # on (last key, pk) serves the whole order.
        keys.append(SortKey(spec.pk, keys[-1].descending if keys else False))
    return tuple(keys)
