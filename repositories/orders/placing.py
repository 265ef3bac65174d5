"""Placing an order: checks, stock, ledger, items, history and audit in two statements."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import psycopg
from django.contrib.auth import get_user_model
from django.db import connections
from django.db.backends.utils import CursorWrapper
from django.utils import timezone
from psycopg.types.json import Jsonb

from domain.models import (
    Order,
    OrderItem,
    OrderStatus,
    Product,
    User,
)
from repositories.core.audit import actor_columns, current_audit_state
from repositories.core.base import BaseRepository
from repositories.core.conf import setting
from repositories.core.error_mapping import translate_errors
from repositories.core.keys import parse_uuid
from repositories.core.loading import attach_prefetched, row_loader
from repositories.core.transactions import transactional
from repositories.errors import (
    InsufficientStockError,
    NotFoundError,
    ValidationError,
)
from repositories.orders.reads import ITEMS_QUERYSET
from repositories.orders.statements import (
    ITEM_FIELDS,
    ORDER_FIELDS,
    PRODUCT_FIELDS,
    placing_statements,
)
from repositories.user_model import parse_user_key

__all__ = [
    "CENT",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "MAX_LINE_QUANTITY",
    "MAX_ORDER_LINES",
    "OrderPlacing",
    "is_int",
    "new_order_number",
]

MAX_ORDER_LINES = 100
MAX_LINE_QUANTITY = 10_000
MAX_IDEMPOTENCY_KEY_LENGTH = 128
CENT = Decimal("0.01")


@dataclass(frozen=True)
class _Line:
    product_id: uuid.UUID
    quantity: int


_ORDER_USER = Order._meta.get_field("user")
_ITEM_PRODUCT = OrderItem._meta.get_field("product")


class _UnpreparedCursor(psycopg.Cursor[Any]):
    """A server-binding cursor that never prepares (unnamed statements only)."""

    def execute(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Any:
        return super().execute(query, params, prepare=False, binary=binary)


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
    # Behind a transaction-mode pooler a named prepared statement would outlive the
    # transaction on a server session other clients get: never prepare there.
    pooled = setting("TRANSACTION_POOLING")
    raw = (_UnpreparedCursor if pooled else psycopg.Cursor)(connection.connection)
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


def new_order_number(placed_at: datetime) -> str:
    """Return a human-readable order number: ORD-YYYYMMDD-<8 base32 chars, 40 random bits>."""
    suffix = base64.b32encode(secrets.token_bytes(5)).decode("ascii")
    return f"ORD-{placed_at.astimezone(UTC):%Y%m%d}-{suffix}"


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class OrderPlacing(BaseRepository[Order]):
    """Placing orders against stock: one transaction, two statements, never oversold."""

    def place_order(
        self,
        user_id: Any,
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
        user_key = parse_user_key(user_id)
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
            if not is_int(quantity) or not 1 <= quantity <= MAX_LINE_QUANTITY:
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

    def _find_idempotent(self, user_id: Any, key: str) -> Order | None:
        """Return the user's order placed with this idempotency key, items loaded (2 queries)."""
        queryset = self.get_queryset().filter(user_id=user_id, idempotency_key=key)
        with translate_errors(Order, using=self.using, reading=True):
            found = list(queryset[:1])
        return found[0] if found else None

    def _place_order_once(self, user_id: Any, lines: list[_Line], key: str | None) -> Order:
        statements = placing_statements(self.using)
        with translate_errors(Order, using=self.using), _server_bound_cursor(self.using) as cursor:
            cursor.execute(statements.lock_sql, [[line.product_id for line in lines], user_id])
            rows = cursor.fetchall()
            if not rows:
                raise NotFoundError("User", user_id)
            split = len(statements.user_fields)
            load_user = row_loader(get_user_model(), statements.user_fields, self.using)
            user = load_user(rows[0][:split])
            load_product = row_loader(Product, PRODUCT_FIELDS, self.using)
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
            cursor.execute(statements.write_order_sql, params)
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
        user_id: Any,
        lines: list[_Line],
        products: dict[uuid.UUID, Product],
        currency: str,
        key: str | None,
    ) -> list[Any]:
        """Return the parameters of the write statement: lines, order, audit trail."""
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
        """Return the order with user, items and products loaded, from the write statement's rows.

        The same objects `get_with_items` would load, without reading them again: the
        products carry their stock and `updated_at` after the sale.
        """
        order_end = len(ORDER_FIELDS)
        item_end = order_end + len(ITEM_FIELDS)
        order = row_loader(Order, ORDER_FIELDS, self.using)(rows[0][:order_end])
        _ORDER_USER.set_cached_value(order, user)
        quantities = {line.product_id: line.quantity for line in lines}
        load_item = row_loader(OrderItem, ITEM_FIELDS, self.using)
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
        attach_prefetched(order, "items", items, ITEMS_QUERYSET)
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
