"""Pages, signed keyset cursors and the keyset condition PostgreSQL answers from an index."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Q
from django.db.models.expressions import Expression, F, Value
from django.db.models.sql.compiler import SQLCompiler

from repositories.core.conf import setting
from repositories.core.errors import InvalidQueryError

T = TypeVar("T")

#: Cursors longer than this are refused before any decoding work.
MAX_CURSOR_LENGTH = 4096


def max_page_size() -> int:
    """Return REPOSITORIES["MAX_PAGE_SIZE"] (100 when unset): the largest page or limit."""
    return setting("MAX_PAGE_SIZE")


_CURSOR_VERSION = 1

#: What InvalidQueryError says (under "after") about a cursor that cannot be read.
_MALFORMED_CURSOR = "Malformed cursor."


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of an offset-paginated list; `pages` is at least 1."""

    items: list[T]
    total: int
    page: int
    page_size: int
    pages: int
    has_next: bool
    has_previous: bool

    @classmethod
    def build(cls, items: list[T], *, total: int, page: int, page_size: int) -> Page[T]:
        """Return a page, deriving `pages`, `has_next` and `has_previous`."""
        pages = max(1, math.ceil(total / page_size))
        return cls(
            items=items,
            total=total,
            page=page,
            page_size=page_size,
            pages=pages,
            has_next=page < pages,
            has_previous=page > 1,
        )


@dataclass(frozen=True, slots=True)
class CursorPage(Generic[T]):
    """One keyset page; pass `next_cursor` as `after=` to get the next one."""

    items: list[T]
    next_cursor: str | None
    has_next: bool


@dataclass(frozen=True, slots=True)
class SortKey:
    """A whitelisted sort column: the model field, its direction, and whether it is nullable."""

    field: models.Field[Any, Any]
    descending: bool

    @property
    def name(self) -> str:
        return str(self.field.attname)

    @property
    def nullable(self) -> bool:
        return bool(self.field.null)

    def order_expression(self) -> Any:
        """Return the ORDER BY term; NULLs sort last ascending and first descending.

        That is PostgreSQL's default (so no NULLS FIRST/LAST is spelled out), a plain b-tree
        index on the column serves it, and the keyset condition below treats NULL as larger
        than every value to match.
        """
        column = F(self.name)
        return column.desc() if self.descending else column.asc()


# --- cursor codec --------------------------------------------------------------------------


def _secret() -> bytes:
    configured = setting("CURSOR_SECRET") or settings.SECRET_KEY
    return hashlib.sha256(b"repositories.cursor:" + str(configured).encode()).digest()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).replace(b"=", b"").decode()  # "=" only pads the end


def _b64decode(text: str) -> bytes:
    """Return the bytes that `_b64encode` turned into `text`; ValueError for any other text.

    The decoder alone would skip characters outside the alphabet and accept surplus
    padding, so several texts would decode alike: only the one `_b64encode` gives passes.
    """
    raw = base64.urlsafe_b64decode(text + "==")  # never short of padding; the surplus is ignored
    if _b64encode(raw) != text:
        raise ValueError
    return raw


def query_fingerprint(*parts: Any) -> str:
    """Return a short stable digest of the query a cursor belongs to (filters + sort)."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return _b64encode(hashlib.sha256(canonical.encode()).digest()[:12])


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def encode_cursor(values: Sequence[Any], fingerprint: str) -> str:
    """Return an opaque cursor holding `values` (the last row's sort keys), signed with HMAC."""
    payload = json.dumps(
        {"v": _CURSOR_VERSION, "f": fingerprint, "k": [_encode_value(v) for v in values]},
        separators=(",", ":"),
    ).encode()
    signature = hmac.new(_secret(), payload, hashlib.sha256).digest()
    return f"{_b64encode(payload)}.{_b64encode(signature)}"


def _refused(message: str) -> InvalidQueryError:
    return InvalidQueryError({"after": [message]})


def decode_cursor(cursor: object, fingerprint: str, keys: Sequence[SortKey]) -> list[Any]:
    """Return the sort values inside `cursor`, converted to the keys' Python types.

    Raises InvalidQueryError when the cursor is not a string, is malformed, was tampered
    with, or belongs to a query with other filters or another order.
    """
    if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise _refused(_MALFORMED_CURSOR)
    # A cursor has one "." (base64url has none): a text with several is refused whether
    # it is split at the first or at the last (so rpartition is an equivalent mutant).
    body, dot, signature_text = cursor.partition(".")  # pragma: no mutate
    if not dot:
        raise _refused(_MALFORMED_CURSOR)
    try:
        payload = _b64decode(body)
        signature = _b64decode(signature_text)
    except (ValueError, binascii.Error):
        raise _refused(_MALFORMED_CURSOR) from None
    expected = hmac.new(_secret(), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise _refused("Invalid cursor signature (tampered or foreign).")
    try:
        data = json.loads(payload)
    except ValueError:
        raise _refused(_MALFORMED_CURSOR) from None
    if (
        not isinstance(data, dict)
        or data.get("v") != _CURSOR_VERSION
        or not isinstance(data.get("k"), list)
    ):
        raise _refused(_MALFORMED_CURSOR)
    if data.get("f") != fingerprint:
        raise _refused("This cursor belongs to a query with other filters or another order.")
    try:
        # zip(strict=True) is the check that the cursor holds one value per key.
        return [_decoded(key, raw) for key, raw in zip(keys, data["k"], strict=True)]
    except (DjangoValidationError, TypeError, ValueError, ArithmeticError):
        # ArithmeticError: decimal.InvalidOperation from a field's to_python.
        raise _refused(_MALFORMED_CURSOR) from None


def _decoded(key: SortKey, raw: Any) -> Any:
    if raw is not None:
        return key.field.to_python(raw)
    if not key.nullable:
        raise ValueError
    return None


# --- keyset condition ----------------------------------------------------------------------


class RowComparison(Expression):
    """``(a, b, c) > (%s, %s, %s)``: a row-value comparison with bound parameters.

    PostgreSQL answers it as an index range start (an Index Cond on a b-tree over the same
    columns in the same order), unlike the equivalent OR-expansion.
    """

    conditional = True
    output_field = BooleanField()
    _OPERATORS = frozenset({">", "<"})

    def __init__(self, columns: Sequence[Any], operator: str, values: Sequence[Any]) -> None:
        if operator not in self._OPERATORS or len(columns) != len(values) or not columns:
            raise ValueError("a row comparison needs matching columns, values and > or <")
        super().__init__()  # output_field is the class attribute
        self.columns = list(columns)
        self.operator = operator
        self.values = list(values)

    def get_source_expressions(self) -> list[Any]:
        return [*self.columns, *self.values]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        half = len(exprs) // 2
        self.columns = list(exprs[:half])
        self.values = list(exprs[half:])

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, tuple[Any, ...]]:
        left: list[str] = []
        right: list[str] = []
        params: list[Any] = []
        for column in self.columns:
            sql, column_params = compiler.compile(column)
            left.append(sql)
            params.extend(column_params)
        for value in self.values:
            sql, value_params = compiler.compile(value)
            right.append(sql)
            params.extend(value_params)
        return f"ROW({', '.join(left)}) {self.operator} ROW({', '.join(right)})", tuple(params)


def _after(key: SortKey, value: Any) -> Q:
    """Rows strictly after `value` on this key (NULL counts as the largest value)."""
    name = key.name
    if value is None:
        # Ascending, NULLs are last: nothing comes after NULL. Descending, NULLs are first:
        # every non-NULL value comes after it.
        return Q(**{f"{name}__isnull": False}) if key.descending else Q(pk__in=[])
    if key.descending:
        return Q(**{f"{name}__lt": value})
    after = Q(**{f"{name}__gt": value})
    if key.nullable:
        after |= Q(**{f"{name}__isnull": True})
    return after


def _equal(key: SortKey, value: Any) -> Q:
    if value is None:
        return Q(**{f"{key.name}__isnull": True})
    return Q(**{key.name: value})


def keyset_condition(keys: Sequence[SortKey], values: Sequence[Any]) -> Any:
    """Return the filter selecting rows after the row whose sort values are `values`.

    With one direction and no nullable column this is a row comparison
    ``(k1, ..., pk) > (v1, ..., vpk)``, answered from a b-tree index on those columns.
    Otherwise it is the OR-expansion ``k1 > v1 OR (k1 = v1 AND k2 > v2) OR ...`` plus the
    redundant leading bound ``k1 >= v1`` (``<=`` descending) so the index still bounds the
    scan.
    """
    pairs = list(zip(keys, values, strict=True))
    uniform = len({key.descending for key in keys}) == 1
    if uniform and not any(key.nullable for key in keys):
        operator = "<" if keys[0].descending else ">"
        return RowComparison(
            [F(key.name) for key, _ in pairs],
            operator,
            [Value(value, output_field=key.field) for key, value in pairs],
        )
    expanded = Q(pk__in=[])
    equal_so_far = Q()
    for key, value in pairs:
        expanded |= equal_so_far & _after(key, value)
        equal_so_far &= _equal(key, value)
    lead, lead_value = pairs[0]
    if lead_value is None:
        return expanded
    bound = Q(**{f"{lead.name}__{'lte' if lead.descending else 'gte'}": lead_value})
    # The bound only helps the index: the expansion already excludes NULLs where they sort
    # before the cursor, so adding them to the bound of a NOT NULL or descending column
    # (the `or` mutant) changes no result.
    if lead.nullable and not lead.descending:  # pragma: no mutate
        bound |= Q(**{f"{lead.name}__isnull": True})
    return bound & expanded
