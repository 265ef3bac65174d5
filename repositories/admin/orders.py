"""Admin pages for orders, their items and status history (view-only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from domain.models import (
    Order,
    OrderItem,
    OrderStatus,
    OrderStatusHistory,
    User,
)
from repositories.admin.base import (
    ViewOnlyAdminMixin,
)
from repositories.core.keys import parse_uuid

__all__ = ["OrderAdmin", "OrderItemAdmin", "OrderStatusHistoryAdmin"]

# --- orders --------------------------------------------------------------------------------


class OrderItemInline(admin.TabularInline):
    """The order's lines, as snapshotted at purchase."""

    model = OrderItem
    fields = ("product", "sku", "product_name", "unit_price", "quantity", "line_total")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderItem]:
        # The product link is rendered from the row: load it in the same query.
        return super().get_queryset(request).select_related("product").order_by("sku", "id")


class OrderStatusHistoryInline(admin.TabularInline):
    """The order's status transitions, oldest first."""

    model = OrderStatusHistory
    fields = ("created_at", "from_status", "to_status", "actor", "note")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderStatusHistory]:
        return super().get_queryset(request).select_related("actor").order_by("created_at", "id")


class OrderStatusFilter(admin.SimpleListFilter):
    """Orders by status (orders_status_idx leads with status)."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(s.value, str(s.label)) for s in OrderStatus]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(status=self.value()) if self.value() else queryset


@admin.register(Order)
class OrderAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """Orders with their items and status history; status changes go through the repository."""

    list_display = ("number", "user", "status", "total", "currency", "placed_at", "version")
    list_select_related = ("user",)
    list_filter = (OrderStatusFilter, ("placed_at", admin.DateFieldListFilter))
    search_fields = ("number",)
    search_help_text = "An exact order number, a customer's exact email, or an order id."
    ordering = ("-placed_at", "-id")  # orders_placed_idx, scanned backwards
    inlines = (OrderItemInline, OrderStatusHistoryInline)
    show_full_result_count = False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # number = term uses the unique index orders_number_key; an email finds the live
        # user by lower(email) and then their orders through orders_user_placed_idx.
        term = search_term.strip()
        if not term:
            return queryset, False
        if key := parse_uuid(term):
            return queryset.filter(pk=key), False
        if "@" in term:
            return queryset.filter(user__in=User.objects.with_email(term).values("pk")), False
        return queryset.filter(number=term.upper()), False


class OrderChildAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """View-only rows that belong to an order, searched by the order's exact number.

    orders_number_key finds the order; the child table's index leading with order_id
    (order_items_one_per_product, order_history_order_idx) finds its rows.
    """

    search_fields = ("order__number",)
    search_help_text = "An exact order number."

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(order__number=term.upper()), False


@admin.register(OrderItem)
class OrderItemAdmin(OrderChildAdmin):
    """Order lines (snapshots); view only."""

    list_display = ("order", "sku", "product_name", "product", "unit_price", "quantity")
    list_select_related = ("order", "product")
    ordering = ("-created_at", "-id")
    show_full_result_count = False


@admin.register(OrderStatusHistory)
class OrderStatusHistoryAdmin(OrderChildAdmin):
    """Every status transition of every order; view only."""

    list_display = ("created_at", "order", "from_status", "to_status", "actor", "note")
    list_select_related = ("order", "actor")
    list_filter = ("to_status",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False
