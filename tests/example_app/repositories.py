"""The example app's repositories, declared as SPEC §9 shows for a project's own models."""

from __future__ import annotations

from django_filters import filters

from repositories.core.base import BaseRepository
from repositories.core.filters import StrictFilterSet
from tests.example_app.models import Document, Note, PlainDocument


class NoteFilterSet(StrictFilterSet):
    title = filters.CharFilter(lookup_expr="icontains")
    created_after = filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")


class NoteRepository(BaseRepository[Note]):
    """Notes; no soft delete, no version, no audit (the defaults outside `domain`)."""

    model = Note
    filterset_class = NoteFilterSet
    sortable_fields = ("created", "title")
    default_order = ("created",)


class DocumentFilterSet(StrictFilterSet):
    title = filters.CharFilter(lookup_expr="icontains")
    revision = filters.NumberFilter()


class DocumentRepository(BaseRepository[Document]):
    """Documents; removed ones are invisible unless stated; every write is audited."""

    model = Document
    filterset_class = DocumentFilterSet
    sortable_fields = ("title", "modified", "revision")
    default_order = ("title",)
    soft_delete_field = "removed_at"
    version_field = "revision"
    updated_at_field = "modified"
    audit = True


class PlainDocumentRepository(BaseRepository[PlainDocument]):
    """Documents of a model whose default manager does not hide removed rows."""

    model = PlainDocument
    sortable_fields = ("title",)
    soft_delete_field = "removed_at"
    version_field = "revision"
    updated_at_field = "modified"
