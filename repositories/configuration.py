"""System configuration: typed JSON values by key, cached reads, optimistic locking."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any
from urllib.parse import quote

import django_filters as filters
from django.db import connections
from django.utils import timezone
from psycopg.types.json import Jsonb

from domain.models import SystemConfig
from repositories.configuration_values import (
    check_key,
    check_version,
    json_value,
    prepare_entry,
    well_formed,
)
from repositories.core.audit import (
    REDACTED,
    AuditEntry,
    current_audit_state,
    entity_type_of,
    record,
)
from repositories.core.base import BaseRepository
from repositories.core.cache import cached_or_load, next_generation
from repositories.core.conf import setting
from repositories.core.error_mapping import translate_errors
from repositories.core.filters import StrictFilterSet
from repositories.core.routing import PRIMARY
from repositories.core.transactions import (
    atomic,
    check_deferred_constraints,
    on_commit_or_unknown,
)
from repositories.errors import (
    InvalidQueryError,
    NotFoundError,
    StaleObjectError,
    ValidationError,
)

#: The same rule as the CHECK constraint system_config_key_format.
_ENTITY = entity_type_of(SystemConfig)
_CACHE_PREFIX = "repositories:system_config"

_INSERT_SQL = (
    "INSERT INTO system_config "
    "(key, value, description, version, updated_by_id, created_at, updated_at) "
    "VALUES (%s, %s, %s, 1, %s, %s, %s) ON CONFLICT (key) DO NOTHING RETURNING id"
)


class SystemConfigFilterSet(StrictFilterSet):
    """Criteria for listing entries: exact key, key prefix, last change."""

    key = filters.CharFilter()
    key_prefix = filters.CharFilter(field_name="key", lookup_expr="startswith")
    updated_after = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    updated_before = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="lt")

    class Meta:
        model = SystemConfig
        fields: tuple[str, ...] = ()


class SystemConfigRepository(BaseRepository[SystemConfig]):
    """Read and write configuration entries: JSON values (null, bool, number, string,
    list, object with string keys) under keys matching `[A-Za-z0-9_.:-]+`.

    `get` is served from Django's default cache outside transactions; every write
    invalidates the key when, and only when, its transaction commits, so a rolled-back
    write never shows. Inside a transaction `get` reads the database (your own
    uncommitted writes included) and leaves the cache alone. Values of keys that look
    secret (`SystemConfig.audit_redacted_fields`) appear as "[redacted]" in the audit
    log, whatever writes them (`set`, the generic and bulk writes, the admin).
    """

    model = SystemConfig
    read_methods = BaseRepository.read_methods | {"all"}
    audit = True
    audit_inputs = ("key",)
    filterset_class = SystemConfigFilterSet
    sortable_fields = ("key", "updated_at", "created_at")
    default_order = ("key",)

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value stored under `key`, or `default` when there is none.

        A cache hit costs no query; a miss one query. A key that can never exist
        (wrong format) returns `default`; a non-string raises InvalidQueryError.
        """
        if not isinstance(key, str):
            raise InvalidQueryError({"key": ["Enter a string."]})
        if not well_formed(key):
            return default
        if connections[self.using].in_atomic_block:
            found, value = self._load(key)
        else:
            found, value = self._cached(key)
        return value if found else default

    def set(
        self,
        key: str,
        value: Any,
        *,
        expected_version: int | None = None,
        description: str | None = None,
    ) -> SystemConfig:
        """Store `value` under `key` and return the entry; every write bumps `version`.

        Creates the entry when missing. With `expected_version`, the entry must exist at
        that version (StaleObjectError otherwise, also when it was deleted): of two
        writers that read the same version exactly one wins. The row is locked while it
        is checked and written. `description` None keeps the current one.
        Raises ValidationError for a malformed key or a value JSON cannot carry.
        """
        check_key(key)
        stored = json_value(value)
        if expected_version is not None:
            check_version(expected_version)
        if description is not None and not isinstance(description, str):
            raise ValidationError({"description": ["Enter a string."]})
        actor_id = _actor_id()
        with translate_errors(SystemConfig, using=self.using), atomic(using=self.using):
            entry = self._set_locked(key, stored, expected_version, description, actor_id)
            # `updated_by` is a deferred foreign key: an unknown actor fails here, not at
            # the caller's COMMIT.
            check_deferred_constraints(self.using)
        return entry

    def _set_locked(
        self,
        key: str,
        stored: Any,
        expected_version: int | None,
        description: str | None,
        actor_id: Any,
    ) -> SystemConfig:
        """The body of `set` inside its transaction: insert or update the locked row."""
        entry = self._locked(key)
        if entry is None:
            if expected_version is not None:
                raise StaleObjectError("SystemConfig", key, expected_version, None)
            entry = self._insert(key, stored, description or "", actor_id)
            if entry is not None:
                self._written(entry, AuditEntry("created", _ENTITY, str(entry.pk), _created(entry)))
                return entry
            # A concurrent writer created it first (ON CONFLICT waited for its
            # commit): update that row like any existing one.
            entry = self._locked(key)
            if entry is None:  # pragma: no cover - deleted again in between
                raise StaleObjectError("SystemConfig", key, 0, None)
        if expected_version is not None and entry.version != expected_version:
            raise StaleObjectError("SystemConfig", key, expected_version, entry.version)
        before = _audited(entry)
        entry.value = stored
        if description is not None:
            entry.description = description
        entry.version += 1
        entry.updated_by_id = actor_id
        entry.updated_at = timezone.now()
        entry.save(
            using=self.using,
            update_fields=["value", "description", "version", "updated_by", "updated_at"],
        )
        changes = _diff(before, _audited(entry), entry)
        self._written(entry, AuditEntry("updated", _ENTITY, str(entry.pk), changes))
        return entry

    def all(self) -> dict[str, Any]:
        """Return every entry as {key: value}, ordered by key (one query, not cached)."""
        with translate_errors(SystemConfig, using=self.using):
            return dict(
                SystemConfig.objects.using(self.using).order_by("key").values_list("key", "value")
            )

    def delete(self, key: str) -> None:  # type: ignore[override]
        """Delete the entry under `key` (a key, not an id); NotFoundError when missing."""
        if not isinstance(key, str) or not well_formed(key):
            raise NotFoundError("SystemConfig", key)
        with translate_errors(SystemConfig, using=self.using), atomic(using=self.using):
            entry = self._locked(key)
            if entry is None:
                raise NotFoundError("SystemConfig", key)
            SystemConfig.objects.using(self.using).filter(pk=entry.pk).delete()
            self._written(entry, AuditEntry("deleted", _ENTITY, str(entry.pk), _created(entry)))

    def create(self, data: Mapping[str, Any]) -> SystemConfig:
        """Create an entry from field values (prefer `set`); ConflictError if the key exists."""
        prepared = prepare_entry(data)
        with atomic(using=self.using):
            entry = super().create(prepared)
            self._invalidate_on_commit([entry.key])
        return entry

    def create_many(
        self, rows: Iterable[Mapping[str, Any]], *, batch_size: int = 1000
    ) -> list[SystemConfig]:
        """Create entries set-based (prefer `set`); invalidates their keys on commit."""
        if isinstance(rows, Iterable) and not isinstance(rows, str | bytes | Mapping):
            rows = [prepare_entry(row) for row in rows]
        with atomic(using=self.using):
            entries = super().create_many(rows, batch_size=batch_size)
            self._invalidate_on_commit([entry.key for entry in entries])
        return entries

    def update(
        self, id: object, data: Mapping[str, Any], *, expected_version: int | None = None
    ) -> SystemConfig:
        """Update an entry by id (prefer `set`); keys cannot be renamed."""
        prepared = prepare_entry(data, renaming_refused=True)
        with atomic(using=self.using):
            entry = super().update(id, prepared, expected_version=expected_version)
            self._invalidate_on_commit([entry.key])
        return entry

    def update_many(self, filters: Mapping[str, Any] | None, data: Mapping[str, Any]) -> int:
        """Update matching entries set-based; invalidates their keys on commit."""
        prepared = prepare_entry(data, renaming_refused=True)
        with atomic(using=self.using):
            keys = self._matching_keys(filters)
            count = super().update_many(filters, prepared)
            self._invalidate_on_commit(keys)
        return count

    def delete_many(
        self, filters: Mapping[str, Any] | None, *, include_deleted: bool = False
    ) -> int:
        """Delete matching entries; invalidates their keys on commit."""
        with atomic(using=self.using):
            keys = self._matching_keys(filters)
            count = super().delete_many(filters, include_deleted=include_deleted)
            self._invalidate_on_commit(keys)
        return count

    # -- internals ------------------------------------------------------------------

    def _cache_key(self, key: str) -> str:
        return f"{_CACHE_PREFIX}:{database_identity(self.using)}:{key}"

    def _cached(self, key: str) -> tuple[bool, Any]:
        """Return (found, value) of `key` from the cache (repositories.core.cache)."""
        return cached_or_load(
            self._cache_key(key), partial(self._load, key), timeout=_cache_seconds()
        )

    def _load(self, key: str) -> tuple[bool, Any]:
        with translate_errors(SystemConfig, using=self.using):
            rows = list(
                SystemConfig.objects.using(self.using).filter(key=key).values_list("value")[:1]
            )
        return (True, rows[0][0]) if rows else (False, None)

    def _locked(self, key: str) -> SystemConfig | None:
        query = SystemConfig.objects.using(self.using).select_for_update().filter(key=key)
        return next(iter(query[:1]), None)

    def _insert(self, key: str, value: Any, description: str, actor_id: Any) -> SystemConfig | None:
        now = timezone.now()
        with connections[self.using].cursor() as cursor:
            params: list[Any] = [key, None if value is None else Jsonb(value)]
            cursor.execute(_INSERT_SQL, [*params, description, actor_id, now, now])
            row = cursor.fetchone()
        if row is None:
            return None
        entry = SystemConfig(
            id=row[0],
            key=key,
            value=value,
            description=description,
            version=1,
            updated_by_id=actor_id,
            created_at=now,
            updated_at=now,
        )
        entry._state.adding = False
        entry._state.db = self.using
        return entry

    def _written(self, entry: SystemConfig, audit: AuditEntry) -> None:
        record([audit], using=self.using)
        self._invalidate_on_commit([entry.key])

    def _invalidate_on_commit(self, keys: Sequence[str]) -> None:
        if keys:
            cache_keys = [self._cache_key(key) for key in keys]
            # Also when the COMMIT's answer is lost: a committed set() must never leave the
            # old value served (an extra invalidation only costs one read).
            on_commit_or_unknown(partial(next_generation, cache_keys), using=self.using)

    def _matching_keys(self, filters: Mapping[str, Any] | None) -> list[str]:
        queryset = SystemConfig.objects.using(self.using).all()
        with translate_errors(SystemConfig, using=self.using):
            return list(self.filterset_class.apply(filters, queryset).values_list("key", flat=True))


def database_identity(alias: str) -> str:
    """Return what the cache keys of `alias` are scoped by: the database it reads.

    Not the alias name: a write through one alias must invalidate the value every alias
    reading the same data has cached. A streaming replica (`READ_REPLICAS`) mirrors the
    primary, so it shares the primary's keys; other aliases are the same database when
    their NAME, HOST and PORT are (two aliases with different OPTIONS, say).
    """
    if alias in setting("READ_REPLICAS"):
        alias = PRIMARY
    database = connections[alias].settings_dict
    parts = (database.get("HOST") or "", str(database.get("PORT") or ""), database["NAME"] or "")
    return "/".join(quote(part, safe="") for part in parts)


def _cache_seconds() -> int:
    return setting("CONFIG_CACHE_SECONDS")


def _actor_id() -> Any:
    actor = current_audit_state().actor
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None
    return actor.pk


def _audited(entry: SystemConfig) -> dict[str, Any]:
    return {
        "value": entry.value,
        "description": entry.description,
        "version": entry.version,
        "updated_by_id": str(entry.updated_by_id) if entry.updated_by_id else None,
    }


def _created(entry: SystemConfig) -> dict[str, Any]:
    state = {"key": entry.key, **_audited(entry)}
    if "value" in entry.audit_redacted_fields():
        state["value"] = REDACTED
    return state


def _diff(
    before: Mapping[str, Any], after: Mapping[str, Any], entry: SystemConfig
) -> dict[str, Any]:
    secret = "value" in entry.audit_redacted_fields()
    changes: dict[str, Any] = {}
    for name, old in before.items():
        new = after[name]
        if old != new or (name == "value" and type(old) is not type(new)):
            if secret and name == "value":
                old, new = REDACTED, REDACTED
            changes[name] = {"old": old, "new": new}
    return changes
