"""Order status changes along the status graph, with history, audit and stock returns."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connections
from django.utils import timezone

from domain.models import (
    ALLOWED_TRANSITIONS,
    Order,
    OrderStatus,
    OrderStatusHistory,
)
from repositories.core.audit import AuditEntry, current_audit_state, record
from repositories.core.base import BaseRepository
from repositories.core.error_mapping import translate_errors
from repositories.core.keys import parse_uuid
from repositories.core.transactions import atomic, check_deferred_constraints
from repositories.errors import (
    InvalidTransitionError,
    NotFoundError,
    StaleObjectError,
    ValidationError,
)
from repositories.orders.placing import is_int
from repositories.user_model import parse_user_key

__all__ = ["OrderStatusChanges"]

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


_ORDER_ITEMS_LOCK_SQL = """
SELECT p.id, i.quantity
FROM order_items i JOIN products p ON p.id = i.product_id
WHERE i.order_id = %s ORDER BY p.id FOR UPDATE OF p
"""


class OrderStatusChanges(BaseRepository[Order]):
    """Moving orders along the status graph; cancellation returns the stock."""

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
        if expected_version is not None and not is_int(expected_version):
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
    def _actor_id(actor: Any) -> Any:
        """Return the acting user's id: `actor`, else the audit context's signed-in user."""
        if actor is None:
            context_actor = current_audit_state().actor
            if context_actor is None or not getattr(context_actor, "is_authenticated", False):
                return None
            actor = context_actor
        key = parse_user_key(getattr(actor, "pk", actor))
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
