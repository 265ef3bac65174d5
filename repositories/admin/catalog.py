"""Admin pages for categories, products and the (view-only) stock ledger."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.postgres.search import SearchQuery
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from domain.models import (
    Category,
    InventoryMovement,
    Product,
)
from repositories.admin.base import (
    LiveStateFilter,
    SoftDeleteAdmin,
    ViewOnlyAdminMixin,
)
from repositories.core.keys import parse_uuid

__all__ = ["CategoryAdmin", "InventoryMovementAdmin", "ProductAdmin"]

# --- catalog -------------------------------------------------------------------------------


@admin.register(Category)
class CategoryAdmin(SoftDeleteAdmin):
    """The category tree; moving a category under its own descendant is refused by the DB."""

    list_display = ("name", "slug", "parent", "created_at", "deleted_at")
    list_select_related = ("parent",)
    list_filter = (LiveStateFilter,)
    # Small table (tens of rows): a substring search over name is cheap; slug also has a
    # plain btree index for exact matches.
    search_fields = ("name", "=slug")
    ordering = ("name", "id")  # categories_name_idx
    prepopulated_fields = {"slug": ("name",)}
    raw_id_fields = ("parent",)
    readonly_fields = ("created_at", "updated_at", "deleted_at")


@admin.register(Product)
class ProductAdmin(SoftDeleteAdmin):
    """Products; stock is read-only here because only ledger movements may change it."""

    list_display = (
        "sku",
        "name",
        "category",
        "price",
        "currency",
        "stock_quantity",
        "is_active",
        "created_at",
        "deleted_at",
    )
    list_select_related = ("category",)
    # Categories are few, so the category filter's choice list is one small query.
    list_filter = (LiveStateFilter, "is_active", "currency", "category")
    search_fields = ("sku",)
    search_help_text = "Words of the name, SKU or description (full-text), or a product id."
    ordering = ("-created_at", "-id")  # products_created_idx, scanned backwards
    raw_id_fields = ("category",)
    fields = (
        "sku",
        "name",
        "description",
        "category",
        "price",
        "currency",
        "is_active",
        "stock_quantity",
        "version",
        "created_at",
        "updated_at",
        "deleted_at",
    )
    readonly_fields = ("stock_quantity", "version", "created_at", "updated_at", "deleted_at")
    show_full_result_count = False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # The generated search_vector mixes the english (name, description) and simple (sku)
        # configurations, so the term is parsed both ways; `@@` is answered by the GIN index
        # products_search_gin. (The sku btree index is partial on live rows, so it cannot
        # serve this changelist, which lists deleted rows too.)
        term = search_term.strip()
        if not term:
            return queryset, False
        if key := parse_uuid(term):
            return queryset.filter(pk=key), False
        query = SearchQuery(term, config="english", search_type="websearch") | SearchQuery(
            term, config="simple", search_type="websearch"
        )
        return queryset.filter(search_vector=query), False


@admin.register(InventoryMovement)
class InventoryMovementAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """The stock ledger, append-only: view only."""

    list_display = ("created_at", "product", "delta", "reason", "order")
    list_select_related = ("product", "order")
    list_filter = ("reason",)
    search_fields = ("product__id",)
    search_help_text = "A product id or an order id."
    ordering = ("-created_at", "-id")
    show_full_result_count = False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # Both keys have an index (inventory_product_idx, inventory_order_idx).
        key = parse_uuid(search_term)
        if key is None:
            return (queryset.none() if search_term.strip() else queryset), False
        return queryset.filter(Q(product_id=key) | Q(order_id=key)), False
