"""factory-boy factories for the example models; `removed=True` hides a document."""

from __future__ import annotations

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from tests.example_app.models import Document, Note


class NoteFactory(DjangoModelFactory):
    class Meta:
        model = Note

    title = factory.Sequence(lambda n: f"Note #{n}#")
    body = "Some text."
    payload = factory.Sequence(lambda n: {"n": n, "ratio": 0.5, "tags": ["x"], "ok": True})


class DocumentFactory(DjangoModelFactory):
    class Meta:
        model = Document

    title = factory.Sequence(lambda n: f"Document #{n}#")
    tags = factory.Sequence(lambda n: ["draft", f"t{n}"])

    class Params:
        removed = factory.Trait(removed_at=factory.LazyFunction(timezone.now))
