"""BaseRepository: generic CRUD, filters, sorting, pagination, error mapping and audit."""

from __future__ import annotations

import dataclasses
import decimal
import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from repositories.core.arguments import argument_path, unstorable_value
from repositories.core.audit import AuditEntry, diff, entity_type_of, record, snapshot
from repositories.core.bulk import copy_rows
from repositories.core.error_mapping import translate_errors
from repositories.core.errors import (
    ConflictError,
    InvalidQueryError,
    NotFoundError,
    StaleObjectError,
    ValidationError,
)
from repositories.core.filters import StrictFilterSet
from repositories.core.instrumentation import query_label
from repositories.core.pagination import (
    CursorPage,
    Page,
    SortKey,
    decode_cursor,
    encode_cursor,
    keyset_condition,
    max_page_size,
    query_fingerprint,
)
from repositories.core.transactions import check_deferred_constraints

ModelT = TypeVar("ModelT", bound=models.Model)
FuncT = TypeVar("FuncT", bound=Callable[..., Any])

#: Columns the repository maintains itself; callers never write them directly.
MANAGED_FIELDS = frozenset({"created_at", "updated_at", "deleted_at", "version"})
#: Public methods that build no query and so need no label.
_UNLABELLED = frozenset({"get_queryset"})
_MAX_BIGINT = 2**63 - 1
_UUID_BATCH_SQL = "SELECT gen_random_uuid() FROM generate_series(1, %s)"


def _labelled(func: FuncT, name: str) -> FuncT:
    """Wrap a public repository method: its queries carry `/* repo:Class.method */` and
    any database error it lets through becomes a RepositoryError (the connection is
    discarded when it broke), so no public method can leak a raw driver error."""

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if (args or kwargs) and _refuse_unstorable(self, func, name, args, kwargs):
            return None
        with (
            query_label(f"{type(self).__name__}.{name}"),
            translate_errors(self.model, using=self.using),
        ):
            return func(self, *args, **kwargs)

    wrapper.__repository_labelled__ = True  # type: ignore[attr-defined]
    return cast(FuncT, wrapper)


#: Parameters holding query criteria: an unstorable value there is an InvalidQueryError.
_QUERY_PARAMETERS = frozenset({"filters", "order_by", "after", "query"})


def _refuse_unstorable(
    repository: Any, func: Callable[..., Any], name: str, args: Any, kwargs: Any
) -> bool:
    """Raise for a string argument PostgreSQL cannot store (lone surrogate, NUL); return
    True when the method answers None instead (a lookup, `lookup_methods`).

    Keys (`id`, `<thing>_id`) are left to the method, which refuses malformed ones.
    """
    found = None
    for position, value in [*((str(i), v) for i, v in enumerate(args)), *kwargs.items()]:
        found = unstorable_value(value)
        if found is None:
            continue
        parameter = argument_path(func, args, kwargs, position)
        if parameter == "id" or parameter.endswith("_id"):
            found = None
            continue
        break
    if found is None:
        return False
    if name in repository.lookup_methods:
        return True
    path, message = found
    key = ".".join(path) if path else parameter
    if parameter in _QUERY_PARAMETERS:
        raise InvalidQueryError({key: [message]})
    raise ValidationError({key: [message]})


def _label_methods(cls: type) -> None:
    for name, attribute in list(vars(cls).items()):
        if (
            name.startswith("_")
            or name in _UNLABELLED
            or not inspect.isfunction(attribute)
            or getattr(attribute, "__repository_labelled__", False)
        ):
            continue
        setattr(cls, name, _labelled(attribute, name))


def _check_int(name: str, value: object, *, minimum: int, maximum: int = _MAX_BIGINT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidQueryError({name: ["Enter a whole number."]})
    if value < minimum:
        raise InvalidQueryError({name: [f"Must be at least {minimum}."]})
    if value > maximum:
        raise InvalidQueryError({name: [f"Must be at most {maximum}."]})
    return value


def _one(queryset: QuerySet[ModelT]) -> ModelT | None:
    """Return the first row of an unordered queryset (LIMIT 1), or None."""
    rows = list(queryset[:1])
    return rows[0] if rows else None


@dataclass(frozen=True)
class _ModelSpec:
    """What a repository needs to know about its model, computed once per class."""

    pk: models.Field[Any, Any]
    pk_from_database: bool
    soft_deletable: bool
    versioned: bool
    has_updated_at: bool
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


class BaseRepository(Generic[ModelT]):
    """Generic data access for one model: reads, writes, filters, sorting and pages.

    Subclasses set `model`, `filterset_class` (a StrictFilterSet), `sortable_fields`,
    `default_order`, and optionally `select_related`, `prefetch_related`,
    `deferred_fields` (never loaded by reads, e.g. a large generated column),
    `audit_exclude`, `readonly_fields` (never written) and `create_only_fields` (set
    when a row is created, refused by updates). Every public method runs inside
    `query_label("<Class>.<method>")`. Database errors surface as RepositoryError
    subclasses (see repositories.core.error_mapping). Soft-deleted rows are invisible unless
    `include_deleted=True` is passed where offered.
    """

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

    _spec_cache: ClassVar[_ModelSpec | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._spec_cache = None
        _label_methods(cls)

    def __init__(self, *, using: str = DEFAULT_DB_ALIAS) -> None:
        self.using = using
        spec = type(self).__dict__.get("_spec_cache")
        self._spec: _ModelSpec = spec if spec is not None else type(self)._build_spec()

    # --- class set-up -------------------------------------------------------------------

    @classmethod
    def _build_spec(cls) -> _ModelSpec:
        model = getattr(cls, "model", None)
        if model is None:
            raise TypeError(f"{cls.__name__} must set `model`.")
        meta = model._meta
        fields = {f.name: f for f in meta.concrete_fields}
        writable: dict[str, models.Field[Any, Any]] = {}
        required: list[str] = []
        for field in meta.concrete_fields:
            if (
                field.primary_key
                or field.generated
                or field.name in MANAGED_FIELDS
                or field.name in cls.readonly_fields
                or not field.editable
            ):
                continue
            writable[field.name] = field
            if field.attname != field.name:
                writable[field.attname] = field
            if not (field.null or field.has_default() or field.has_db_default() or field.blank):
                required.append(field.name)
        sortable: dict[str, models.Field[Any, Any]] = {}
        for name in cls.sortable_fields:
            field = fields.get(name) or next(
                (f for f in meta.concrete_fields if f.attname == name), None
            )
            if field is None or (field.is_relation and name != field.attname) or field.generated:
                raise TypeError(
                    f"{cls.__name__}.sortable_fields: {name!r} is not a sortable column of "
                    f"{model.__name__} (use the attname, e.g. category_id, for a foreign key)."
                )
            sortable[name] = field
        for name in cls.deferred_fields:
            cls._check_field_path(model, name, "deferred_fields")
        filterset = cls.filterset_class
        if filterset is None:
            filterset = cast(
                type[StrictFilterSet],
                type(f"{model.__name__}FilterSet", (StrictFilterSet,), {}),
            )
        spec = _ModelSpec(
            pk=meta.pk,
            pk_from_database=meta.pk.has_db_default(),
            soft_deletable="deleted_at" in fields,
            versioned="version" in fields,
            has_updated_at="updated_at" in fields,
            writable=writable,
            required=tuple(required),
            sortable=sortable,
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
        keys = cls._parse_order(spec, cls.default_order, source="default_order")
        spec = dataclasses.replace(spec, default_keys=keys)
        cls._spec_cache = spec
        return spec

    @classmethod
    def _check_field_path(cls, model: type[models.Model], path: str, source: str) -> None:
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

    @staticmethod
    def _parse_order(spec: _ModelSpec, order_by: object, *, source: str) -> tuple[SortKey, ...]:
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

    # --- hooks --------------------------------------------------------------------------

    def get_queryset(self, *, include_deleted: bool = False) -> QuerySet[ModelT]:
        """Return the rows this repository reads: live ones (unless asked) plus preloads."""
        manager: Any = self.model._default_manager
        if include_deleted and self._spec.soft_deletable:
            manager = getattr(self.model, "all_objects", None) or self.model._base_manager
        queryset: QuerySet[ModelT] = manager.using(self.using)
        if self.select_related:
            queryset = queryset.select_related(*self.select_related)
        if self.prefetch_related:
            queryset = queryset.prefetch_related(*self.prefetch_related)
        if self.deferred_fields:
            queryset = queryset.defer(*self.deferred_fields)
        return queryset

    # --- reads --------------------------------------------------------------------------

    def find_by_id(self, id: object) -> ModelT | None:
        """Return the live row with this key, or None (also for a malformed key).

        One query, plus one per `prefetch_related` lookup.
        """
        pk = self.__coerce_pk(id)
        if pk is None:
            return None
        with translate_errors(self.model, using=self.using):
            # A LIMIT 1 fetch rather than .get(): same plan, no exception on the miss path.
            rows = list(self.get_queryset().filter(pk=pk)[:1])
        return rows[0] if rows else None

    def get_by_id(self, id: object) -> ModelT:
        """Return the live row with this key; raise NotFoundError if missing or deleted."""
        found = self.find_by_id(id)
        if found is None:
            raise NotFoundError(self.model.__name__, id)
        return found

    def find_many(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        order_by: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[ModelT]:
        """Return the rows matching `filters` in the requested order (pk breaks ties).

        One query plus one per prefetch. `limit=None` returns every match. Raises
        InvalidQueryError for unknown/invalid filters or sort fields and bad limits.
        """
        keys = self.__keys(order_by)
        if limit is not None:
            limit = _check_int("limit", limit, minimum=0)
        offset = _check_int("offset", offset, minimum=0)
        queryset = self.__ordered(self.__filtered(filters, include_deleted)[0], keys)
        if limit is not None:
            queryset = queryset[offset : offset + limit]
        elif offset:
            queryset = queryset[offset:]
        with translate_errors(self.model, using=self.using, reading=True):
            return list(queryset)

    def find_first(
        self, filters: Mapping[str, Any] | None = None, *, order_by: Sequence[str] | None = None
    ) -> ModelT | None:
        """Return the first matching live row in the requested order, or None (one query)."""
        rows = self.find_many(filters, order_by=order_by, limit=1)
        return rows[0] if rows else None

    def count(
        self, filters: Mapping[str, Any] | None = None, *, include_deleted: bool = False
    ) -> int:
        """Return the number of rows matching `filters` (one query)."""
        queryset = self.__filtered(filters, include_deleted, bare=True)[0]
        with translate_errors(self.model, using=self.using, reading=True):
            return queryset.count()

    def exists(
        self, filters: Mapping[str, Any] | None = None, *, include_deleted: bool = False
    ) -> bool:
        """Return whether any row matches `filters` (one query)."""
        queryset = self.__filtered(filters, include_deleted, bare=True)[0]
        with translate_errors(self.model, using=self.using, reading=True):
            return queryset.exists()

    def paginate(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        order_by: Sequence[str] | None = None,
        page: int = 1,
        page_size: int = 20,
        include_deleted: bool = False,
    ) -> Page[ModelT]:
        """Return one offset page (two queries: count, then the page, plus prefetches).

        `page_size` is 1..REPOSITORIES["MAX_PAGE_SIZE"] (larger is an error, not silently
        capped); `page` is 1..pages. Anything else raises InvalidQueryError. For deep
        pages prefer `paginate_cursor`, which does not slow down with depth.
        """
        keys = self.__keys(order_by)
        page = _check_int("page", page, minimum=1)
        page_size = _check_int("page_size", page_size, minimum=1, maximum=max_page_size())
        queryset = self.__filtered(filters, include_deleted)[0]
        with translate_errors(self.model, using=self.using, reading=True):
            total = queryset.count()
            pages = max(1, math.ceil(total / page_size))
            if page > pages:
                raise InvalidQueryError({"page": [f"Page {page} is past the last page ({pages})."]})
            start = (page - 1) * page_size
            items = list(self.__ordered(queryset, keys)[start : start + page_size])
        return Page.build(items, total=total, page=page, page_size=page_size)

    def paginate_cursor(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        order_by: Sequence[str] | None = None,
        after: str | None = None,
        limit: int = 20,
        include_deleted: bool = False,
    ) -> CursorPage[ModelT]:
        """Return the keyset page after the cursor `after` (None or "" for the first page).

        One query (plus prefetches) fetching limit + 1 rows. The cursor is opaque and
        HMAC-signed; it holds the last row's sort values and is bound to these filters and
        this order: a tampered, foreign or malformed cursor raises InvalidQueryError, as do
        a bad `limit` (1..MAX_PAGE_SIZE) and bad filters or sort fields. Rows inserted
        behind the cursor are never returned twice or skipped.
        """
        keys = self.__keys(order_by)
        limit = _check_int("limit", limit, minimum=1, maximum=max_page_size())
        queryset, form_data = self.__filtered(filters, include_deleted)
        return self._keyset_page(
            queryset, keys, after, limit, form_data=form_data, include_deleted=include_deleted
        )

    def _keyset_page(
        self,
        queryset: QuerySet[ModelT],
        keys: Sequence[SortKey],
        after: object,
        limit: int,
        *,
        form_data: Mapping[str, Any],
        include_deleted: bool = False,
    ) -> CursorPage[ModelT]:
        """Return the keyset page of `queryset` after the cursor `after` (see paginate_cursor).

        `form_data` is what the filters that narrowed `queryset` normalize to: the cursor
        is bound to them, so a subclass narrowing the rows itself makes and accepts the
        cursors `paginate_cursor` would for the equivalent filters.
        """
        limit = _check_int("limit", limit, minimum=1, maximum=max_page_size())
        fingerprint = query_fingerprint(
            self.model._meta.label,
            type(self).__qualname__,
            include_deleted,
            sorted(form_data.items()),
            [(key.name, key.descending) for key in keys],
        )
        if after is not None and after != "":
            values = decode_cursor(after, fingerprint, keys)
            queryset = queryset.filter(keyset_condition(keys, values))
        with translate_errors(self.model, using=self.using, reading=True):
            rows = list(self.__ordered(queryset, keys)[: limit + 1])
        has_next = len(rows) > limit
        items = rows[:limit]
        next_cursor = None
        if has_next:
            last = items[-1]
            next_cursor = encode_cursor([getattr(last, key.name) for key in keys], fingerprint)
        return CursorPage(items=items, next_cursor=next_cursor, has_next=has_next)

    # --- writes -------------------------------------------------------------------------

    def create(self, data: Mapping[str, Any]) -> ModelT:
        """Insert one row from a mapping of field names; return it reloaded with preloads.

        Raises ValidationError (unknown fields, invalid values, CHECK/NOT NULL/foreign-key
        violations) or ConflictError (unique violations). Audited as "created".
        """
        values = self.__clean(data, creating=True)
        instance = self.model(**values)
        with translate_errors(self.model, using=self.using), self.__atomic():
            instance.save(force_insert=True, using=self.using)
            self._after_create([instance])
            self.__check_references(values)
            self.__audit([self.__entry("created", instance, self.__snapshot(instance))])
            return self.__reload(instance.pk, instance)

    def create_many(
        self, rows: Iterable[Mapping[str, Any]], *, batch_size: int = 1000
    ) -> list[ModelT]:
        """Insert many rows set-based; return them with their database-generated keys.

        Per batch, all in one transaction: one query for the keys (when the database
        generates them), one COPY of the rows, the statements of `_after_create` and one
        audit statement (see audit.record). A batch whose values are not all known
        before sending (an auto-increment key, a column default the model leaves to the
        database) is inserted by bulk_create instead of COPY, which reads them back.
        Every row is validated before anything is sent; errors are keyed
        "<row index>.<field>". Constraint violations map as for `create`. Relations are
        not loaded on the returned objects.
        """
        batch_size = _check_int("batch_size", batch_size, minimum=1, maximum=100_000)
        if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
            raise ValidationError({"__all__": ["Give a list of mappings, one per row."]})
        instances: list[ModelT] = []
        errors: dict[str, list[str]] = {}
        referenced: dict[str, Any] = {}
        for index, row in enumerate(rows):
            try:
                values = self.__clean(row, creating=True)
                instances.append(self.model(**values))
                if not referenced:
                    referenced = {k: v for k, v in values.items() if self.__is_reference(k)}
            except ValidationError as exc:
                errors.update(
                    {f"{index}.{name}": messages for name, messages in exc.errors.items()}
                )
        if errors:
            raise ValidationError(errors)
        spec = self._spec
        manager = self.model._base_manager.db_manager(self.using)
        with translate_errors(self.model, using=self.using), self.__atomic():
            for start in range(0, len(instances), batch_size):
                batch = instances[start : start + batch_size]
                if spec.pk_from_database:
                    with connections[self.using].cursor() as cursor:
                        cursor.execute(_UUID_BATCH_SQL, [len(batch)])
                        for instance, (key,) in zip(batch, cursor.fetchall(), strict=True):
                            setattr(instance, spec.pk.attname, key)
                if not self.__copy(batch):
                    manager.bulk_create(batch)
                self._after_create(batch)
                self.__audit([self.__entry("created", obj, self.__snapshot(obj)) for obj in batch])
            self.__check_references(referenced)
        return instances

    def _after_create(self, instances: Sequence[ModelT]) -> None:
        """Hook: write what belongs with newly inserted rows, in their transaction.

        Called by `create` (one row) and by `create_many` (once per batch) after the
        rows are inserted, with their keys set, and before their audit rows. Must send
        a number of statements that does not depend on the number of rows. Does nothing
        here.
        """

    def __copy(self, batch: Sequence[ModelT]) -> bool:
        """COPY `batch` into the table; False (nothing sent) when a value is unknown yet.

        Values are adapted as an INSERT adapts them (pre_save, get_db_prep_save). A key
        the database assigns on insert or a value left to the database (a column
        default, an expression) cannot travel by COPY, which returns nothing. The
        adaptation runs while the rows stream, so the server works on the first rows
        while the last ones are prepared (about 5 % faster than preparing them first).
        """
        fields = self._spec.insert_fields
        values: list[list[Any]] = []
        for instance in batch:
            row = [field.pre_save(instance, True) for field in fields]
            if instance.pk is None or any(hasattr(v, "resolve_expression") for v in row):
                return False
            values.append(row)
        connection = connections[self.using]
        rows = (
            [field.get_db_prep_save(v, connection) for field, v in zip(fields, row, strict=True)]
            for row in values
        )
        copy_rows(self.using, self.model._meta.db_table, [str(f.column) for f in fields], rows)
        return True

    def update(
        self, id: object, data: Mapping[str, Any], *, expected_version: int | None = None
    ) -> ModelT:
        """Change fields of a live row; return it reloaded with preloads.

        Always bumps `updated_at` and `version` where the model has them. With
        `expected_version` (versioned models only) the UPDATE is conditional on the
        version and raises StaleObjectError when it moved; without it the row is locked
        (SELECT ... FOR UPDATE) while the diff for the audit row is taken. Raises
        NotFoundError, ValidationError, ConflictError.
        """
        spec = self._spec
        if expected_version is not None:
            if not spec.versioned:
                raise TypeError(f"{self.model.__name__} has no version column.")
            expected_version = cast(int, self.__check_value("expected_version", expected_version))
        values = self.__clean(data, creating=False)
        pk = self.__require_pk(id)
        names = self.__changed_names(values)
        manager = self.__manager(include_deleted=False)
        with translate_errors(self.model, using=self.using), self.__atomic():
            current_query = manager.filter(pk=pk)
            if expected_version is None:
                current_query = current_query.select_for_update()
            current = _one(current_query)
            if current is None:
                raise NotFoundError(self.model.__name__, id)
            if expected_version is not None and current.version != expected_version:  # type: ignore[attr-defined]
                raise StaleObjectError(
                    self.model.__name__,
                    pk,
                    expected_version,
                    current.version,  # type: ignore[attr-defined]
                )
            before = snapshot(current, names)
            target = manager.filter(pk=pk)
            if expected_version is not None:
                target = target.filter(version=expected_version)
            now = timezone.now()
            if target.update(**self.__bookkeeping(values, now=now)) == 0:
                raise StaleObjectError(self.model.__name__, pk, expected_version or 0)
            self.__check_references(values)
            for name, value in values.items():
                setattr(current, name, value)
            changes = diff(before, snapshot(current, names))
            self.__bump(current, now)
            self.__audit([self.__entry("updated", current, changes)])
            return self.__reload(pk, current)

    def update_many(self, filters: Mapping[str, Any] | None, data: Mapping[str, Any]) -> int:
        """Apply `data` to every live row matching `filters`; return the number changed.

        Set-based: one SELECT ... FOR UPDATE (in key order) of the changed columns, one
        UPDATE and one audit INSERT (a diff per row), in one transaction. Bumps
        `updated_at` and `version`. `filters={}` means every live row.
        """
        values = self.__clean(data, creating=False)
        names = self.__changed_names(values)
        queryset = self.__filtered(filters, False, bare=True)[0]
        columns = [self._spec.writable[name].attname for name in names]
        with translate_errors(self.model, using=self.using), self.__atomic():
            rows = self.__unique(
                queryset.select_for_update(of=("self",))
                .order_by("pk")
                .only("pk", *columns, *self.audit_inputs)
            )
            if not rows:
                return 0
            self.__manager(include_deleted=False).filter(pk__in=[r.pk for r in rows]).update(
                **self.__bookkeeping(values)
            )
            self.__check_references(values)
            entries = []
            for row in rows:
                before = snapshot(row, names)
                for name, value in values.items():
                    setattr(row, name, value)
                entries.append(self.__entry("updated", row, diff(before, snapshot(row, names))))
            self.__audit(entries)
            return len(rows)

    def delete(self, id: object) -> None:
        """Remove a row for good (live or soft-deleted); raise NotFoundError if missing.

        Django's on_delete rules apply (cascades). A row still referenced under PROTECT
        raises ValidationError. Audited as "deleted" with a snapshot of the row.
        """
        pk = self.__require_pk(id)
        manager = self.__manager(include_deleted=True)
        with translate_errors(self.model, using=self.using), self.__atomic():
            current = _one(manager.select_for_update().filter(pk=pk))
            if current is None:
                raise NotFoundError(self.model.__name__, id)
            manager.filter(pk=pk).delete()
            self.__check_references(None)
            self.__audit([self.__entry("deleted", current, self.__snapshot(current))])

    def delete_many(
        self, filters: Mapping[str, Any] | None, *, include_deleted: bool = False
    ) -> int:
        """Remove every row matching `filters` for good; return the number removed.

        Set-based: one SELECT ... FOR UPDATE in key order, the DELETE (plus Django's
        cascade queries, whose number does not depend on the row count) and one audit
        INSERT with a snapshot per row, in one transaction.
        """
        queryset = self.__filtered(filters, include_deleted, bare=True)[0]
        with translate_errors(self.model, using=self.using), self.__atomic():
            rows = self.__unique(queryset.select_for_update(of=("self",)).order_by("pk"))
            if not rows:
                return 0
            self.__manager(include_deleted=True).filter(pk__in=[r.pk for r in rows]).delete()
            self.__check_references(None)
            self.__audit([self.__entry("deleted", row, self.__snapshot(row)) for row in rows])
            return len(rows)

    def soft_delete(self, id: object) -> ModelT:
        """Hide a live row (set `deleted_at`); return it. NotFoundError if missing/deleted.

        Only for soft-deletable models (TypeError otherwise). Audited as "soft_deleted".
        """
        self.__require_soft_delete()
        pk = self.__require_pk(id)
        manager = self.__manager(include_deleted=True)
        with translate_errors(self.model, using=self.using), self.__atomic():
            current = _one(manager.select_for_update().filter(pk=pk, deleted_at__isnull=True))
            if current is None:
                raise NotFoundError(self.model.__name__, id)
            now = timezone.now()
            manager.filter(pk=pk).update(**self.__bookkeeping({"deleted_at": now}, now=now))
            changes = {"deleted_at": {"old": None, "new": now.isoformat()}}
            self.__audit([self.__entry("soft_deleted", current, changes)])
            current.deleted_at = now  # type: ignore[attr-defined]
            self.__bump(current, now)
            return self.__reload(pk, current, include_deleted=True)

    def restore(self, id: object) -> ModelT:
        """Make a soft-deleted row live again; return it (a live row is returned as is).

        Raises NotFoundError for an unknown key and ConflictError (with_deleted_row=True)
        when a live row has taken its unique values meanwhile. Audited as "restored".
        """
        self.__require_soft_delete()
        pk = self.__require_pk(id)
        manager = self.__manager(include_deleted=True)
        with translate_errors(self.model, using=self.using), self.__atomic():
            current = _one(manager.select_for_update().filter(pk=pk))
            if current is None:
                raise NotFoundError(self.model.__name__, id)
            if current.deleted_at is None:  # type: ignore[attr-defined]
                return self.__reload(pk, current)
            try:
                with translate_errors(self.model, using=self.using):
                    now = timezone.now()
                    manager.filter(pk=pk).update(
                        **self.__bookkeeping({"deleted_at": None}, now=now)
                    )
            except ConflictError as clash:
                what = ", ".join(clash.fields) or "unique values"
                raise ConflictError(
                    f"cannot restore {self._spec.entity_type} {pk}: a live "
                    f"{self._spec.entity_type} now has the same {what}",
                    fields=clash.fields,
                    constraint=clash.constraint,
                    with_deleted_row=True,
                ) from clash.__cause__
            changes = {"deleted_at": {"old": current.deleted_at.isoformat(), "new": None}}  # type: ignore[attr-defined]
            self.__audit([self.__entry("restored", current, changes)])
            current.deleted_at = None  # type: ignore[attr-defined]
            self.__bump(current, now)
            return self.__reload(pk, current)

    # --- internals ----------------------------------------------------------------------

    def __atomic(self) -> transaction.Atomic:
        return transaction.atomic(using=self.using)

    def __check_references(self, values: Mapping[str, Any] | None) -> None:
        """Check deferred foreign keys now, inside this method, when a caller's transaction
        is open (they would otherwise fail at the caller's COMMIT, outside any repository).

        Django creates foreign keys DEFERRABLE INITIALLY DEFERRED. When this method's
        atomic block is the outermost one its COMMIT checks them (inside the error
        mapping), so nothing is sent. `values` None means a delete (any reference).
        """
        if values is not None and not any(self.__is_reference(key) for key in values):
            return
        check_deferred_constraints(self.using)

    def __is_reference(self, key: str) -> bool:
        field = self._spec.writable.get(key)
        return field is not None and field.is_relation

    def __manager(self, *, include_deleted: bool) -> QuerySet[ModelT]:
        """Rows by key without preloads or generated columns (safe for FOR UPDATE)."""
        manager: Any = self.model._default_manager
        if include_deleted and self._spec.soft_deletable:
            manager = getattr(self.model, "all_objects", None) or self.model._base_manager
        queryset = cast(QuerySet[ModelT], manager.using(self.using))
        return queryset.defer(*self._spec.generated) if self._spec.generated else queryset

    def __reload(self, pk: Any, fallback: ModelT, *, include_deleted: bool = False) -> ModelT:
        """Return the written row as get_queryset() loads it (preloads, database values).

        A subclass's get_queryset() may hide the row (say, inactive products); the
        in-memory `fallback` is returned then.
        """
        row = _one(self.get_queryset(include_deleted=include_deleted).filter(pk=pk))
        return fallback if row is None else row

    def _sort_keys(self, order_by: object) -> tuple[SortKey, ...]:
        """Return the validated sort keys of `order_by` (the default order for None)."""
        return self.__keys(order_by)

    def __keys(self, order_by: object) -> tuple[SortKey, ...]:
        if order_by is None:
            return self._spec.default_keys
        return self._parse_order(self._spec, order_by, source="order_by")

    @staticmethod
    def __ordered(queryset: QuerySet[ModelT], keys: Sequence[SortKey]) -> QuerySet[ModelT]:
        return queryset.order_by(*[key.order_expression() for key in keys])

    def __filtered(
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

    def __coerce_pk(self, value: object) -> Any:
        if value is None or isinstance(value, bool | float | decimal.Decimal):
            # A float or Decimal is never a key: 25.5 must not load row 25.
            return None
        if isinstance(value, models.Model):
            value = value.pk
        try:
            key = self._spec.pk.to_python(value)
        except (DjangoValidationError, TypeError, ValueError, AttributeError, OverflowError):
            return None
        if isinstance(key, int) and not -_MAX_BIGINT <= key <= _MAX_BIGINT:
            return None
        return key

    def __require_pk(self, value: object) -> Any:
        pk = self.__coerce_pk(value)
        if pk is None:
            raise NotFoundError(self.model.__name__, value)
        return pk

    def __require_soft_delete(self) -> None:
        if not self._spec.soft_deletable:
            raise TypeError(
                f"{self.model.__name__} rows cannot be soft-deleted: the model has no "
                "deleted_at column; use delete()."
            )

    def __check_value(self, name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError({name: ["Enter a whole number ≥ 0."]})
        return value

    def __clean(self, data: object, *, creating: bool) -> dict[str, Any]:
        """Validate `data` against the model fields; return {name or attname: value}."""
        if not isinstance(data, Mapping):
            raise ValidationError({"__all__": ["Give a mapping of field names to values."]})
        spec = self._spec
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
                name, value = self.__clean_value(field, key, raw)
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

    @staticmethod
    def __clean_value(field: models.Field[Any, Any], key: str, raw: Any) -> tuple[str, Any]:
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
            if isinstance(raw, list | tuple | set | frozenset | dict):
                raise DjangoValidationError("Enter a single value, not a collection.")
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

    @staticmethod
    def __unique(queryset: QuerySet[ModelT]) -> list[ModelT]:
        """Evaluate `queryset`, dropping repeats that joins through filters can produce."""
        seen: set[Any] = set()
        rows = []
        for row in queryset:
            if row.pk not in seen:
                seen.add(row.pk)
                rows.append(row)
        return rows

    def __changed_names(self, values: Mapping[str, Any]) -> list[str]:
        return [self._spec.writable[key].name for key in values]

    def __bookkeeping(self, values: Mapping[str, Any], *, now: Any = None) -> dict[str, Any]:
        updates = dict(values)
        if self._spec.has_updated_at:
            updates["updated_at"] = now or timezone.now()
        if self._spec.versioned:
            updates["version"] = F("version") + 1
        return updates

    def __bump(self, instance: models.Model, now: Any) -> None:
        """Mirror on `instance` what __bookkeeping() made the database do."""
        if self._spec.has_updated_at:
            instance.updated_at = now  # type: ignore[attr-defined]
        if self._spec.versioned:
            instance.version += 1  # type: ignore[attr-defined]

    def __snapshot(self, instance: models.Model) -> dict[str, Any]:
        return snapshot(instance, self._spec.audit_fields)

    def __entry(self, action: str, instance: models.Model, changes: dict[str, Any]) -> AuditEntry:
        return AuditEntry(action, self._spec.entity_type, str(instance.pk), changes)

    def __audit(self, entries: Sequence[AuditEntry]) -> None:
        record(entries, using=self.using)


_label_methods(BaseRepository)
