"""Soft-deleted rows stay hidden whatever the model's default manager does."""

from __future__ import annotations

import pytest

from repositories.core.foundation import hides_deleted
from tests.example_app.factories import DocumentFactory
from tests.example_app.models import Document, PlainDocument
from tests.example_app.repositories import DocumentRepository, PlainDocumentRepository

pytestmark = pytest.mark.django_db


def test_a_repository_hides_soft_deleted_rows_its_default_manager_shows():
    kept, removed = DocumentFactory.create_batch(2)
    repository = PlainDocumentRepository()
    repository.soft_delete(removed.pk)
    assert PlainDocument._default_manager.filter(pk=removed.pk).exists()  # it shows it
    assert repository.find_by_id(removed.pk) is None
    assert [d.pk for d in repository.find_many()] == [kept.pk]
    assert repository.count() == 1
    assert repository.count(include_deleted=True) == 2
    assert [d.pk for d in repository.paginate_cursor().items] == [kept.pk]
    assert repository.restore(removed.pk).pk == removed.pk
    assert repository.count() == 2


def test_the_live_condition_is_not_added_twice_when_the_manager_has_it():
    assert hides_deleted(Document.objects.all(), "removed_at")
    assert not hides_deleted(Document.everything.all(), "removed_at")
    assert not hides_deleted(Document.everything.filter(removed_at__isnull=False), "removed_at")
    sql = str(DocumentRepository().get_queryset().query)
    assert sql.count('"removed_at" IS NULL') == 1
    sql = str(PlainDocumentRepository().get_queryset().query)
    assert sql.count('"removed_at" IS NULL') == 1
