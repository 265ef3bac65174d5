"""Translate database errors into typed repository errors by their PostgreSQL SQLSTATE."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ContextDecorator
from types import TracebackType
from typing import Any

import psycopg
from django.apps import apps
from django.core.exceptions import ObjectDoesNotExist
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db import DataError as DjangoDataError
from django.db import Error as DjangoDatabaseError
from django.db import IntegrityError as DjangoIntegrityError
from django.db import InterfaceError as DjangoInterfaceError
from django.db import OperationalError as DjangoOperationalError
from django.db.models.constants import LOOKUP_SEP
from django.db.models.expressions import F
from django.utils.connection import ConnectionDoesNotExist

from repositories.core.errors import (
    ConflictError,
    DatabaseUnavailableError,
    InvalidQueryError,
    NotFoundError,
    QueryTimeoutError,
    ReadOnlyDatabaseError,
    RepositoryError,
    TransactionConflictError,
    ValidationError,
)

#: SQLSTATEs that a retrying transaction wrapper (`transactional`) retries.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})

#: SQLSTATEs (or classes, as two-character prefixes) meaning the connection is gone.
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "25P03"})
_UNAVAILABLE_CLASSES = frozenset({"08"})
#: Without a SQLSTATE, these mean a closed connection, a failed connect or an exhausted pool.
_UNAVAILABLE_ERRORS = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    DjangoOperationalError,
    DjangoInterfaceError,
)
#: Without a SQLSTATE, these mean a value the database refused.
_INVALID_DATA_ERRORS = (
    psycopg.IntegrityError,
    psycopg.DataError,
    DjangoIntegrityError,
    DjangoDataError,
)

#: The exception types `translate_errors` converts.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (DjangoDatabaseError, psycopg.Error)

_KEY_DETAIL = re.compile(r"Key \((?P<columns>.+?)\)=")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SQL_WORDS = frozenset({"lower", "upper", "text", "varchar", "coalesce", "trim", "citext"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """Yield `exc` and every exception it was raised from or during, once each."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _psycopg_error(exc: BaseException) -> psycopg.Error | None:
    for item in _chain(exc):
        if isinstance(item, psycopg.Error):
            return item
    return None


def sqlstate_of(exc: BaseException) -> str | None:
    """Return the SQLSTATE of the psycopg error behind `exc` (Django wraps it), if any."""
    for item in _chain(exc):
        if isinstance(item, psycopg.Error) and item.sqlstate:
            return item.sqlstate
    return None


def is_retryable(exc: BaseException) -> bool:
    """Return True for serialization failures and deadlocks (SQLSTATE 40001, 40P01)."""
    return sqlstate_of(exc) in RETRYABLE_SQLSTATES


def _diag(exc: BaseException, attribute: str) -> str | None:
    """Return a field of the server's report (psycopg's `diag`; None where it has none)."""
    error = _psycopg_error(exc)
    return None if error is None else getattr(error.diag, attribute)


def constraint_name_of(exc: BaseException) -> str | None:
    """Return the constraint a database error names (psycopg diag), walking the cause chain."""
    return _diag(exc, "constraint_name")


def _model_for_table(table: str | None, fallback: type[models.Model] | None) -> Any:
    if table:
        for candidate in apps.get_models():
            if candidate._meta.db_table == table:
                return candidate
    return fallback


def _field_for_column(model: Any, column: str) -> str:
    if model is not None:
        for field in model._meta.concrete_fields:
            if field.column == column:
                return str(field.name)
    return column


def _field_name(path: str) -> str:
    """Return the field a lookup path such as "price__gte" or "value__on_call" starts from."""
    return path.partition(LOOKUP_SEP)[0]


def _expression_fields(expression: Any) -> list[str]:
    """Return the field names a constraint expression reads: Lower("email"), F("sku"),
    "sku", or an ExclusionConstraint's (expression, operator) pair."""
    if isinstance(expression, tuple | list):
        expression = expression[0]
    if isinstance(expression, str):
        expression = F(expression)
    nodes = expression.flatten() if hasattr(expression, "flatten") else [expression]
    return [_field_name(node.name) for node in nodes if isinstance(node, F)]  # type: ignore[attr-defined]


def _constraint_fields(model: Any, name: str | None) -> list[str] | None:
    """Return the field names of the unique/check/exclusion constraint `name` on `model`."""
    if model is None or not name:
        return None
    for constraint in model._meta.constraints:
        if constraint.name != name:
            continue
        if isinstance(constraint, models.CheckConstraint):
            return _q_fields(constraint.condition)
        fields = list(getattr(constraint, "fields", ()))  # an exclusion has none
        for expression in getattr(constraint, "expressions", ()):
            fields.extend(f for f in _expression_fields(expression) if f not in fields)
        return fields
    for field in model._meta.concrete_fields:
        # PostgreSQL names the constraint behind `unique=True` "<table>_<column>_key" (or a
        # Django-generated "<table>_<column>_<hash>_uniq").
        if field.unique and not field.primary_key and field.column in name:
            return [str(field.name)]
    return None


def _q_fields(condition: Any) -> list[str]:
    """Return the fields a check's condition compares, in order: Q(a__gt=F("b")) → [a, b]."""
    names: list[str] = []
    stack: list[Any] = [condition]
    while stack:
        node = stack.pop()
        if isinstance(node, models.Q):
            stack.extend(reversed(node.children))
        elif isinstance(node, tuple):  # (lookup, value); other children are expressions
            lookup, value = node
            paths = [lookup, value.name] if isinstance(value, F) else [lookup]  # type: ignore[attr-defined]
            for path in paths:
                name = _field_name(path)
                if name not in names:
                    names.append(name)
    return names


def _detail_fields(model: Any, detail: str | None) -> list[str]:
    """Return the fields named in a detail like 'Key (lower(email::text))=(a@b.c) ...'."""
    match = _KEY_DETAIL.search(detail) if detail else None
    if match is None:
        return []
    fields: list[str] = []
    for token in _IDENTIFIER.findall(match.group("columns")):
        if token.lower() in _SQL_WORDS:
            continue
        name = _field_for_column(model, token)
        if name not in fields:
            fields.append(name)
    return fields


def _check_message(model: Any, constraint: str | None, primary: str | None) -> str:
    if model is not None and constraint:
        for candidate in model._meta.constraints:
            if candidate.name == constraint and isinstance(candidate, models.CheckConstraint):
                message = str(candidate.violation_error_message)  # Django's default if unset
                if message and "%(name)s" not in message:
                    return message
                return f"breaks the rule {constraint}"
    if primary and "violates check constraint" not in primary:
        return primary
    return f"breaks the rule {constraint}" if constraint else (primary or "invalid value")


def _conflict(exc: BaseException, model: Any, state: str) -> ConflictError:
    constraint = _diag(exc, "constraint_name")
    target = _model_for_table(_diag(exc, "table_name"), model)
    fields = _constraint_fields(target, constraint) or _detail_fields(
        target, _diag(exc, "message_detail")
    )
    entity = target._meta.model_name if target is not None else "row"
    named = f" ({constraint})" if constraint else ""
    if state == "23P01":
        message = f"{entity} overlaps an existing row{named}"
    elif fields:
        message = f"a {entity} with this {', '.join(fields)} already exists"
    else:
        message = f"a {entity} with these values already exists{named}"
    return ConflictError(message, fields=fields, constraint=constraint)


def _integrity(exc: BaseException, model: Any, state: str) -> ValidationError:
    constraint = _diag(exc, "constraint_name")
    target = _model_for_table(_diag(exc, "table_name"), model)
    column = _diag(exc, "column_name")
    primary = _diag(exc, "message_primary")
    if state == "23502":
        field = _field_for_column(target, column) if column else "__all__"
        return ValidationError({field: ["This field cannot be null."]})
    if state == "23503":
        # "" stands for no detail; any text without the phrases below reads the same.
        detail = _diag(exc, "message_detail") or ""  # pragma: no mutate
        fields = _detail_fields(target, detail) or ["__all__"]
        if "still referenced" in detail:
            referrer = re.search(r'from table "(?P<table>[^"]+)"', detail)
            where = referrer.group("table") if referrer else "another table"
            return ValidationError({"__all__": [f"the row is still referenced from {where}"]})
        referenced = re.search(r'in table "(?P<table>[^"]+)"', detail)
        where = referenced.group("table") if referenced else "the referenced table"
        return ValidationError({f: [f"refers to a row missing from {where}"] for f in fields})
    if state == "23514":
        fields = _constraint_fields(target, constraint) or ["__all__"]
        message = _check_message(target, constraint, primary)
        return ValidationError({f: [message] for f in fields})
    fields = [_field_for_column(target, column)] if column else ["__all__"]
    return ValidationError({f: [primary or str(exc)] for f in fields})


def _is_unavailable(exc: BaseException, state: str | None) -> bool:
    if state is not None:
        return state in _UNAVAILABLE_SQLSTATES or state[:2] in _UNAVAILABLE_CLASSES
    return any(isinstance(item, _UNAVAILABLE_ERRORS) for item in _chain(exc))


def translate(exc: BaseException, *, model: Any = None, reading: bool = False) -> RepositoryError:
    """Return the repository error for a database error (to raise `from` it).

    The mapping follows the SQLSTATE of the psycopg error behind Django's wrapper:
    23505/23P01 → ConflictError; 23502/23503/23514/22xxx and other integrity errors →
    ValidationError; 57014/55P03 → QueryTimeoutError; 57P0x/08xxx/25P03, closed connections
    and pool timeouts → DatabaseUnavailableError; 40001/40P01 → TransactionConflictError.
    With `reading=True` (the error came from a read built from caller input) invalid values
    become InvalidQueryError instead of ValidationError.
    """
    error = _translate(exc, model)
    if reading and isinstance(error, ValidationError):
        return InvalidQueryError(error.errors)
    return error


def _translate(exc: BaseException, model: Any) -> RepositoryError:
    if isinstance(exc, RepositoryError):
        return exc
    if isinstance(exc, ObjectDoesNotExist):
        entity = model.__name__ if model is not None else "object"
        return NotFoundError(entity, None)
    state = sqlstate_of(exc)
    primary = _diag(exc, "message_primary") or str(exc).strip() or type(exc).__name__
    if state in {"23505", "23P01"}:
        return _conflict(exc, model, state)
    if state is not None and state.startswith(("23", "22")):
        return _integrity(exc, model, state)
    if state == "57014":
        return QueryTimeoutError("statement", f"statement timeout: {primary}")
    if state == "55P03":
        return QueryTimeoutError("lock", f"lock timeout: {primary}")
    if state in RETRYABLE_SQLSTATES:
        return TransactionConflictError(1)
    if state == "25006":
        return ReadOnlyDatabaseError(f"read-only database: {primary}")
    if _is_unavailable(exc, state):
        return DatabaseUnavailableError(f"database unavailable: {primary}")
    if state is None and isinstance(exc, models.ProtectedError | models.RestrictedError):
        return ValidationError({"__all__": [str(exc.args[0])]})  # (message, objects)
    if state is None and _is_integrity_or_data(exc):
        return ValidationError({"__all__": [primary]})
    suffix = f" (SQLSTATE {state})" if state else ""
    return RepositoryError(f"database error{suffix}: {primary}")


def _is_integrity_or_data(exc: BaseException) -> bool:
    return any(isinstance(item, _INVALID_DATA_ERRORS) for item in _chain(exc))


def discard_broken_connection(using: str = DEFAULT_DB_ALIAS) -> None:
    """Close the connection `using` so that the next query opens (or checks out) a fresh one.

    Inside an atomic block Django marks the block for rollback and drops the connection when
    the outermost block exits.
    """
    connections[using].close()


class translate_errors(ContextDecorator):  # lower case: used like a function
    """Re-raise database errors inside the block as `RepositoryError` subclasses.

    Use as ``with translate_errors(model=Product):`` or ``@translate_errors()``. The original
    error is chained as ``__cause__``. Serialization failures and deadlocks (40001, 40P01)
    become TransactionConflictError(1), which an enclosing ``transactional`` recognises
    by the SQLSTATE of its cause and retries. After a lost connection, the broken
    connection is closed so the next call works.
    """

    def __init__(
        self, model: Any = None, *, using: str = DEFAULT_DB_ALIAS, reading: bool = False
    ) -> None:
        self.model = model
        self.using = using
        self.reading = reading
        self._entered_with: Any = None

    def _recreate_cm(self) -> translate_errors:
        # A fresh instance for each decorated call: `_entered_with` is per block.
        return translate_errors(self.model, using=self.using, reading=self.reading)

    def __enter__(self) -> translate_errors:
        # The connection the block starts with: Django may close it (a failed COMMIT's
        # rollback) before the error gets here.
        self._entered_with = _driver_connection(self.using)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, DATABASE_ERRORS):
            return
        raise_typed(
            exc,
            model=self.model,
            using=self.using,
            reading=self.reading,
            connection_used=self._entered_with,
        )


def raise_typed(
    exc: BaseException,
    *,
    model: Any = None,
    using: str = DEFAULT_DB_ALIAS,
    reading: bool = False,
    connection_used: Any = None,
) -> None:
    """Raise the RepositoryError for database error `exc` (chained), discarding the
    connection `using` when it broke. `connection_used`: the driver connection the failed
    work ran on, when Django may have closed it since.

    Serialization failures and deadlocks become TransactionConflictError(1); an enclosing
    `transactional` still retries them, as the SQLSTATE travels in `__cause__`.
    """
    error = translate(exc, model=model, reading=reading)
    if type(error) is RepositoryError and _connection_broken(using, connection_used):
        # No SQLSTATE to go by, but the connection is gone: e.g. psycopg's "received 2
        # results from command 'COMMIT'" when PgBouncer reports the server session lost.
        error = DatabaseUnavailableError(f"database unavailable: {str(exc).strip()}")
    if isinstance(error, DatabaseUnavailableError):
        discard_broken_connection(using)
    raise error from exc


def _driver_connection(using: str) -> Any:
    """The psycopg connection `using` holds now (None: none open, or no such alias)."""
    try:
        return connections[using].connection
    except ConnectionDoesNotExist:
        return None


def _connection_broken(using: str, connection_used: Any) -> bool:
    current = _driver_connection(using)
    return any(raw is not None and raw.broken for raw in (connection_used, current))
