"""What every repository shares: its class attributes, model spec, queryset and keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast

from django.db import DEFAULT_DB_ALIAS, models, transaction
from django.db.models import QuerySet

from repositories.core.boundary import label_methods
from repositories.core.errors import InvalidQueryError, NotFoundError
from repositories.core.filters import StrictFilterSet
from repositories.core.keys import parse_key
from repositories.core.pagination import SortKey
from repositories.core.routing import current_call_alias
from repositories.core.spec import ModelSpec, build_spec, parse_order

__all__ = ["ModelT", "RepositoryFoundation", "first_row", "hides_deleted"]

ModelT = TypeVar("ModelT", bound=models.Model)


def first_row(queryset: QuerySet[ModelT]) -> ModelT | None:
    """Return the first row of an unordered queryset (LIMIT 1), or None."""
    rows = list(queryset[:1])
    return rows[0] if rows else None


def hides_deleted(queryset: QuerySet[Any], field: str) -> bool:
    """Whether `queryset` already keeps only rows whose `field` IS NULL (the usual live
    manager), so the repository does not add the same condition twice.

    Reads the top-level conditions of `queryset.query.where` (Django's WhereNode of
    lookups): an `isnull=True` lookup on that field, joined by AND.
    """
    where = queryset.query.where
    if where.connector != "AND" or where.negated:
        return False
    for child in where.children:
        lhs = getattr(child, "lhs", None)
        target = getattr(lhs, "target", None)
        if (
            getattr(child, "lookup_name", None) == "isnull"
            and getattr(child, "rhs", None) is True
            and getattr(target, "name", None) == field
            and getattr(lhs, "alias", None) == queryset.model._meta.db_table
        ):
            return True
    return False


class RepositoryFoundation(Generic[ModelT]):
    """The configuration and shared internals of BaseRepository (see its docstring)."""

    model: type[ModelT]
    filterset_class: type[StrictFilterSet] | None = None
    sortable_fields: tuple[str, ...] = ()
    default_order: tuple[str, ...] = ()
    select_related: tuple[str, ...] = ()
    prefetch_related: tuple[Any, ...] = ()
    deferred_fields: tuple[str, ...] = ()
    audit_exclude: tuple[str, ...] = ()
    readonly_fields: tuple[str, ...] = ()
    create_only_fields: tuple[str, ...] = ()
    #: Fields the model's `audit_redacted_fields()` reads: loaded with the rows of bulk
    #: updates, so the audit trail can tell which values are secret.
    audit_inputs: tuple[str, ...] = ()
    #: Public methods that answer None (not an error) for a key or text that cannot
    #: exist in the database, such as one holding a NUL character.
    lookup_methods: ClassVar[frozenset[str]] = frozenset({"find_by_id"})
    #: Public methods that only read: with READ_REPLICAS set they may run on a replica.
    #: Every other public method runs on the primary (it writes, or may).
    read_methods: ClassVar[frozenset[str]] = frozenset(
        {
            "find_by_id",
            "get_by_id",
            "find_many",
            "find_first",
            "count",
            "exists",
            "paginate",
            "paginate_cursor",
        }
    )

    #: Bookkeeping columns, each used only when the model has it (soft delete by
    #: `soft_delete_field`, optimistic locking by `version_field`).
    soft_delete_field: ClassVar[str | None] = "deleted_at"
    version_field: ClassVar[str | None] = "version"
    updated_at_field: ClassVar[str | None] = "updated_at"
    created_at_field: ClassVar[str | None] = "created_at"
    #: Record every write in the audit log (repositories.core.audit); off unless set.
    audit: ClassVar[bool] = False

    _spec_cache: ClassVar[ModelSpec | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._spec_cache = None
        label_methods(cls)

    def __init__(self, *, using: str | None = None) -> None:
        # None: routed (repositories.core.routing) when READ_REPLICAS is set, else the
        # default alias; an alias given here is used for every query, reads included.
        self._alias = using
        cls = type(self)
        spec = cls.__dict__.get("_spec_cache")
        if spec is None:
            spec = build_spec(cls)
            cls._spec_cache = spec
        self._spec: ModelSpec = spec

    @property
    def using(self) -> str:
        """Return the alias this repository's queries run on now: the one it was built
        with, else the one routing chose for the public method running (else default)."""
        if self._alias is not None:
            return self._alias
        return current_call_alias() or DEFAULT_DB_ALIAS

    @property
    def routed(self) -> bool:
        """Return whether routing chooses this repository's alias (built without using=)."""
        return self._alias is None

    def get_queryset(self, *, include_deleted: bool = False) -> QuerySet[ModelT]:
        """Return the rows this repository reads: live ones (unless asked) plus preloads."""
        manager: Any = self.model._default_manager
        if include_deleted and self._spec.soft_deletable:
            manager = getattr(self.model, "all_objects", None) or self.model._base_manager
        queryset: QuerySet[ModelT] = manager.using(self.using)
        field = self._spec.soft_delete_field
        if field and not include_deleted and not hides_deleted(queryset, field):
            # The model's default manager shows deleted rows: the repository hides them.
            queryset = queryset.filter(**{f"{field}__isnull": True})
        if self.select_related:
            queryset = queryset.select_related(*self.select_related)
        if self.prefetch_related:
            queryset = queryset.prefetch_related(*self.prefetch_related)
        if self.deferred_fields:
            queryset = queryset.defer(*self.deferred_fields)
        return queryset

    def _atomic_block(self) -> transaction.Atomic:
        return transaction.atomic(using=self.using)

    def _rows_manager(self, *, include_deleted: bool) -> QuerySet[ModelT]:
        """Rows by key without preloads or generated columns (safe for FOR UPDATE)."""
        manager: Any = self.model._default_manager
        if include_deleted and self._spec.soft_deletable:
            manager = getattr(self.model, "all_objects", None) or self.model._base_manager
        queryset = cast(QuerySet[ModelT], manager.using(self.using))
        return queryset.defer(*self._spec.generated) if self._spec.generated else queryset

    def _reloaded(self, pk: Any, fallback: ModelT, *, include_deleted: bool = False) -> ModelT:
        """Return the written row as get_queryset() loads it (preloads, database values).

        A subclass's get_queryset() may hide the row (say, inactive products); the
        in-memory `fallback` is returned then.
        """
        row = first_row(self.get_queryset(include_deleted=include_deleted).filter(pk=pk))
        return fallback if row is None else row

    def _sort_keys(self, order_by: object) -> tuple[SortKey, ...]:
        """Return the validated sort keys of `order_by` (the default order for None)."""
        return self._keys(order_by)

    def _keys(self, order_by: object) -> tuple[SortKey, ...]:
        if order_by is None:
            return self._spec.default_keys
        return parse_order(self._spec, order_by, source="order_by")

    @staticmethod
    def _ordered(queryset: QuerySet[ModelT], keys: Sequence[SortKey]) -> QuerySet[ModelT]:
        return queryset.order_by(*[key.order_expression() for key in keys])

    def _filtered_queryset(
        self, filters: object, include_deleted: object, *, bare: bool = False
    ) -> tuple[QuerySet[ModelT], dict[str, Any]]:
        if not isinstance(include_deleted, bool):
            raise InvalidQueryError({"include_deleted": ["Enter true or false."]})
        queryset = self.get_queryset(include_deleted=include_deleted)
        if bare:
            # Counting, locking and bulk statements need the rows, not their relations.
            queryset = queryset.select_related(None).prefetch_related(None)
            if self._spec.generated:
                queryset = queryset.defer(*self._spec.generated)
        if filters is None:
            return queryset, {}
        filterset = self._spec.filterset
        form_data, matches_nothing = filterset.normalize(filters)
        if matches_nothing:
            return queryset.none(), form_data
        return filterset.apply_normalized(form_data, queryset), form_data

    def _coerce_pk(self, value: object) -> Any:
        return parse_key(self._spec.pk, value)

    def _require_pk(self, value: object) -> Any:
        pk = self._coerce_pk(value)
        if pk is None:
            raise NotFoundError(self.model.__name__, value)
        return pk
