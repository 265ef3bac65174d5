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
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

__all__ = ["SelectPlan"]

#: The alias of the model's own table in every plan's SQL.
ALIAS = "t0"


@dataclass(frozen=True)
class _Join:
    field: models.ForeignKey[Any, Any]
    model: type[models.Model]
    fields: tuple[models.Field[Any, Any], ...]
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


#: Attribute descriptors that store a value in the instance's __dict__ and nothing else
#: when a new instance is built (a foreign key's also forgets a cached object: none yet).
_PLAIN_DESCRIPTORS = (DeferredAttribute, ForeignKeyDeferredAttribute)


def _plainly_built(model: type[models.Model], names: Iterable[str]) -> bool:
    """Whether `Model.from_db(using, names, values)` only stores the values: the model
    keeps Django's `__init__` and `from_db` and each name is a plain field attribute."""
    return (
        model.__init__ is models.Model.__init__
        and model.from_db.__func__ is models.Model.from_db.__func__  # type: ignore[attr-defined]
        and all(type(model.__dict__.get(name)) in _PLAIN_DESCRIPTORS for name in names)
    )


class _Builder:
    """Builds instances of one model from rows of known columns, as `Model.from_db` does.

    When `from_db` would only store the values (`_plainly_built`) and no `pre_init` or
    `post_init` receiver listens to the model, the values go straight into the
    instance's __dict__ with a loaded `_state`: 0.9 µs instead of 6 µs an instance
    (13 fields, measured), which is most of the cost of a page of hundreds of rows.
    """

    def __init__(self, model: type[models.Model], names: tuple[str, ...]) -> None:
        self.model = model
        self.names = names
        self.plain = _plainly_built(model, names)

    def builder(self, using: str) -> Any:
        """Return `build(values) -> instance` for rows read through `using`."""
        model, names = self.model, self.names
        if not self.plain or pre_init.has_listeners(model) or post_init.has_listeners(model):
            return lambda values: model.from_db(using, names, values)
        new = model.__new__

        def build(values: Sequence[Any]) -> Any:
            instance = new(model)
            instance.__dict__.update(zip(names, values, strict=True))
            state = instance._state = ModelState()
            state.adding = False
            state.db = using
            return instance

        return build


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
        self._builders = (
            _Builder(model, self.names),
            *(_Builder(join.model, join.names) for join in self.joins),
        )
        #: The live-row condition ("" when the default manager hides nothing).
        self.live = live
        columns = [f'{ALIAS}."{f.column}"' for f in fields]
        clauses = [f'FROM "{model._meta.db_table}" {ALIAS}']
        for number, join in enumerate(self.joins, start=1):
            alias = f"t{number}"
            related = join.model._meta
            columns.extend(f'{alias}."{f.column}"' for f in join.fields)
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
        #: The live row with the primary key given as the only parameter.
        pk_condition = f'{ALIAS}."{model._meta.pk.column}" = %s'
        conditions = " AND ".join(c for c in (pk_condition, self.live) if c)
        self.by_pk_sql = f"SELECT {self.columns} {self.from_clause} WHERE {conditions} LIMIT 1"

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
        doing more than hiding soft-deleted rows. `deferred` names fields of the model or,
        as `<foreign key>__<field>`, of a joined model (as `QuerySet.defer` does)."""
        live = _live_condition(model)
        if live is None or not _is_plain_table(model):
            return None
        skipped = {name for name in deferred if "__" not in name}
        skipped_related: dict[str, set[str]] = {}
        for name in deferred:
            if "__" in name:
                relation, _, field_name = name.partition("__")
                skipped_related.setdefault(relation, set()).add(field_name)
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
            omitted = skipped_related.get(name, set())
            related_fields = [
                f
                for f in related._meta.concrete_fields
                if f.name not in omitted and f.attname not in omitted
            ]
            names = tuple(f.attname for f in related_fields)
            pk_index = names.index(related._meta.pk.attname)
            end = start + len(names)
            joins.append(_Join(field, related, tuple(related_fields), names, start, end, pk_index))
            start = end
        return cls(model, joins, fields, live)

    def build(
        self, using: str, rows: Sequence[Sequence[Any]], *, extra: Sequence[str] = ()
    ) -> list[Any]:
        """Build instances from rows of `columns` (+ `extra` columns set as attributes)."""
        build, *join_builds = (builder.builder(using) for builder in self._builders)
        joins = list(zip(self.joins, join_builds, strict=True))
        split = len(self.names)
        width = self.width
        instances: list[Any] = []
        for row in rows:
            instance = build(row[:split])
            for join, build_related in joins:
                related = None
                if row[join.start + join.pk_index] is not None:
                    related = build_related(row[join.start : join.end])
                join.field.set_cached_value(instance, related)
            for offset, name in enumerate(extra):
                setattr(instance, name, row[width + offset])
            instances.append(instance)
        return instances
