"""The two statements of placing an order, written once from the models' metadata."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import Field

from domain.models import (
    AuditLog,
    InventoryMovement,
    Order,
    OrderItem,
    OrderStatusHistory,
    Product,
)
from repositories.user_model import ACTIVE_FIELD, DELETED_FIELD, user_field, user_pk

__all__ = [
    "ITEM_FIELDS",
    "ORDER_FIELDS",
    "PRODUCT_FIELDS",
    "PlacingStatements",
    "placing_statements",
]


def _column_list(alias: str, fields: Sequence[Field[Any, Any]]) -> str:
    return ", ".join(f'{alias}."{field.column}"' for field in fields)


# The rows place_order turns into model instances (repositories.core.loading). The
# products' generated search vector is left out (deferred): nothing here needs it.
PRODUCT_FIELDS = tuple(f for f in Product._meta.concrete_fields if not f.generated)
ORDER_FIELDS = tuple(Order._meta.concrete_fields)
ITEM_FIELDS = tuple(OrderItem._meta.concrete_fields)


@dataclass(frozen=True)
class PlacingStatements:
    """The two statements for the project's user model, and the user columns they read."""

    #: The user columns `lock_sql` returns first, in order.
    user_fields: tuple[Field[Any, Any], ...]
    lock_sql: str
    write_order_sql: str


@functools.cache
def placing_statements(using: str) -> PlacingStatements:
    """Return the statements of place_order on connection `using`, built on first use.

    Built lazily, not at import: the user table, its key type and which of `deleted_at`
    and `is_active` it has come from AUTH_USER_MODEL (any user model, see
    repositories.user_model).
    """
    connection = connections[using]
    qn = connection.ops.quote_name
    user_model = get_user_model()
    user_fields = tuple(user_model._meta.concrete_fields)
    user_key = f"%s::{Order._meta.get_field('user').db_type(connection)}"
    actor_key = f"%s::{AuditLog._meta.get_field('actor').db_type(connection)}"
    usable = [f"u.{qn(str(user_pk().column))} = {user_key}"]
    deleted, active = user_field(DELETED_FIELD), user_field(ACTIVE_FIELD)
    if deleted is not None:
        usable.append(f"u.{qn(str(deleted.column))} IS NULL")
    if active is not None:
        usable.append(f"u.{qn(str(active.column))}")
    return PlacingStatements(
        user_fields=user_fields,
        lock_sql=_lock_sql(qn(user_model._meta.db_table), user_fields, " AND ".join(usable)),
        write_order_sql=_write_order_sql(user_key, actor_key),
    )


def _lock_sql(user_table: str, user_fields: Sequence[Field[Any, Any]], usable_user: str) -> str:
    # Checks the user (key-share locked, so it cannot be hard-deleted before the order
    # commits) and locks the requested products in primary-key order, in one
    # statement: every writer takes the locks in the same order, so concurrent orders
    # over the same products queue instead of deadlocking (a single UPDATE ... FROM gives
    # no lock-order guarantee). No row: the user is unknown, deleted or inactive (and no
    # product was locked); one row with NULL product columns: no product was found.
    return f"""
SELECT {_column_list("u", user_fields)}, {_column_list("p", PRODUCT_FIELDS)}
FROM {user_table} AS u
LEFT JOIN LATERAL (
    SELECT {_column_list("x", PRODUCT_FIELDS)}
    FROM {Product._meta.db_table} AS x
    WHERE x.id = ANY(%s::uuid[]) ORDER BY x.id FOR UPDATE
) AS p ON true
WHERE {usable_user}
FOR KEY SHARE OF u
"""  # noqa: S608 - identifiers from the models, values bound


def _write_order_sql(user_key: str, actor_key: str) -> str:
    # Every write of an order in one statement, after the checks on the locked rows: the
    # order, stock decrement and its `sale` movements, items (snapshots), the first
    # status-history row and the audit rows either all happen or none (one statement, one
    # transaction). Data-modifying CTEs run exactly once and see the same snapshot; the
    # foreign keys between them are checked at the end of the statement.
    # - The idempotency key's unique index is the arbiter of ON CONFLICT DO NOTHING: when
    #   a racing request committed the key first, `new_order` is empty and, as every
    #   other write joins it, nothing is written (no savepoint needed to recover).
    # - `stock_quantity >= qty` is the last guard against overselling: a line the UPDATE
    #   skips comes back with NULL stock and the caller rolls the transaction back.
    # - The audit row of the order has a NULL entity id in the arrays: the order's id.
    # Rows: one per item (ordered like the items prefetch), the order's columns first.
    return f"""
WITH lines AS (
    SELECT * FROM unnest(
        %s::uuid[], %s::int[], %s::varchar[], %s::varchar[], %s::numeric[], %s::numeric[]
    ) AS l(product_id, qty, sku, name, price, line_total)
), new_order AS (
    INSERT INTO {Order._meta.db_table} (
        number, user_id, status, currency, subtotal, total, placed_at, idempotency_key,
        created_at, updated_at
    )
    VALUES (
        %s::varchar, {user_key}, %s::varchar, %s::varchar, %s::numeric, %s::numeric,
        %s::timestamptz, %s::varchar, %s::timestamptz, %s::timestamptz
    )
    ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING {", ".join(f'"{f.column}"' for f in ORDER_FIELDS)}
), sold AS (
    UPDATE {Product._meta.db_table} AS p
    SET stock_quantity = p.stock_quantity - l.qty, updated_at = now()
    FROM lines AS l
    WHERE p.id = l.product_id AND p.stock_quantity >= l.qty AND EXISTS (SELECT FROM new_order)
    RETURNING p.id, l.qty, p.stock_quantity, p.updated_at
), ledger AS (
    INSERT INTO {InventoryMovement._meta.db_table}
        (product_id, delta, reason, order_id, created_at)
    SELECT s.id, -s.qty, 'sale', o.id, now() FROM sold AS s CROSS JOIN new_order AS o
), items AS (
    INSERT INTO {OrderItem._meta.db_table}
        (order_id, product_id, sku, product_name, unit_price, quantity, line_total, created_at)
    SELECT o.id, l.product_id, l.sku, l.name, l.price, l.qty, l.line_total, now()
    FROM new_order AS o CROSS JOIN lines AS l
    RETURNING {", ".join(f'"{f.column}"' for f in ITEM_FIELDS)}
), history AS (
    INSERT INTO {OrderStatusHistory._meta.db_table}
        (order_id, from_status, to_status, actor_id, note, created_at)
    SELECT o.id, NULL, o.status, o.user_id, '', now() FROM new_order AS o
), audit AS (
    INSERT INTO {AuditLog._meta.db_table} (
        occurred_at, actor_id, actor_repr, action, entity_type, entity_id, changes,
        request_id, ip_address
    )
    SELECT %s::timestamptz, {actor_key}, %s::varchar, a.action, a.entity_type,
        coalesce(a.entity_id, o.id::text), a.changes, %s::varchar, %s::inet
    FROM new_order AS o CROSS JOIN unnest(
        %s::varchar[], %s::varchar[], %s::varchar[], %s::jsonb[]
    ) AS a(action, entity_type, entity_id, changes)
)
SELECT {_column_list("o", ORDER_FIELDS)}, {_column_list("i", ITEM_FIELDS)},
    s.stock_quantity, s.updated_at
FROM new_order AS o
CROSS JOIN items AS i
LEFT JOIN sold AS s ON s.id = i.product_id
ORDER BY i.product_name, i.id
"""  # noqa: S608 - identifiers from the models, values bound
