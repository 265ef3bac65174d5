"""Admin pages for categories, products (with stock adjustments) and the stock ledger."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from domain.models import (
    Category,
    InventoryMovement,
    Product,
)
from repositories.admin.base import (
    LiveStateFilter,
    SoftDeleteAdmin,
    ViewOnlyAdminMixin,
    acting,
    note_in_history,
)
from repositories.core.keys import parse_uuid
from repositories.errors import RepositoryError
from repositories.products import ProductRepository
from repositories.search import MAX_SEARCH_LENGTH, build_search_query

__all__ = ["CategoryAdmin", "InventoryMovementAdmin", "ProductAdmin"]

# --- catalog -------------------------------------------------------------------------------


@admin.register(Category)
class CategoryAdmin(SoftDeleteAdmin):
    """The category tree; moving a category under its own descendant is refused by the DB."""

    list_display = ("name", "deleted", "slug", "parent", "created_at")
    list_select_related = ("parent",)
    list_filter = (LiveStateFilter,)
    # Small table (tens of rows): a substring search over name is cheap; slug also has a
    # plain btree index for exact matches.
    search_fields = ("name", "=slug")
    ordering = ("name", "id")  # categories_name_idx
    prepopulated_fields = {"slug": ("name",)}
    raw_id_fields = ("parent",)
    readonly_fields = ("created_at", "updated_at", "deleted_at")


#: Most products one stock adjustment page takes (the ids travel in its URL).
MAX_STOCK_ROWS = 100


class StockAdjustmentForm(forms.Form):
    """How much stock to add or remove, and why (the ledger's reason)."""

    reason = forms.ChoiceField(
        choices=[
            ("restock", "Restock: units received"),
            ("adjustment", "Adjustment: a count correction (add or remove)"),
        ],
        initial="restock",
    )
    quantity = forms.IntegerField(
        help_text="Units to add to each product; for an adjustment, negative to remove.",
        min_value=-1_000_000,
        max_value=1_000_000,
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        quantity = data.get("quantity")
        if quantity == 0:
            self.add_error("quantity", "Enter a quantity other than zero.")
        elif quantity is not None and quantity < 0 and data.get("reason") == "restock":
            self.add_error("quantity", "A restock adds units; use an adjustment to remove some.")
        return data


@admin.action(description="Restock or adjust stock of selected products…")
def adjust_stock_selected(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> HttpResponse:
    """Open the stock adjustment page for the selected products."""
    keys = [str(pk) for pk in queryset.order_by("pk").values_list("pk", flat=True)]
    if len(keys) > MAX_STOCK_ROWS:
        modeladmin.message_user(
            request, f"Select at most {MAX_STOCK_ROWS} products at a time.", messages.ERROR
        )
        return HttpResponseRedirect(request.get_full_path())
    return HttpResponseRedirect(f"{reverse('admin:domain_product_stock')}?ids={','.join(keys)}")


@admin.register(Product)
class ProductAdmin(SoftDeleteAdmin):
    """Products; stock changes only through the ledger (the "stock" page, audited)."""

    # Narrow columns, the deleted marker early: the whole row fits 1400 px with the
    # admin's navigation sidebar and the filters open.
    list_display = ("sku", "name", "deleted", "price_label", "stock", "active", "category")
    list_select_related = ("category",)
    # Categories are few, so the category filter's choice list is one small query.
    list_filter = (LiveStateFilter, "is_active", "currency", "category")
    search_fields = ("sku",)
    search_help_text = (
        "Words of the name, description or SKU; the last word may be unfinished "
        '("ten" finds tents). Or a product id.'
    )
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
    actions = (*SoftDeleteAdmin.actions, adjust_stock_selected)
    show_full_result_count = False

    @admin.display(description="price", ordering="price")
    def price_label(self, obj: Product) -> str:
        return f"{obj.price} {obj.currency}"

    @admin.display(description="stock", ordering="stock_quantity")
    def stock(self, obj: Product) -> int:
        return obj.stock_quantity

    @admin.display(description="active", boolean=True, ordering="is_active")
    def active(self, obj: Product) -> bool:
        return obj.is_active

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # The tsquery of ProductRepository.search (prefix matching, web-search syntax),
        # answered by the GIN index on search_vector; unlike search(), deleted and inactive
        # products are found too, and the changelist keeps its own ordering.
        term = search_term.strip()
        if not term:
            return queryset, False
        if key := parse_uuid(term):
            return queryset.filter(pk=key), False
        tsquery = build_search_query(term[:MAX_SEARCH_LENGTH])
        if tsquery is None:
            return queryset.none(), False
        vector = f'"{Product._meta.db_table}"."search_vector"'
        # Constant SQL; every word of the search is a bound parameter.
        match = RawSQL(f"{vector} @@ ({tsquery.sql})", tsquery.params, BooleanField())  # noqa: S611
        return queryset.filter(match), False

    # --- stock adjustments (through ProductRepository, so the ledger stays whole) --------

    def get_urls(self) -> list[URLPattern]:
        stock = path(
            "stock/", self.admin_site.admin_view(self.stock_view), name="domain_product_stock"
        )
        return [stock, *super().get_urls()]

    def stock_view(self, request: HttpRequest) -> HttpResponse:
        """Restock or adjust the stock of the products named by `ids`, one ledger row each."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        keys = [k for k in (parse_uuid(v) for v in request.GET.get("ids", "").split(",")) if k]
        products = list(
            Product.all_objects.filter(pk__in=keys[:MAX_STOCK_ROWS]).order_by("sku", "id")
        )
        changelist = reverse("admin:domain_product_changelist")
        if not products:
            self.message_user(request, "No product was selected.", messages.WARNING)
            return HttpResponseRedirect(changelist)
        form = StockAdjustmentForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            self._adjust(
                request, products, form.cleaned_data["reason"], form.cleaned_data["quantity"]
            )
            if len(products) == 1:
                return HttpResponseRedirect(
                    reverse("admin:domain_product_change", args=[products[0].pk])
                )
            return HttpResponseRedirect(changelist)
        context = {
            **self.admin_site.each_context(request),
            "title": "Restock or adjust stock",
            "opts": self.opts,
            "form": form,
            "products": products,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/domain/product/stock_form.html", context)

    def _adjust(
        self, request: HttpRequest, products: list[Product], reason: str, quantity: int
    ) -> None:
        """Move each product's stock through the repository; report each failure."""
        repository = ProductRepository()
        done: list[Product] = []
        stock = 0
        with acting(request):
            for product in products:
                try:
                    if reason == "restock":
                        stock = repository.restock(product.pk, quantity)
                    else:
                        stock = repository.adjust_stock(product.pk, quantity, reason=reason)
                except RepositoryError as exc:
                    self.message_user(request, f"{product.sku}: {exc}", messages.ERROR)
                else:
                    done.append(product)
        if len(done) == 1:
            summary = f"{done[0].sku}: stock {quantity:+d} ({reason}), now {stock}."
            self.message_user(request, summary, messages.SUCCESS)
        elif done:
            summary = f"Stock {quantity:+d} ({reason}) on {len(done)} products."
            self.message_user(request, summary, messages.SUCCESS)
        note_in_history(request, done, f"Stock {quantity:+d} ({reason}).")


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
