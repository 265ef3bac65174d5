"""One repository per parity model, declared as an application would declare its own."""

from __future__ import annotations

from django_filters import filters

from repositories.core.base import BaseRepository
from repositories.core.filters import StrictFilterSet
from tests.parity_app.models import Book, Gadget, Owner, Shelf, TenantNote, TrackedItem, Widget


class OwnerFilterSet(StrictFilterSet):
    name = filters.CharFilter(lookup_expr="icontains")


class OwnerRepository(BaseRepository[Owner]):
    model = Owner
    filterset_class = OwnerFilterSet
    sortable_fields = ("name",)
    default_order = ("name",)


class WidgetFilterSet(StrictFilterSet):
    name = filters.CharFilter(lookup_expr="icontains")
    owner = filters.UUIDFilter(field_name="owner_id")
    amount_min = filters.NumberFilter(field_name="amount", lookup_expr="gte")


class WidgetRepository(BaseRepository[Widget]):
    """Widgets with both owners joined; `notes` is never loaded by reads."""

    model = Widget
    filterset_class = WidgetFilterSet
    sortable_fields = ("name", "amount")
    default_order = ("name",)
    select_related = ("owner", "reviewer")
    deferred_fields = ("notes",)


class GadgetFilterSet(StrictFilterSet):
    name = filters.CharFilter(lookup_expr="icontains")


class GadgetRepository(BaseRepository[Gadget]):
    model = Gadget
    filterset_class = GadgetFilterSet
    sortable_fields = ("name",)
    default_order = ("name",)


class TrackedItemFilterSet(StrictFilterSet):
    name = filters.CharFilter(lookup_expr="icontains")


class TrackedItemRepository(BaseRepository[TrackedItem]):
    model = TrackedItem
    filterset_class = TrackedItemFilterSet
    sortable_fields = ("name", "quantity")
    default_order = ("name",)


class TenantNoteFilterSet(StrictFilterSet):
    title = filters.CharFilter(lookup_expr="icontains")


class TenantNoteRepository(BaseRepository[TenantNote]):
    """Notes of the current tenant (the model's default manager decides which)."""

    model = TenantNote
    filterset_class = TenantNoteFilterSet
    sortable_fields = ("title",)
    default_order = ("title",)


class ShelfFilterSet(StrictFilterSet):
    name = filters.CharFilter(lookup_expr="icontains")


class ShelfRepository(BaseRepository[Shelf]):
    """Shelves; their default manager prefetches the books (nothing declared here)."""

    model = Shelf
    filterset_class = ShelfFilterSet
    sortable_fields = ("name",)
    default_order = ("name",)


class BookFilterSet(StrictFilterSet):
    title = filters.CharFilter(lookup_expr="icontains")
    shelf = filters.NumberFilter(field_name="shelf_id")


class BookRepository(BaseRepository[Book]):
    model = Book
    filterset_class = BookFilterSet
    sortable_fields = ("title", "pages")
    default_order = ("title",)
    select_related = ("shelf",)
