"""The catalog: a category tree, products with full-text search, and the stock ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from domain.models.base import SoftDeleteModel, TimestampedModel, VersionedModel
from domain.querysets import CategoryQuerySet, LiveManager, ProductQuerySet

currency_validator = RegexValidator(r"^[A-Z]{3}$", "Use a 3-letter ISO 4217 code, e.g. EUR.")


class Category(SoftDeleteModel):
    """A node of the category tree; moves that would create a cycle are refused."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        db_index=False,
    )

    objects = LiveManager.from_queryset(CategoryQuerySet)()
    all_objects = CategoryQuerySet.as_manager()

    class Meta:
        db_table = "categories"
        verbose_name_plural = "categories"
        constraints = [
            models.UniqueConstraint(
                fields=["slug"],
                condition=Q(deleted_at__isnull=True),
                name="categories_slug_live_uniq",
            ),
            models.CheckConstraint(
                condition=~Q(parent=models.F("id")), name="categories_not_own_parent"
            ),
            models.CheckConstraint(condition=~Q(slug=""), name="categories_slug_not_empty"),
        ]
        indexes = [
            models.Index(fields=["parent"], name="categories_parent_idx"),
            models.Index(fields=["name", "id"], name="categories_name_idx"),
        ]

    def __str__(self) -> str:
        return self.name


class Product(SoftDeleteModel, VersionedModel):
    """A sellable item. `stock_quantity` always equals the sum of its ledger movements."""

    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="", db_default="")
    category = models.ForeignKey(
        Category,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="products",
        db_index=False,
    )
    price = models.DecimalField(
        max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    currency = models.CharField(
        max_length=3, default="EUR", db_default="EUR", validators=[currency_validator]
    )
    stock_quantity = models.IntegerField(default=0, db_default=0, validators=[MinValueValidator(0)])
    is_active = models.BooleanField(default=True, db_default=True)
    # Maintained by PostgreSQL itself (a stored generated column), so no write path can
    # forget it; weighted so name and SKU matches rank above description matches.
    search_vector = models.GeneratedField(
        expression=SearchVector("name", weight="A", config="english")
        + SearchVector("sku", weight="A", config="simple")
        + SearchVector("description", weight="B", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    objects = LiveManager.from_queryset(ProductQuerySet)()
    all_objects = ProductQuerySet.as_manager()

    class Meta:
        db_table = "products"
        constraints = [
            models.UniqueConstraint(
                fields=["sku"], condition=Q(deleted_at__isnull=True), name="products_sku_live_uniq"
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="products_price_non_negative"),
            models.CheckConstraint(
                condition=Q(stock_quantity__gte=0), name="products_stock_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="products_currency_iso4217"
            ),
            models.CheckConstraint(condition=~Q(sku=""), name="products_sku_not_empty"),
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="products_search_gin"),
            models.Index(fields=["category", "id"], name="products_category_idx"),
            models.Index(fields=["created_at", "id"], name="products_created_idx"),
            models.Index(fields=["name", "id"], name="products_name_idx"),
            models.Index(fields=["price", "id"], name="products_price_idx"),
            models.Index(fields=["stock_quantity", "id"], name="products_stock_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class InventoryMovement(TimestampedModel):
    """One append-only change of a product's stock, with its reason."""

    class Reason(models.TextChoices):
        INITIAL = "initial"
        RESTOCK = "restock"
        SALE = "sale"
        CANCELLATION = "cancellation"
        ADJUSTMENT = "adjustment"

    product = models.ForeignKey(
        Product,
        on_delete=models.PROTECT,
        related_name="movements",
        db_index=False,
    )
    delta = models.IntegerField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    order = models.ForeignKey(
        "domain.Order",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="movements",
        db_index=False,
    )

    objects: ClassVar[models.Manager[InventoryMovement]] = models.Manager()

    class Meta:
        db_table = "inventory_movements"
        constraints = [
            models.CheckConstraint(condition=~Q(delta=0), name="inventory_delta_non_zero"),
            models.CheckConstraint(
                condition=Q(
                    reason__in=["initial", "restock", "sale", "cancellation", "adjustment"]
                ),
                name="inventory_reason_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["product", "created_at", "id"], name="inventory_product_idx"),
            models.Index(fields=["order"], name="inventory_order_idx"),
            models.Index(fields=["created_at", "id"], name="inventory_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.delta:+d} {self.reason}"
