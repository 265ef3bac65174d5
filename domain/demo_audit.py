"""The demo data's audit trail: what the repositories would have recorded, dated like
the rows, written set-based (see seed_demo)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import Model

from domain.demo import BATCH_SIZE, DemoData
from domain.models import AuditLog

#: The audit rows' actor: the command that wrote them (there is no signed-in user).
AUDIT_ACTOR = "seed_demo"

__all__ = ["audit_trail", "insert_audit"]


def _audit(action: str, entity: Model, at: datetime, changes: dict[str, Any]) -> AuditLog:
    return AuditLog(
        occurred_at=at,
        created_at=at,
        actor_repr=AUDIT_ACTOR,
        action=action,
        entity_type=entity._meta.model_name or "",
        entity_id=str(entity.pk),
        changes=changes,
    )


def audit_trail(data: DemoData) -> list[AuditLog]:
    """Return the audit rows of what `data` records, oldest first (rows need their keys).

    Foreign keys are read from their `*_id` columns, which `insert` filled in.
    """
    rows: list[AuditLog] = []
    fields: dict[str, Any]
    for user in data.users:
        fields = {"email": user.email, "first_name": user.first_name, "last_name": user.last_name}
        rows.append(_audit("created", user, user.created_at, fields))
    for category in data.categories:
        fields = {
            "name": category.name,
            "slug": category.slug,
            "parent_id": _key(category.parent_id),
        }
        rows.append(_audit("created", category, category.created_at, fields))
    initial = {m.product_id: m.delta for m in data.movements if m.reason == "initial"}
    for product in data.products:
        fields = {
            "sku": product.sku,
            "name": product.name,
            "price": str(product.price),
            "category_id": _key(product.category_id),
            "stock_quantity": initial.get(product.pk, 0),
            "is_active": product.is_active,
        }
        rows.append(_audit("created", product, product.created_at, fields))
    orders = {}
    for order in data.orders:
        orders[order.pk] = order
        fields = {"number": order.number, "user_id": _key(order.user_id), "total": str(order.total)}
        rows.append(_audit("created", order, order.placed_at, fields))
    versions: dict[Any, int] = {}
    for step in data.history:
        if step.from_status is None:
            continue
        version = versions[step.order_id] = versions.get(step.order_id, 1) + 1
        changes = {
            "status": {"old": step.from_status, "new": step.to_status},
            "version": {"old": version - 1, "new": version},
            "note": step.note,
        }
        rows.append(_audit("status_changed", orders[step.order_id], step.created_at, changes))
    for entity in (*data.users, *data.products):
        if entity.deleted_at is not None:
            changes = {"deleted_at": {"old": None, "new": entity.deleted_at.isoformat()}}
            rows.append(_audit("soft_deleted", entity, entity.deleted_at, changes))
    rows.sort(key=lambda row: row.occurred_at)
    return rows


def _key(value: Any) -> str | None:
    return None if value is None else str(value)


def insert_audit(rows: Sequence[AuditLog], using: str, progress: Any) -> None:
    """Insert audit rows in batches: one multi-row INSERT per batch (keys are identities)."""
    for start in range(0, len(rows), BATCH_SIZE):
        batch = rows[start : start + BATCH_SIZE]
        AuditLog.objects.db_manager(using).bulk_create(batch)
        progress.update(len(batch))
