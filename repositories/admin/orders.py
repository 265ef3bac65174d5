"""Admin pages for orders (status changes through OrderRepository), items and history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse

from domain.models import (
    ALLOWED_TRANSITIONS,
    Order,
    OrderItem,
    OrderStatus,
    OrderStatusHistory,
    User,
)
from repositories.admin.base import (
    ViewOnlyAdminMixin,
    acting,
    note_in_history,
)
from repositories.core.keys import parse_uuid
from repositories.errors import RepositoryError
from repositories.orders import OrderRepository

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


#: The admin's status verbs, in the order an order moves:
#: (target status, button on the order's page, action on the list).
TRANSITIONS: tuple[tuple[str, str, str], ...] = (
    (OrderStatus.PAID.value, "Mark paid", "Mark selected orders paid"),
    (OrderStatus.SHIPPED.value, "Mark shipped", "Mark selected orders shipped"),
    (OrderStatus.DELIVERED.value, "Mark delivered", "Mark selected orders delivered"),
    (OrderStatus.REFUNDED.value, "Refund", "Refund selected orders"),
    (OrderStatus.CANCELLED.value, "Cancel", "Cancel selected orders (returns their stock)"),
)
#: The history note of a change made in the admin when staff leave the note empty.
ADMIN_NOTE = "changed in the admin"


def move_orders(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    orders: list[tuple[Any, str]],
    to_status: str,
    note: str = "",
) -> None:
    """Move each (id, number) order to `to_status` through OrderRepository.transition.

    The signed-in user is the actor (history row and audit row). One transaction per
    order; a refused change (not allowed from its status, changed meanwhile) becomes an
    error message naming the order, and the others still move.
    """
    repository = OrderRepository()
    moved: list[Any] = []
    with acting(request):
        for pk, number in orders:
            try:
                repository.transition(pk, to_status, actor=request.user, note=note or ADMIN_NOTE)
            except RepositoryError as exc:
                modeladmin.message_user(request, f"Order {number}: {exc}.", messages.ERROR)
            else:
                moved.append(pk)
    if moved:
        rows = list(Order.objects.filter(pk__in=moved).order_by("pk"))
        note_in_history(request, rows, f"Status changed to {to_status}.")
        numbers = dict(orders)
        label = f"Order {numbers[moved[0]]}" if len(moved) == 1 else f"{len(moved)} orders"
        modeladmin.message_user(request, f"{label}: now {to_status}.", messages.SUCCESS)


def _transition_action(to_status: str, description: str) -> Callable[..., None]:
    """Build the changelist action that moves the selected orders to `to_status`."""

    def action(
        modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
    ) -> None:
        orders = list(queryset.order_by("placed_at", "pk").values_list("pk", "number"))
        move_orders(modeladmin, request, orders, to_status)

    action.__name__ = f"mark_{to_status}"
    return admin.action(description=description, permissions=["transition"])(action)


@admin.register(Order)
class OrderAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """Orders with their items and status history; status changes go through the repository.

    The order itself is never edited here. Staff with the "change order" permission move
    orders along the status graph: actions on the list, buttons on the order's page.
    """

    list_display = ("number", "status", "user", "total", "currency", "placed_at")
    list_select_related = ("user",)
    list_filter = (OrderStatusFilter, ("placed_at", admin.DateFieldListFilter))
    search_fields = ("number",)
    search_help_text = "An exact order number, a customer's exact email, or an order id."
    ordering = ("-placed_at", "-id")  # orders_placed_idx, scanned backwards
    fieldsets = (
        (None, {"fields": ("number", "status", "user", "placed_at")}),
        ("Amounts", {"fields": ("subtotal", "total", "currency")}),
        (
            "Record keeping",
            {"fields": ("idempotency_key", "version", "created_at", "updated_at")},
        ),
    )
    inlines = (OrderItemInline, OrderStatusHistoryInline)
    actions = tuple(_transition_action(status, action) for status, _, action in TRANSITIONS)
    show_full_result_count = False

    def has_transition_permission(self, request: HttpRequest) -> bool:
        """Moving orders along the status graph needs Django's "change order" permission."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def get_urls(self) -> list[URLPattern]:
        move = path(
            "<path:object_id>/transition/",
            self.admin_site.admin_view(self.transition_view),
            name="domain_order_transition",
        )
        return [move, *super().get_urls()]

    def transition_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST `to_status` (and an optional `note`): move one order from its page."""
        if request.method != "POST" or not self.has_transition_permission(request):
            raise PermissionDenied
        key = parse_uuid(object_id)
        found = Order.objects.filter(pk=key) if key is not None else Order.objects.none()
        order = found.values_list("pk", "number").first()
        if order is None:
            self.message_user(request, f"Order {object_id!r} does not exist.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:domain_order_changelist"))
        to_status = request.POST.get("to_status", "")
        note = request.POST.get("note", "").strip()[:500]
        move_orders(self, request, [order], to_status, note)
        return HttpResponseRedirect(reverse("admin:domain_order_change", args=[order[0]]))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        key = parse_uuid(object_id)
        status = None
        if key is not None and self.has_transition_permission(request):
            status = Order.objects.filter(pk=key).values_list("status", flat=True).first()
        if status is not None:
            allowed = ALLOWED_TRANSITIONS[status]
            extra_context = {
                **(extra_context or {}),
                "status_transitions": [(s, button) for s, button, _ in TRANSITIONS if s in allowed],
                "transition_url": reverse("admin:domain_order_transition", args=[object_id]),
            }
        return super().change_view(request, object_id, form_url, extra_context)

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
