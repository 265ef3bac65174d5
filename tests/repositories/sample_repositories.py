"""Small concrete repositories over the real models, used to test BaseRepository."""

from __future__ import annotations

from django.db.models import QuerySet
from django_filters import filters

from domain.models import AuditLog, Category, Order, Product, SystemConfig, User
from repositories.core.base import BaseRepository
from repositories.core.filters import NumberInFilter, StrictFilterSet, UUIDInFilter


class SampleProductFilterSet(StrictFilterSet):
    name = filters.CharFilter(lookup_expr="icontains")
    sku = filters.CharFilter()
    price = filters.RangeFilter()
    stock_quantity__in = NumberInFilter(field_name="stock_quantity", lookup_expr="in")
    is_active = filters.BooleanFilter()
    category = filters.UUIDFilter(field_name="category_id")
    category__in = UUIDInFilter(field_name="category_id", lookup_expr="in")
    category_name = filters.CharFilter(field_name="category__name", lookup_expr="iexact")
    id__in = UUIDInFilter(field_name="id", lookup_expr="in")
    created = filters.IsoDateTimeFromToRangeFilter(field_name="created_at")
    currency = filters.MultipleChoiceFilter(choices=[("EUR", "EUR"), ("USD", "USD")])


class SampleProductRepository(BaseRepository[Product]):
    """Products with their category, filtered by SampleProductFilterSet."""

    model = Product
    audit = True
    filterset_class = SampleProductFilterSet
    sortable_fields = ("name", "price", "created_at", "stock_quantity", "sku", "category_id")
    default_order = ("name",)
    select_related = ("category",)

    def find_cheapest(self) -> Product | None:
        """A domain verb built on a base method (its queries carry this method's label)."""
        return self.find_first(order_by=["price"])


class SampleCategoryFilterSet(StrictFilterSet):
    name = filters.CharFilter(lookup_expr="icontains")
    parent = filters.UUIDFilter(field_name="parent_id")


class SampleCategoryRepository(BaseRepository[Category]):
    """Categories with their live products prefetched."""

    model = Category
    audit = True
    filterset_class = SampleCategoryFilterSet
    sortable_fields = ("name", "created_at")
    default_order = ("name",)
    prefetch_related = ("products",)


class SampleOrderRepository(BaseRepository[Order]):
    """Orders: versioned, never soft-deleted; no FilterSet declared (the default is strict)."""

    model = Order
    audit = True
    sortable_fields = ("placed_at", "total", "status")
    default_order = ("-placed_at",)
    select_related = ("user",)


class SampleConfigRepository(BaseRepository[SystemConfig]):
    model = SystemConfig
    audit = True
    sortable_fields = ("key",)
    default_order = ("key",)


class SampleUserRepository(BaseRepository[User]):
    model = User
    audit = True
    sortable_fields = ("email", "created_at", "last_name")
    default_order = ("-created_at",)
    audit_exclude = ("last_login",)


class SampleAuditLogRepository(BaseRepository[AuditLog]):
    """A bigint-keyed model."""

    model = AuditLog
    audit = True
    sortable_fields = ("occurred_at",)
    default_order = ("-occurred_at",)


class SampleActiveProductRepository(SampleProductRepository):
    """A repository whose get_queryset() hides inactive products."""

    def get_queryset(self, *, include_deleted: bool = False) -> QuerySet[Product]:
        return super().get_queryset(include_deleted=include_deleted).filter(is_active=True)


class SampleChildCategoryRepository(BaseRepository[Category]):
    """Categories with their (nullable, self-referencing) parent joined."""

    model = Category
    audit = True
    filterset_class = SampleCategoryFilterSet
    sortable_fields = ("name", "slug", "created_at", "parent_id")
    default_order = ("name",)
    select_related = ("parent",)
