"""The audit trail: who is acting (a context), what changed (snapshots, diffs), one INSERT."""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import hashlib
import ipaddress
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import connections, models
from django.utils import timezone
from psycopg.types.json import Jsonb

from repositories.core.bulk import copy_rows
from repositories.core.conf import setting

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(r"secret|token|password", re.IGNORECASE)

#: The fields an audit model must have (SPEC §7; domain.AuditLog is the default model).
AUDIT_FIELDS = (
    "occurred_at",
    "actor",
    "actor_repr",
    "action",
    "entity_type",
    "entity_id",
    "changes",
    "request_id",
    "ip_address",
)
#: From this many entries on, `record()` sends them by COPY: the array parameters of
#: the INSERT are quoted in Python, COPY rows are formatted in C (docs/performance.md).
#: For fewer entries the two cost the same and the single INSERT keeps one round trip.
COPY_THRESHOLD = 8


@dataclass(frozen=True)
class _AuditTable:
    """The audit model's table, its columns in AUDIT_FIELDS order and the INSERT."""

    table: str
    columns: tuple[str, ...]
    insert_sql: str


@functools.cache
def _audit_table(label: str, vendor_alias: str) -> _AuditTable:
    model = apps.get_model(label)
    connection = connections[vendor_alias]
    fields = [model._meta.get_field(name) for name in AUDIT_FIELDS]
    columns = tuple(str(field.column) for field in fields)
    casts = {
        name: str(field.db_type(connection))
        for name, field in zip(AUDIT_FIELDS, fields, strict=True)
    }
    # One statement whatever the row count: the per-row values travel as one array
    # parameter each, so the statement has nine parameters for 1 or 100 000 rows.
    insert_sql = (
        f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} "  # noqa: S608
        f"({', '.join(connection.ops.quote_name(c) for c in columns)}) "
        f"SELECT %s::{casts['occurred_at']}, %s::{casts['actor']}, %s::{casts['actor_repr']}, "
        "a.action, a.entity_type, a.entity_id, a.changes, "
        f"%s::{casts['request_id']}, %s::{casts['ip_address']} "
        f"FROM unnest(%s::{casts['action']}[], %s::{casts['entity_type']}[], "
        f"%s::{casts['entity_id']}[], %s::jsonb[]) "
        "AS a(action, entity_type, entity_id, changes)"
    )
    return _AuditTable(str(model._meta.db_table), columns, insert_sql)


def audit_model() -> type[models.Model]:
    """Return the model audited repositories write to: REPOSITORIES["AUDIT_MODEL"]."""
    return apps.get_model(setting("AUDIT_MODEL"))


@dataclass(frozen=True)
class AuditState:
    """Who is acting right now: the values `record()` stamps on every row."""

    actor: Any = None
    request_id: str = ""
    ip_address: str | None = None


_EMPTY_STATE = AuditState()
_state: ContextVar[AuditState] = ContextVar("repositories_audit_state", default=_EMPTY_STATE)


@dataclass(frozen=True)
class AuditEntry:
    """One row of the trail: an action on one entity and the fields it changed."""

    action: str
    entity_type: str
    entity_id: str
    changes: dict[str, Any]


@contextmanager
def audit_context(
    actor: Any = None, request_id: str | None = None, ip_address: str | None = None
) -> Iterator[AuditState]:
    """Set who is acting for every `record()` inside the block; yield the active state.

    Blocks nest: an argument left as None keeps the enclosing block's value, so a task
    can add its own request id under a request's actor. `actor` is a user (a lazy
    `request.user` is fine: it is resolved only when a row is written, and an anonymous
    user counts as no actor). The state lives in a context variable, so threads and
    asyncio tasks each see their own.
    """
    outer = _state.get()
    state = AuditState(
        actor=outer.actor if actor is None else actor,
        request_id=outer.request_id if request_id is None else str(request_id)[:64],
        ip_address=outer.ip_address if ip_address is None else _valid_ip(ip_address),
    )
    token = _state.set(state)
    try:
        yield state
    finally:
        _state.reset(token)


def current_audit_state() -> AuditState:
    """Return the state set by the innermost active `audit_context` (empty outside any)."""
    return _state.get()


def record(entries: Sequence[AuditEntry], *, using: str = "default") -> None:
    """Insert one audit row per entry in a single statement, stamped with the context.

    Runs on the caller's connection and therefore in the caller's transaction: a write
    that rolls back takes its audit rows with it. Nothing is sent for an empty list.
    The statement is an INSERT, or a COPY from COPY_THRESHOLD entries on.
    """
    if not entries:
        return
    state = _state.get()
    actor_id, actor_repr = actor_columns(state.actor)
    now = timezone.now()
    target = _audit_table(setting("AUDIT_MODEL"), using)
    if len(entries) >= COPY_THRESHOLD:
        copy_rows(
            using,
            target.table,
            target.columns,
            (
                (
                    now,
                    actor_id,
                    actor_repr,
                    e.action,
                    e.entity_type,
                    str(e.entity_id),
                    Jsonb(_json_safe(e.changes)),
                    state.request_id,
                    state.ip_address,
                )
                for e in entries
            ),
        )
        return
    params = (
        now,
        actor_id,
        actor_repr,
        state.request_id,
        state.ip_address,
        [e.action for e in entries],
        [e.entity_type for e in entries],
        [str(e.entity_id) for e in entries],
        [Jsonb(_json_safe(e.changes)) for e in entries],
    )
    with connections[using].cursor() as cursor:
        cursor.execute(target.insert_sql, params)


def snapshot(instance: models.Model, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """Return the instance's loaded concrete field values as JSON-safe data, secrets redacted.

    Keys are attribute names (`category_id` for a foreign key). Deferred and generated
    fields are skipped, so taking a snapshot never queries.
    `fields` limits the result (names or attribute names).
    """
    wanted = set(fields) if fields is not None else None
    loaded = instance.__dict__
    secret = redacted_fields(instance)
    result: dict[str, Any] = _JsonSafeDict()
    for field in instance._meta.concrete_fields:
        name = field.attname
        if field.generated or name not in loaded:
            continue
        if wanted is not None and name not in wanted and field.name not in wanted:
            continue
        value = loaded[name]
        if name in secret or field.name in secret:
            result[name] = None if value is None else Redacted(value)
        else:
            result[name] = _redact(name, value)
    return result


def redacted_fields(instance: models.Model) -> frozenset[str]:
    """Return the fields of `instance` its audit rows store redacted, by its data.

    Besides fields whose *name* looks secret (`password`, `api_token`), a model may
    declare `audit_redacted_fields(self) -> Iterable[str]` naming fields that are secret
    for this row (a configuration value stored under `smtp.password`). Every audit
    snapshot and diff of the row goes through it, whatever wrote the row.
    """
    declared = getattr(instance, "audit_redacted_fields", None)
    return frozenset(declared()) if callable(declared) else frozenset()


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Return {"field": {"old": ..., "new": ...}} for the fields whose value changed.

    A field present on one side only counts as changed (the other side is None).
    Secret fields compare by value but appear as "[redacted]".
    """
    changes: dict[str, dict[str, Any]] = {}
    for name in (*before, *(k for k in after if k not in before)):
        old, new = before.get(name), after.get(name)
        if _fingerprint(old) == _fingerprint(new):
            continue
        changes[name] = {"old": _redact(name, old), "new": _redact(name, new)}
    return changes


def entity_type_of(model_or_instance: type[models.Model] | models.Model) -> str:
    """Return the audit entity type of a model or instance: its model name ("product")."""
    return str(model_or_instance._meta.model_name)


class Redacted(str):
    """The text "[redacted]" that remembers a digest of the secret, so diffs see changes."""

    digest: bytes

    def __new__(cls, value: Any) -> Redacted:
        text = super().__new__(cls, REDACTED)
        text.digest = (
            value.digest
            if isinstance(value, Redacted)
            else hashlib.blake2b(repr(value).encode(), digest_size=16).digest()
        )
        return text


def _fingerprint(value: Any) -> Any:
    if isinstance(value, Redacted):
        return ("redacted", value.digest)
    return ("value", _json_safe(value))


@functools.lru_cache(maxsize=4096)
def _is_secret(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def _redact(name: str, value: Any) -> Any:
    if _is_secret(name):
        return None if value is None else Redacted(value)
    return _json_safe(value)


class _JsonSafeDict(dict[str, Any]):
    """A dict `snapshot` built from converted, redacted values: `record` stores it without
    walking it again (most of the audit cost of a `create_many` batch). Never add
    unconverted values to one."""


def _json_safe(value: Any) -> Any:
    """Convert to types JSON stores as is; redact secret-looking keys in nested dicts."""
    if value is None or isinstance(value, bool | int | float | str | _JsonSafeDict):
        return value
    if isinstance(value, Mapping):
        return {str(k): _redact(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return str(value)


def actor_columns(actor: Any) -> tuple[Any, str]:
    """Return the (actor_id, actor_repr) an audit row stores for `actor` (anonymous: None, "")."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None, ""
    email = getattr(actor, "email", "") or str(actor)
    return actor.pk, email[:254]


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return None
