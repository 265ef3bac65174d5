"""Orders, their line items (price snapshots) and their status history."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from domain.models.base import MutableModel, TimestampedModel, VersionedModel
from domain.querysets import OrderQuerySet


class OrderStatus(models.TextChoices):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


#: The status graph: which statuses each status may move to.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.PAID, OrderStatus.CANCELLED}),
    OrderStatus.PAID: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.DELIVERED: frozenset({OrderStatus.REFUNDED}),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
}

#: Statuses whose orders count as revenue.
REVENUE_STATUSES = (OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED)


class Order(MutableModel, VersionedModel):
    """A placed order. Never deleted: cancellation is a status."""

    number = models.CharField(max_length=32, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="orders",
        db_index=False,
    )
    status = models.CharField(
        max_length=16,
        choices=OrderStatus.choices,
        default=OrderStatus.PENDING,
        db_default="pending",
    )
    currency = models.CharField(max_length=3, default="EUR", db_default="EUR")
    subtotal = models.DecimalField(max_digits=14, decimal_places=2)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    placed_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)

    objects: ClassVar[models.Manager[Order]] = OrderQuerySet.as_manager()

    class Meta:
        db_table = "orders"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in OrderStatus]), name="orders_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(subtotal__gte=0), name="orders_subtotal_non_negative"
            ),
            models.CheckConstraint(condition=Q(total__gte=0), name="orders_total_non_negative"),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="orders_currency_iso4217"
            ),
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="orders_user_idempotency_uniq",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-placed_at", "-id"], name="orders_user_placed_idx"),
            models.Index(fields=["placed_at", "id"], name="orders_placed_idx"),
            models.Index(fields=["status", "placed_at"], name="orders_status_idx"),
            models.Index(fields=["total", "id"], name="orders_total_idx"),
        ]

    def __str__(self) -> str:
        return self.number


class OrderItem(TimestampedModel):
    """One product line of an order, with the product's sku, name and price at purchase."""

    order = models.ForeignKey(
        Order,
        on_delete=models.CASCADE,
        related_name="items",
        db_index=False,
    )
    product = models.ForeignKey(
        "domain.Product",
        on_delete=models.PROTECT,
        related_name="order_items",
        db_index=False,
    )
    sku = models.CharField(max_length=64)
    product_name = models.CharField(max_length=255)
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    quantity = models.IntegerField()
    line_total = models.DecimalField(max_digits=14, decimal_places=2)

    objects: ClassVar[models.Manager[OrderItem]] = models.Manager()

    class Meta:
        db_table = "order_items"
        constraints = [
            models.UniqueConstraint(
                fields=["order", "product"], name="order_items_one_per_product"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="order_items_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0), name="order_items_unit_price_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(line_total=F("unit_price") * F("quantity")),
                name="order_items_line_total_matches",
            ),
        ]
        indexes = [models.Index(fields=["product"], name="order_items_product_idx")]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"


class OrderStatusHistory(TimestampedModel):
    """One status transition of an order."""

    order = models.ForeignKey(
        Order,
        on_delete=models.CASCADE,
        related_name="status_history",
        db_index=False,
    )
    from_status = models.CharField(
        max_length=16, choices=OrderStatus.choices, null=True, blank=True
    )
    to_status = models.CharField(max_length=16, choices=OrderStatus.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # covered by a composite index in Meta.indexes
    )
    note = models.TextField(blank=True, default="", db_default="")

    objects: ClassVar[models.Manager[OrderStatusHistory]] = models.Manager()

    class Meta:
        db_table = "order_status_history"
        verbose_name_plural = "order status history"
        constraints = [
            models.CheckConstraint(
                condition=Q(to_status__in=[s.value for s in OrderStatus]),
                name="order_history_to_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(from_status__isnull=True)
                | Q(from_status__in=[s.value for s in OrderStatus]),
                name="order_history_from_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["order", "created_at"], name="order_history_order_idx"),
            models.Index(fields=["actor"], name="order_history_actor_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status}"
