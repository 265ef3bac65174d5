"""The order repository: placing orders against stock, status changes, history, analytics."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import django_filters as filters
import psycopg
from django.db import connections
from django.db.backends.utils import CursorWrapper
from django.db.models import Avg, Count, Field, Prefetch, QuerySet, Sum
from django.db.models.functions import Trunc
from django.utils import timezone
from psycopg.types.json import Jsonb

from domain.models import (
    ALLOWED_TRANSITIONS,
    REVENUE_STATUSES,
    AuditLog,
    InventoryMovement,
    Order,
    OrderItem,
    OrderStatus,
    OrderStatusHistory,
    Product,
    User,
)
from repositories.audit import AuditEntry, actor_columns, current_audit_state, record
from repositories.base import BaseRepository
from repositories.error_mapping import translate_errors
from repositories.errors import (
    InsufficientStockError,
    InvalidQueryError,
    InvalidTransitionError,
    NotFoundError,
    StaleObjectError,
    ValidationError,
)
from repositories.filters import StrictFilterSet
from repositories.keys import parse_uuid
from repositories.loading import attach_prefetched, row_loader
from repositories.pagination import CursorPage
from repositories.transactions import atomic, check_deferred_constraints, transactional

__all__ = [
    "MAX_LINE_QUANTITY",
    "MAX_ORDER_LINES",
    "OrderFilterSet",
    "OrderRepository",
    "RevenueRow",
    "TopProductRow",
    "new_order_number",
]

MAX_ORDER_LINES = 100
MAX_LINE_QUANTITY = 10_000
MAX_IDEMPOTENCY_KEY_LENGTH = 128
PERIODS = ("day", "week", "month")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class RevenueRow:
    """Revenue of one period: its start (UTC), the number of orders and their total."""

    period: datetime
    orders: int
    revenue: Decimal


@dataclass(frozen=True)
class TopProductRow:
    """A product's sales in a time range: units sold and the revenue they brought."""

    product_id: uuid.UUID
    name: str
    quantity: int
    revenue: Decimal


class OrderFilterSet(StrictFilterSet):
    """Criteria for orders: user, status, placement time range, total range."""

    user = filters.UUIDFilter(field_name="user_id")
    status = filters.ChoiceFilter(choices=OrderStatus.choices)
    number = filters.CharFilter()
    placed_after = filters.IsoDateTimeFilter(field_name="placed_at", lookup_expr="gte")
    placed_before = filters.IsoDateTimeFilter(field_name="placed_at", lookup_expr="lt")
    total_min = filters.NumberFilter(field_name="total", lookup_expr="gte")
    total_max = filters.NumberFilter(field_name="total", lookup_expr="lte")

    class Meta:
        model = Order
        fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Line:
    product_id: uuid.UUID
    quantity: int


def _column_list(alias: str, fields: Sequence[Field[Any, Any]]) -> str:
    return ", ".join(f'{alias}."{field.column}"' for field in fields)


# The rows place_order turns into model instances (repositories.loading). The
# products' generated search vector is left out (deferred): nothing here needs it.
_USER_FIELDS = tuple(User._meta.concrete_fields)
_PRODUCT_FIELDS = tuple(f for f in Product._meta.concrete_fields if not f.generated)
_ORDER_FIELDS = tuple(Order._meta.concrete_fields)
_ITEM_FIELDS = tuple(OrderItem._meta.concrete_fields)

# Checks the user (key-share locked, so it cannot be hard-deleted before the order
# commits) and locks the requested products in primary-key order, in one
# statement: every writer takes the locks in the same order, so concurrent orders over
# the same products queue instead of deadlocking (a single UPDATE ... FROM gives no
# lock-order guarantee). No row: the user is unknown, deleted or inactive (and no
# product was locked); one row with NULL product columns: no product was found.
_LOCK_SQL = f"""
SELECT {_column_list("u", _USER_FIELDS)}, {_column_list("p", _PRODUCT_FIELDS)}
FROM {User._meta.db_table} AS u
LEFT JOIN LATERAL (
    SELECT {_column_list("x", _PRODUCT_FIELDS)}
    FROM {Product._meta.db_table} AS x
    WHERE x.id = ANY(%s::uuid[]) ORDER BY x.id FOR UPDATE
) AS p ON true
WHERE u.id = %s::uuid AND u.deleted_at IS NULL AND u.is_active
FOR KEY SHARE OF u
"""  # noqa: S608 - identifiers from the models, values bound

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
_WRITE_ORDER_SQL = f"""
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
        %s::varchar, %s::uuid, %s::varchar, %s::varchar, %s::numeric, %s::numeric,
        %s::timestamptz, %s::varchar, %s::timestamptz, %s::timestamptz
    )
    ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING {", ".join(f'"{f.column}"' for f in _ORDER_FIELDS)}
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
    RETURNING {", ".join(f'"{f.column}"' for f in _ITEM_FIELDS)}
), history AS (
    INSERT INTO {OrderStatusHistory._meta.db_table}
        (order_id, from_status, to_status, actor_id, note, created_at)
    SELECT o.id, NULL, o.status, o.user_id, '', now() FROM new_order AS o
), audit AS (
    INSERT INTO {AuditLog._meta.db_table} (
        occurred_at, actor_id, actor_repr, action, entity_type, entity_id, changes,
        request_id, ip_address
    )
    SELECT %s::timestamptz, %s::uuid, %s::varchar, a.action, a.entity_type,
        coalesce(a.entity_id, o.id::text), a.changes, %s::varchar, %s::inet
    FROM new_order AS o CROSS JOIN unnest(
        %s::varchar[], %s::varchar[], %s::varchar[], %s::jsonb[]
    ) AS a(action, entity_type, entity_id, changes)
)
SELECT {_column_list("o", _ORDER_FIELDS)}, {_column_list("i", _ITEM_FIELDS)},
    s.stock_quantity, s.updated_at
FROM new_order AS o
CROSS JOIN items AS i
LEFT JOIN sold AS s ON s.id = i.product_id
ORDER BY i.product_name, i.id
"""  # noqa: S608 - identifiers from the models, values bound

_RETURN_STOCK_SQL = """
WITH returned AS (
    UPDATE products AS p
    SET stock_quantity = p.stock_quantity + v.qty, updated_at = now()
    FROM unnest(%s::uuid[], %s::int[]) AS v(id, qty)
    WHERE p.id = v.id
    RETURNING p.id, v.qty, p.stock_quantity
), ledger AS (
    INSERT INTO inventory_movements (product_id, delta, reason, order_id, created_at)
    SELECT id, qty, 'cancellation', %s, now() FROM returned
)
SELECT id, qty, stock_quantity FROM returned ORDER BY id
"""

_ORDER_USER = Order._meta.get_field("user")
_ITEM_PRODUCT = OrderItem._meta.get_field("product")


@contextmanager
def _server_bound_cursor(using: str) -> Iterator[CursorWrapper]:
    """Yield a cursor on Django's connection `using` that binds parameters server-side.

    Same connection, transaction, error wrapping and execute wrappers (query labels,
    counting, Django's query log) as `connection.cursor()`, but a `psycopg.Cursor`
    instead of Django's default client-side binding cursor: the statement text stays
    the same from call to call, so psycopg can prepare it (after the connection's
    `prepare_threshold` executions; Django leaves that off unless OPTIONS set it) and
    PostgreSQL skips parsing and planning; arrays travel in binary.
    """
    connection = connections[using]
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = psycopg.Cursor(connection.connection)
    # django-stubs type these as taking a CursorWrapper; Django passes the DB-API cursor.
    cursor = (
        connection.make_debug_cursor(cast(Any, raw))
        if connection.queries_logged
        else connection.make_cursor(cast(Any, raw))
    )
    try:
        yield cursor
    finally:
        raw.close()


_ORDER_ITEMS_LOCK_SQL = """
SELECT p.id, i.quantity
FROM order_items i JOIN products p ON p.id = i.product_id
WHERE i.order_id = %s ORDER BY p.id FOR UPDATE OF p
"""


def new_order_number(placed_at: datetime) -> str:
    """Return a human-readable order number: ORD-YYYYMMDD-<8 base32 chars, 40 random bits>."""
    suffix = base64.b32encode(secrets.token_bytes(5)).decode("ascii")
    return f"ORD-{placed_at.astimezone(UTC):%Y%m%d}-{suffix}"


def _items_prefetch() -> Prefetch:
    return Prefetch(
        "items",
        queryset=OrderItem.objects.select_related("product")
        .defer("product__search_vector")
        .order_by("product_name", "id"),
    )


#: The queryset of `_items_prefetch`, the base of every order's prefetched items.
_ITEMS_QUERYSET = cast(QuerySet[OrderItem], _items_prefetch().queryset)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class OrderRepository(BaseRepository[Order]):
    """Place, read, move through statuses and analyse orders. Orders are never deleted."""

    model = Order
    filterset_class = OrderFilterSet
    sortable_fields = ("placed_at", "total", "status", "created_at", "number")
    default_order = ("-placed_at",)
    select_related = ("user",)
    prefetch_related = (_items_prefetch(),)
    # Orders change only through their verbs (place_order, transition, cancel), so the
    # generic writes cannot bypass stock, ledger, history or the status graph.
    readonly_fields = (
        "number",
        "user",
        "status",
        "currency",
        "subtotal",
        "total",
        "placed_at",
        "idempotency_key",
    )

    def create(self, data: Mapping[str, Any]) -> Order:
        """Refuse: orders are created by `place_order` (stock, ledger, history, audit)."""
        raise ValidationError({"__all__": ["Orders are created with place_order()."]})

    def create_many(
        self, rows: Iterable[Mapping[str, Any]], *, batch_size: int = 1000
    ) -> list[Order]:
        """Refuse: orders are created one by one by `place_order`."""
        raise ValidationError({"__all__": ["Orders are created with place_order()."]})

    def delete(self, id: object) -> None:
        """Refuse: orders are never deleted; cancel them instead."""
        raise ValidationError({"__all__": ["Orders are never deleted; use cancel()."]})

    def delete_many(
        self, filters: Mapping[str, Any] | None, *, include_deleted: bool = False
    ) -> int:
        """Refuse: orders are never deleted; cancel them instead."""
        raise ValidationError({"__all__": ["Orders are never deleted; use cancel()."]})

    # --- reads ---------------------------------------------------------------------

    def get_with_items(self, order_id: uuid.UUID | str) -> Order:
        """Return an order with its user, items and their products (2 queries).

        Raises NotFoundError for an unknown or malformed id.
        """
        key = parse_uuid(order_id)
        found = self.find_by_id(key) if key is not None else None
        if found is None:
            raise NotFoundError("Order", order_id)
        return found

    def history_for_user(
        self, user_id: uuid.UUID | str, *, after: str | None = None, limit: int = 20
    ) -> CursorPage[Order]:
        """Return a user's orders, newest first, as a keyset page (2 queries per page).

        Items and their products are loaded with the page in one more query, so the
        count does not grow with the number of orders. Pass `next_cursor` as `after`
        for the next page; the cursors are those of `paginate_cursor({"user": user_id},
        order_by=["-placed_at"])`. Unknown users get an empty page; malformed ids
        NotFoundError.
        """
        key = parse_uuid(user_id)
        if key is None:
            raise NotFoundError("User", user_id)
        return self._keyset_page(
            self.get_queryset().filter(user_id=key),
            self._sort_keys(["-placed_at"]),
            after,
            limit,
            form_data={"user": str(key)},
        )

    # --- placing orders --------------------------------------------------------------

    def place_order(
        self,
        user_id: uuid.UUID | str,
        items: Sequence[tuple[uuid.UUID | str, int]],
        *,
        idempotency_key: str | None = None,
    ) -> Order:
        """Place an order for a live, active user; return it with its items loaded.

        One transaction (retried whole on deadlock/serialization failure when it is the
        outermost one) of two statements, whatever the number of lines: the first
        checks the user and locks the products in primary-key order; after the checks
        (live, active, in stock, one currency) the second inserts the order with
        snapshots of sku, name and price, decrements stock with `sale` movements,
        and adds the first status-history row and the audit rows. The returned order,
        its user, items and their products are built from what these statements
        returned (no re-read). Both statements bind their parameters server-side, so
        PostgreSQL can reuse their plans (psycopg prepares them when the connection's
        `prepare_threshold` is set). An idempotency key adds a lookup before the
        transaction; a replayed key costs 2 queries.

        The same `idempotency_key` for the same user returns the first order without
        touching stock again, also when both requests race (the loser's insert yields
        to the unique index, writes nothing, and the winner's order is returned).

        Raises ValidationError (empty, too long, duplicate products, bad quantities,
        inactive products, mixed currencies), NotFoundError (unknown/deleted user or
        product; `key` names it) and InsufficientStockError.
        """
        user_key = parse_uuid(user_id)
        if user_key is None:
            raise NotFoundError("User", user_id)
        lines = self._validate_lines(items)
        key = self._validate_idempotency_key(idempotency_key)
        if key is not None:
            existing = self._find_idempotent(user_key, key)
            if existing is not None:
                return existing
        run = transactional(using=self.using)(self._place_order_once)
        return run(user_key, lines, key)

    @staticmethod
    def _validate_lines(items: object) -> list[_Line]:
        if not isinstance(items, list | tuple):
            raise ValidationError({"items": ["Items must be a list of (product_id, quantity)."]})
        if not items:
            raise ValidationError({"items": ["An order needs at least one item."]})
        if len(items) > MAX_ORDER_LINES:
            raise ValidationError({"items": [f"An order has at most {MAX_ORDER_LINES} lines."]})
        errors: list[str] = []
        lines: dict[uuid.UUID, _Line] = {}
        for index, item in enumerate(items):
            if not isinstance(item, list | tuple) or len(item) != 2:
                errors.append(f"Line {index}: expected (product_id, quantity).")
                continue
            product_id, quantity = item
            key = parse_uuid(product_id)
            if key is None:
                errors.append(f"Line {index}: {product_id!r} is not a product id.")
                continue
            if not _is_int(quantity) or not 1 <= quantity <= MAX_LINE_QUANTITY:
                errors.append(
                    f"Line {index}: quantity must be an integer from 1 to {MAX_LINE_QUANTITY}."
                )
                continue
            if key in lines:
                errors.append(f"Line {index}: product {key} appears more than once.")
                continue
            lines[key] = _Line(key, quantity)
        if errors:
            raise ValidationError({"items": errors})
        return sorted(lines.values(), key=lambda line: line.product_id)

    @staticmethod
    def _validate_idempotency_key(value: object) -> str | None:
        if value is None:
            return None
        if (
            not isinstance(value, str)
            or not value.strip()
            or len(value) > MAX_IDEMPOTENCY_KEY_LENGTH
        ):
            raise ValidationError(
                {
                    "idempotency_key": [
                        f"Use a non-empty string of at most {MAX_IDEMPOTENCY_KEY_LENGTH} "
                        "characters."
                    ]
                }
            )
        return value

    def _find_idempotent(self, user_id: uuid.UUID, key: str) -> Order | None:
        """Return the user's order placed with this idempotency key, items loaded (2 queries)."""
        queryset = self.get_queryset().filter(user_id=user_id, idempotency_key=key)
        with translate_errors(Order, using=self.using, reading=True):
            found = list(queryset[:1])
        return found[0] if found else None

    def _place_order_once(self, user_id: uuid.UUID, lines: list[_Line], key: str | None) -> Order:
        with translate_errors(Order, using=self.using), _server_bound_cursor(self.using) as cursor:
            cursor.execute(_LOCK_SQL, [[line.product_id for line in lines], user_id])
            rows = cursor.fetchall()
            if not rows:
                raise NotFoundError("User", user_id)
            split = len(_USER_FIELDS)
            user = row_loader(User, _USER_FIELDS, self.using)(rows[0][:split])
            load_product = row_loader(Product, _PRODUCT_FIELDS, self.using)
            products = {
                product.pk: product
                for product in (load_product(row[split:]) for row in rows if row[split] is not None)
            }
            try:
                currency = self._check_products(lines, products)
            except InsufficientStockError:
                # A racing request with the same key may have taken the stock and
                # committed after our lookup: it is the answer, not an error.
                winner = self._find_idempotent(user_id, key) if key is not None else None
                if winner is None:
                    raise
                return winner
            params = self._write_params(user_id, lines, products, currency, key)
            cursor.execute(_WRITE_ORDER_SQL, params)
            rows = cursor.fetchall()
        if not rows:
            # The key's unique index met a request that committed first: nothing was
            # written here; return the winner's order.
            winner = self._find_idempotent(user_id, cast(str, key))
            if winner is None:  # pragma: no cover - the conflict implies the row
                raise NotFoundError("Order", key)
            return winner
        return self._build_order(rows, user, products, lines)

    @staticmethod
    def _write_params(
        user_id: uuid.UUID,
        lines: list[_Line],
        products: dict[uuid.UUID, Product],
        currency: str,
        key: str | None,
    ) -> list[Any]:
        """Return the parameters of _WRITE_ORDER_SQL: lines, order, audit trail."""
        placed_at = timezone.now()
        number = new_order_number(placed_at)
        ordered = [products[line.product_id] for line in lines]
        quantities = [line.quantity for line in lines]
        line_totals = [
            (product.price * line.quantity).quantize(CENT)
            for product, line in zip(ordered, lines, strict=True)
        ]
        subtotal = sum(line_totals, Decimal("0.00"))
        state = current_audit_state()
        actor_id, actor_repr = actor_columns(state.actor)
        changes = [
            Jsonb(
                {
                    "number": number,
                    "status": OrderStatus.PENDING.value,
                    "total": str(subtotal),
                    "currency": currency,
                    "lines": len(lines),
                }
            ),
            *(
                Jsonb(
                    {
                        "stock_quantity": {
                            "old": product.stock_quantity,
                            "new": product.stock_quantity - line.quantity,
                        },
                        "delta": -line.quantity,
                        "reason": "sale",
                        "order": number,
                    }
                )
                for product, line in zip(ordered, lines, strict=True)
            ),
        ]
        return [
            # lines
            [line.product_id for line in lines],
            quantities,
            [product.sku for product in ordered],
            [product.name for product in ordered],
            [product.price for product in ordered],
            line_totals,
            # the order
            number,
            user_id,
            OrderStatus.PENDING.value,
            currency,
            subtotal,
            subtotal,
            placed_at,
            key,
            placed_at,
            placed_at,
            # the audit trail: "created" for the order, "stock_adjusted" per product
            placed_at,
            actor_id,
            actor_repr,
            state.request_id,
            state.ip_address,
            ["created", *(["stock_adjusted"] * len(lines))],
            ["order", *(["product"] * len(lines))],
            [None, *(str(line.product_id) for line in lines)],
            changes,
        ]

    def _build_order(
        self,
        rows: list[tuple[Any, ...]],
        user: User,
        products: dict[uuid.UUID, Product],
        lines: list[_Line],
    ) -> Order:
        """Return the order with user, items and products loaded, from _WRITE_ORDER_SQL rows.

        The same objects `get_with_items` would load, without reading them again: the
        products carry their stock and `updated_at` after the sale.
        """
        order_end = len(_ORDER_FIELDS)
        item_end = order_end + len(_ITEM_FIELDS)
        order = row_loader(Order, _ORDER_FIELDS, self.using)(rows[0][:order_end])
        _ORDER_USER.set_cached_value(order, user)
        quantities = {line.product_id: line.quantity for line in lines}
        load_item = row_loader(OrderItem, _ITEM_FIELDS, self.using)
        items = []
        for row in rows:
            item = load_item(row[order_end:item_end])
            product = products[item.product_id]
            stock, updated_at = row[item_end:]
            if stock is None:  # pragma: no cover - the rows are locked and were checked
                raise InsufficientStockError(
                    product.pk, quantities[product.pk], product.stock_quantity
                )
            product.stock_quantity, product.updated_at = stock, updated_at
            _ITEM_PRODUCT.set_cached_value(item, product)
            items.append(item)
        attach_prefetched(order, "items", items, _ITEMS_QUERYSET)
        return order

    @staticmethod
    def _check_products(lines: list[_Line], products: dict[uuid.UUID, Product]) -> str:
        """Refuse unknown, deleted, inactive or short products; return the order currency."""
        for line in lines:
            product = products.get(line.product_id)
            if product is None or product.deleted_at is not None:
                raise NotFoundError("Product", line.product_id)
            if not product.is_active:
                raise ValidationError(
                    {"items": [f"Product {product.pk} ({product.sku}) is not for sale."]}
                )
        for line in lines:
            product = products[line.product_id]
            if product.stock_quantity < line.quantity:
                raise InsufficientStockError(product.pk, line.quantity, product.stock_quantity)
        currencies = {products[line.product_id].currency for line in lines}
        if len(currencies) > 1:
            raise ValidationError(
                {"items": [f"One order takes one currency, got {', '.join(sorted(currencies))}."]}
            )
        return currencies.pop()

    # --- status changes --------------------------------------------------------------

    def transition(
        self,
        order_id: uuid.UUID | str,
        to_status: str,
        *,
        actor: Any = None,
        note: str = "",
        expected_version: int | None = None,
    ) -> Order:
        """Move an order to `to_status` along the status graph; return it updated.

        Locks the order row (SELECT ... FOR UPDATE), so of concurrent transitions each
        sees the previous one's result; increments `version`, writes a history row (its
        actor is `actor`, else the signed-in user of the audit context) and a
        "status_changed" audit row. Moving to `cancelled` returns the stock through
        `cancellation` movements (products locked in primary-key order).
        Raises NotFoundError, ValidationError (unknown status), StaleObjectError
        (`expected_version` given and the order moved on), InvalidTransitionError.
        """
        if to_status not in OrderStatus.values:
            raise ValidationError(
                {"to_status": [f"Unknown status {to_status!r}; use one of {OrderStatus.values}."]}
            )
        if expected_version is not None and not _is_int(expected_version):
            raise ValidationError({"expected_version": ["Version must be an integer."]})
        if not isinstance(note, str):
            raise ValidationError({"note": ["Note must be a string."]})
        actor_id = self._actor_id(actor)
        key = parse_uuid(order_id)
        if key is None:
            raise NotFoundError("Order", order_id)
        with translate_errors(Order, using=self.using), atomic(using=self.using):
            order = Order.objects.using(self.using).select_for_update().filter(pk=key).first()
            if order is None:
                raise NotFoundError("Order", order_id)
            if expected_version is not None and order.version != expected_version:
                raise StaleObjectError("Order", order.pk, expected_version, order.version)
            from_status = order.status
            if to_status not in ALLOWED_TRANSITIONS[from_status]:
                raise InvalidTransitionError(from_status, to_status)
            audit = [
                AuditEntry(
                    action="status_changed",
                    entity_type="order",
                    entity_id=str(order.pk),
                    changes={
                        "status": {"old": from_status, "new": to_status},
                        "version": {"old": order.version, "new": order.version + 1},
                        "note": note,
                    },
                )
            ]
            if to_status == OrderStatus.CANCELLED:
                audit.extend(self._return_stock(order))
            order.status = to_status
            order.version += 1
            order.updated_at = timezone.now()
            order.save(using=self.using, update_fields=["status", "version", "updated_at"])
            OrderStatusHistory.objects.using(self.using).create(
                order_id=order.pk,
                from_status=from_status,
                to_status=to_status,
                actor_id=actor_id,
                note=note,
            )
            check_deferred_constraints(self.using)  # an unknown actor fails here, typed
            record(audit, using=self.using)
        return order

    def cancel(
        self,
        order_id: uuid.UUID | str,
        *,
        actor: Any = None,
        note: str = "",
        expected_version: int | None = None,
    ) -> Order:
        """Cancel a pending or paid order and return its stock to inventory (see transition)."""
        return self.transition(
            order_id,
            OrderStatus.CANCELLED,
            actor=actor,
            note=note,
            expected_version=expected_version,
        )

    @staticmethod
    def _actor_id(actor: Any) -> uuid.UUID | None:
        """Return the acting user's id: `actor`, else the audit context's signed-in user."""
        if actor is None:
            context_actor = current_audit_state().actor
            if context_actor is None or not getattr(context_actor, "is_authenticated", False):
                return None
            actor = context_actor
        key = parse_uuid(getattr(actor, "pk", actor))
        if key is None:
            raise ValidationError({"actor": ["Actor must be a user or a user id."]})
        return key

    def _return_stock(self, order: Order) -> list[AuditEntry]:
        """Put an order's units back on its products with `cancellation` movements."""
        with connections[self.using].cursor() as cursor:
            cursor.execute(_ORDER_ITEMS_LOCK_SQL, [order.pk])
            lines = cursor.fetchall()
            cursor.execute(
                _RETURN_STOCK_SQL,
                [[row[0] for row in lines], [row[1] for row in lines], order.pk],
            )
            returned = cursor.fetchall()
        return [
            AuditEntry(
                action="stock_adjusted",
                entity_type="product",
                entity_id=str(product_id),
                changes={
                    "stock_quantity": {"old": stock - quantity, "new": stock},
                    "delta": quantity,
                    "reason": "cancellation",
                    "order": order.number,
                },
            )
            for product_id, quantity, stock in returned
        ]

    # --- analytics ---------------------------------------------------------------------

    @staticmethod
    def _check_range(start: datetime, end: datetime) -> None:
        errors: dict[str, list[str]] = {}
        for name, value in (("start", start), ("end", end)):
            if not isinstance(value, datetime):
                errors[name] = ["Expected a datetime."]
            elif timezone.is_naive(value):
                errors[name] = ["Expected a timezone-aware datetime."]
        if errors:
            raise InvalidQueryError(errors)
        if start >= end:
            raise InvalidQueryError({"end": ["End must be after start."]})

    def _revenue_orders(self, start: datetime, end: datetime) -> QuerySet[Order]:
        return Order.objects.using(self.using).filter(
            status__in=REVENUE_STATUSES, placed_at__gte=start, placed_at__lt=end
        )

    def revenue_by_period(
        self, start: datetime, end: datetime, *, period: str = "day"
    ) -> list[RevenueRow]:
        """Return revenue per day, week (from Monday) or month in [start, end), UTC (1 query).

        Counts orders that are paid, shipped or delivered, by `placed_at`; periods
        without such orders are absent. Sorted by period.
        """
        self._check_range(start, end)
        if period not in PERIODS:
            raise InvalidQueryError({"period": [f"Use one of {', '.join(PERIODS)}."]})
        rows = (
            self._revenue_orders(start, end)
            .annotate(bucket=Trunc("placed_at", period, tzinfo=UTC))
            .values("bucket")
            .annotate(orders=Count("id"), revenue=Sum("total"))
            .order_by("bucket")
        )
        return [
            RevenueRow(period=row["bucket"], orders=row["orders"], revenue=row["revenue"])
            for row in rows
        ]

    def top_products(
        self, start: datetime, end: datetime, *, limit: int = 10
    ) -> list[TopProductRow]:
        """Return the best-selling products by revenue in [start, end) (1 query).

        Sums the items of revenue orders (paid, shipped, delivered) by `placed_at`;
        `name` is the product's current name. Ties by units, then product id.
        """
        self._check_range(start, end)
        if not _is_int(limit) or not 1 <= limit <= 100:
            raise InvalidQueryError({"limit": ["Limit must be an integer from 1 to 100."]})
        rows = (
            OrderItem.objects.using(self.using)
            .filter(
                order__status__in=REVENUE_STATUSES,
                order__placed_at__gte=start,
                order__placed_at__lt=end,
            )
            .values("product_id", "product__name")
            .annotate(quantity=Sum("quantity"), revenue=Sum("line_total"))
            .order_by("-revenue", "-quantity", "product_id")[:limit]
        )
        return [
            TopProductRow(
                product_id=row["product_id"],
                name=row["product__name"],
                quantity=row["quantity"],
                revenue=row["revenue"],
            )
            for row in rows
        ]

    def average_order_value(self, start: datetime, end: datetime) -> Decimal:
        """Return the mean total of revenue orders in [start, end), to the cent (1 query).

        Decimal("0.00") when there are none.
        """
        self._check_range(start, end)
        value = self._revenue_orders(start, end).aggregate(value=Avg("total"))["value"]
        return Decimal("0.00") if value is None else Decimal(value).quantize(CENT)

    def status_breakdown(self) -> dict[str, int]:
        """Return the number of orders in every status, zeros included (1 query)."""
        counts = {status: 0 for status in OrderStatus.values}
        rows = Order.objects.using(self.using).values("status").annotate(n=Count("id"))
        counts.update({row["status"]: row["n"] for row in rows.order_by()})
        return counts
