"""Hand-written SELECTs of a model with its forward foreign keys, rows built with from_db.

A `SelectPlan` describes, from model metadata alone, the statement a repository's
`get_queryset()` compiles when it is the base one with single-level `select_related`
foreign keys: the model's columns (minus deferred ones), each related model's columns,
the joins, and the default manager's live-row condition. Repositories use it to skip
compiling queries and the queryset machinery on hot reads; `build` turns the rows into
ordinary instances (not `adding`, bound to the alias, deferred fields unloaded, related
objects cached, None for a missing related row) as the ORM would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models

__all__ = ["SelectPlan"]

#: The alias of the model's own table in every plan's SQL.
ALIAS = "t0"


@dataclass(frozen=True)
class _Join:
    field: models.ForeignKey[Any, Any]
    model: type[models.Model]
    names: tuple[str, ...]
    start: int
    end: int
    pk_index: int


def _is_plain_table(model: type[models.Model]) -> bool:
    """Whether every concrete field of `model` lives in its own table (no MTI parents)."""
    return not model._meta.parents


def _live_condition(model: type[models.Model]) -> str | None:
    """Return the SQL of the default manager's row condition ("" for none), or None when
    the manager changes rows in another way than hiding soft-deleted ones."""
    actual = str(model._default_manager.all().query)
    if actual == str(model._base_manager.all().query):
        return ""
    deleted_at = next((f for f in model._meta.concrete_fields if f.name == "deleted_at"), None)
    if deleted_at is not None:
        live = model._base_manager.filter(deleted_at__isnull=True)
        if actual == str(live.query):
            return f'{ALIAS}."{deleted_at.column}" IS NULL'
    return None


class SelectPlan:
    """The columns, joins and live condition of a model read with its foreign keys."""

    #: The alias of the model's own table in `columns`, `from_clause` and `live`.
    alias = ALIAS

    def __init__(
        self,
        model: type[models.Model],
        joins: Sequence[_Join],
        fields: Sequence[models.Field[Any, Any]],
        live: str,
    ) -> None:
        self.model = model
        self.names = tuple(f.attname for f in fields)
        self.joins = tuple(joins)
        #: The live-row condition ("" when the default manager hides nothing).
        self.live = live
        columns = [f'{ALIAS}."{f.column}"' for f in fields]
        clauses = [f'FROM "{model._meta.db_table}" {ALIAS}']
        for number, join in enumerate(self.joins, start=1):
            alias = f"t{number}"
            related = join.model._meta
            columns.extend(f'{alias}."{f.column}"' for f in related.concrete_fields)
            # As select_related: an outer join for a nullable key, an inner one otherwise.
            kind = "LEFT OUTER JOIN" if join.field.null else "INNER JOIN"
            target = join.field.target_field.column
            clauses.append(
                f'{kind} "{related.db_table}" {alias}'
                f' ON {ALIAS}."{join.field.column}" = {alias}."{target}"'
            )
        #: `<columns>` of `SELECT <columns> FROM ...`, in the order `build` reads them.
        self.columns = ", ".join(columns)
        #: `FROM <table> t0 [JOIN ...]`.
        self.from_clause = " ".join(clauses)
        #: Number of columns a row of this plan has (extra columns follow them).
        self.width = self.joins[-1].end if self.joins else len(self.names)

    @classmethod
    def for_model(
        cls,
        model: type[models.Model],
        select_related: Iterable[str] = (),
        *,
        deferred: Iterable[str] = (),
    ) -> SelectPlan | None:
        """Return the plan of `model` with these related fields and deferred fields, or None
        when the ORM would read differently than a plain join: a `__` path, a field that is
        not a non-unique forward foreign key, multi-table inheritance, or a default manager
        doing more than hiding soft-deleted rows."""
        live = _live_condition(model)
        if live is None or not _is_plain_table(model):
            return None
        skipped = set(deferred)
        fields = [
            f
            for f in model._meta.concrete_fields
            if f.name not in skipped and f.attname not in skipped
        ]
        joins: list[_Join] = []
        start = len(fields)
        for name in select_related:
            try:
                field = model._meta.get_field(name)
            except FieldDoesNotExist:
                return None
            if not (
                isinstance(field, models.ForeignKey)
                and not field.unique
                and _is_plain_table(field.related_model)
            ):
                return None
            related: type[models.Model] = field.related_model
            related_fields = related._meta.concrete_fields
            names = tuple(f.attname for f in related_fields)
            pk_index = names.index(related._meta.pk.attname)
            end = start + len(names)
            joins.append(_Join(field, related, names, start, end, pk_index))
            start = end
        return cls(model, joins, fields, live)

    def build(
        self, using: str, rows: Sequence[Sequence[Any]], *, extra: Sequence[str] = ()
    ) -> list[Any]:
        """Build instances from rows of `columns` (+ `extra` columns set as attributes)."""
        model = self.model
        names = self.names
        split = len(names)
        width = self.width
        instances: list[Any] = []
        for row in rows:
            instance = model.from_db(using, names, row[:split])
            for join in self.joins:
                related = None
                if row[join.start + join.pk_index] is not None:
                    related = join.model.from_db(using, join.names, row[join.start : join.end])
                join.field.set_cached_value(instance, related)
            for offset, name in enumerate(extra):
                setattr(instance, name, row[width + offset])
            instances.append(instance)
        return instances
