"""Products: reads, full-text search, and stock moved only through the ledger."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import django_filters as filters
from django.db import connections
from django.db.models import BooleanField, FloatField, QuerySet
from django.db.models.expressions import RawSQL

from domain.models import InventoryMovement, Product
from repositories.categories import SUBTREE_IDS_SQL
from repositories.core.audit import AuditEntry, record
from repositories.core.base import BaseRepository
from repositories.core.bulk import copy_rows
from repositories.core.error_mapping import translate_errors
from repositories.core.filters import StrictFilterSet
from repositories.core.keys import parse_uuid, require_uuid
from repositories.core.pagination import max_page_size
from repositories.core.transactions import atomic
from repositories.errors import (
    InsufficientStockError,
    InvalidQueryError,
    NotFoundError,
    ValidationError,
)
from repositories.search import MAX_SEARCH_LENGTH, build_search_query

__all__ = ["MANUAL_STOCK_REASONS", "ProductFilterSet", "ProductRepository"]

#: belong to orders and are written only by OrderRepository, always with their order.
MANUAL_STOCK_REASONS = frozenset({"initial", "restock", "adjustment"})


class ProductFilterSet(StrictFilterSet):
    """Criteria for products: text contains, category, price range, activity, stock."""

    name = filters.CharFilter(lookup_expr="icontains")
    sku = filters.CharFilter()
    category = filters.UUIDFilter(field_name="category_id")
    is_active = filters.BooleanFilter()
    currency = filters.CharFilter()
    price_min = filters.NumberFilter(field_name="price", lookup_expr="gte")
    price_max = filters.NumberFilter(field_name="price", lookup_expr="lte")
    stock_min = filters.NumberFilter(field_name="stock_quantity", lookup_expr="gte")
    stock_max = filters.NumberFilter(field_name="stock_quantity", lookup_expr="lte")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Product
        fields: tuple[str, ...] = ()


class ProductRepository(BaseRepository[Product]):
    """Read and write products, search them, and move their stock through the ledger.

    Soft-deleted products are invisible unless stated. `search_vector` is never loaded.
    `create`/`create_many` accept an initial `stock_quantity` (≥ 0, default 0) and write
    its "initial" ledger movement in the same transaction; updates refuse it.
    """

    model = Product
    read_methods = BaseRepository.read_methods | {
        "find_by_sku",
        "in_category",
        "search",
        "low_stock",
        "stock_ledger",
    }
    audit = True
    lookup_methods = BaseRepository.lookup_methods | {"find_by_sku"}
    filterset_class = ProductFilterSet
    sortable_fields = ("name", "price", "created_at", "stock_quantity", "sku")
    default_order = ("name",)
    select_related = ("category",)
    # The (large) generated search vector is never loaded by reads.
    deferred_fields = ("search_vector",)
    audit_exclude = ("search_vector",)
    # Stock is set when a product is created (with its "initial" movement, see
    # _after_create) and then moves only through adjust_stock/restock and orders, which
    # write the ledger; a generic update could break stock_quantity == sum(movements).
    create_only_fields = ("stock_quantity",)

    def _after_create(self, instances: Sequence[Product]) -> None:
        """Write one "initial" movement per new product with stock (one COPY, or none)."""
        movements = [(p.pk, p.stock_quantity, "initial") for p in instances if p.stock_quantity]
        if movements:
            copy_rows(
                self.using,
                InventoryMovement._meta.db_table,
                ("product_id", "delta", "reason"),
                movements,
            )

    def find_by_sku(self, sku: str) -> Product | None:
        """Return the live product with this SKU (exact), or None (1 query)."""
        if not isinstance(sku, str) or not sku.strip():
            return None
        return self.get_queryset().filter(sku=sku.strip()).first()

    def in_category(
        self,
        category_id: uuid.UUID | str,
        include_descendants: bool = True,
        *,
        include_inactive: bool = False,
    ) -> list[Product]:
        """Return the live, active products of a category and its subtree (1 query).

        Products are sorted by name, then id, with their category loaded. The subtree
        is a recursive CTE inside the same query; a deleted category hides its subtree.
        An unknown, deleted or malformed category gives an empty list; a flag that is not
        a bool raises InvalidQueryError (the string "false" is not false).
        """
        for name, flag in (
            ("include_descendants", include_descendants),
            ("include_inactive", include_inactive),
        ):
            if not isinstance(flag, bool):
                raise InvalidQueryError({name: ["Enter true or false."]})
        key = parse_uuid(category_id)
        if key is None:
            return []
        queryset = self.get_queryset()
        if include_descendants:
            subtree = RawSQL(SUBTREE_IDS_SQL, [key])  # noqa: S611 - constant SQL, bound id
            queryset = queryset.filter(category_id__in=subtree)
        else:
            queryset = queryset.filter(category_id=key, category__deleted_at__isnull=True)
        if not include_inactive:
            queryset = queryset.filter(is_active=True)
        return list(queryset.order_by("name", "id"))

    def search(
        self, query: str, *, filters: Mapping[str, Any] | None = None, limit: int = 20
    ) -> list[Product]:
        """Return live, active products matching `query`, best first (1 query).

        Web-search syntax (see `build_search_query`) over the stored `search_vector`
        through the GIN index `products_search_gin`; ranked by `ts_rank_cd` (exact
        matches of the whole query count extra), ties broken by id. Each product has a
        `rank` attribute. `limit` is capped at REPOSITORIES["MAX_PAGE_SIZE"]. Text with
        no searchable word gives []; a non-string query, a query longer than
        MAX_SEARCH_LENGTH or a bad limit raises InvalidQueryError.
        """
        if not isinstance(query, str):
            raise InvalidQueryError({"query": ["Search text must be a string."]})
        if len(query) > MAX_SEARCH_LENGTH:
            raise InvalidQueryError(
                {"query": [f"Search text is limited to {MAX_SEARCH_LENGTH} characters."]}
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidQueryError({"limit": ["Limit must be a positive integer."]})
        limit = min(limit, max_page_size())
        # Filters are validated even when the text has nothing to search.
        queryset = self._filtered(filters)
        tsquery = build_search_query(query)
        if tsquery is None:
            return []
        vector = f'"{Product._meta.db_table}"."search_vector"'
        # The SQL is built from constants only; every user-supplied word is a parameter.
        match = RawSQL(f"{vector} @@ ({tsquery.sql})", tsquery.params, BooleanField())  # noqa: S611
        rank = RawSQL(  # noqa: S611
            f"ts_rank_cd({vector}, ({tsquery.sql}))"
            f" + ts_rank_cd({vector}, websearch_to_tsquery('english', %s))",
            (*tsquery.params, query),
            FloatField(),
        )
        queryset = queryset.filter(match, is_active=True)
        queryset = queryset.annotate(rank=rank)
        with translate_errors(Product, using=self.using):
            return list(queryset.order_by("-rank", "id")[:limit])

    def _filtered(self, filters: Mapping[str, Any] | None) -> QuerySet[Product]:
        """Return live products narrowed by validated filters (no query yet)."""
        return ProductFilterSet.apply(filters, self.get_queryset())

    # --- stock ---------------------------------------------------------------------

    def adjust_stock(self, product_id: uuid.UUID | str, delta: int, *, reason: str) -> int:
        """Change a live product's stock by `delta` and write the ledger; return the new stock.

        One conditional UPDATE (stock never below zero, also under concurrent writers),
        one ledger insert and one audit row ("stock_adjusted"), atomically. `reason` is
        one of initial, restock, adjustment (sale/cancellation belong to orders).
        The product's `version` is not changed: stock moves are not edits.
        Raises ValidationError (bad delta or reason), NotFoundError (unknown, deleted,
        malformed id), InsufficientStockError (would go below zero).
        """
        if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
            raise ValidationError({"delta": ["Delta must be a non-zero integer."]})
        if not isinstance(reason, str) or reason not in MANUAL_STOCK_REASONS:
            raise ValidationError(
                {"reason": [f"Reason must be one of {', '.join(sorted(MANUAL_STOCK_REASONS))}."]}
            )
        key = require_uuid("Product", product_id)
        with translate_errors(Product, using=self.using), atomic(using=self.using):
            with connections[self.using].cursor() as cursor:
                cursor.execute(
                    "UPDATE products SET stock_quantity = stock_quantity + %s, updated_at = now()"
                    " WHERE id = %s AND deleted_at IS NULL AND stock_quantity + %s >= 0"
                    " RETURNING stock_quantity",
                    [delta, key, delta],
                )
                row = cursor.fetchone()
                if row is None:
                    cursor.execute(
                        "SELECT stock_quantity FROM products WHERE id = %s AND deleted_at IS NULL",
                        [key],
                    )
                    current = cursor.fetchone()
                    if current is None:
                        raise NotFoundError("Product", product_id)
                    raise InsufficientStockError(key, -delta, current[0])
            stock = int(row[0])
            InventoryMovement.objects.using(self.using).create(
                product_id=key, delta=delta, reason=reason
            )
            record(
                [
                    AuditEntry(
                        action="stock_adjusted",
                        entity_type="product",
                        entity_id=str(key),
                        changes={
                            "stock_quantity": {"old": stock - delta, "new": stock},
                            "delta": delta,
                            "reason": reason,
                        },
                    )
                ],
                using=self.using,
            )
        return stock

    def restock(self, product_id: uuid.UUID | str, quantity: int) -> int:
        """Add `quantity` (> 0) units to a live product's stock; return the new stock."""
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise ValidationError({"quantity": ["Quantity must be a positive integer."]})
        return self.adjust_stock(product_id, quantity, reason="restock")

    def low_stock(self, threshold: int, *, limit: int = 100) -> list[Product]:
        """Return live, active products with at most `threshold` units, lowest first (1 query).

        Sorted by stock, then id, through the (stock_quantity, id) index; `limit` is
        capped at REPOSITORIES["MAX_PAGE_SIZE"].
        """
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise InvalidQueryError({"threshold": ["Threshold must be a non-negative integer."]})
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidQueryError({"limit": ["Limit must be a positive integer."]})
        limit = min(limit, max_page_size())
        queryset = self.get_queryset().filter(is_active=True, stock_quantity__lte=threshold)
        return list(queryset.order_by("stock_quantity", "id")[:limit])

    def stock_ledger(self, product_id: uuid.UUID | str) -> list[InventoryMovement]:
        """Return every stock movement of a product, oldest first, orders loaded (1 query).

        Works for soft-deleted products too (the ledger is history). A product without
        movements costs a second query to tell "no movements" from NotFoundError.
        """
        key = require_uuid("Product", product_id)
        movements = list(
            InventoryMovement.objects.using(self.using)
            .filter(product_id=key)
            .select_related("order")
            .order_by("created_at", "id")
        )
        if not movements and not Product.all_objects.using(self.using).filter(pk=key).exists():
            raise NotFoundError("Product", product_id)
        return movements
