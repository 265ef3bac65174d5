"""factory-boy factories for the parity models."""

from __future__ import annotations

from decimal import Decimal

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from tests.parity_app.models import (
    Book,
    Gadget,
    Money,
    Owner,
    Shelf,
    TenantNote,
    TrackedItem,
    Widget,
)


class OwnerFactory(DjangoModelFactory):
    class Meta:
        model = Owner

    name = factory.Sequence(lambda n: f"Owner {n}")
    balance = factory.Sequence(lambda n: Money(Decimal(n * 101 + 5).scaleb(-2)))


class WidgetFactory(DjangoModelFactory):
    class Meta:
        model = Widget

    name = factory.Sequence(lambda n: f"Widget {n}")
    payload = factory.LazyFunction(lambda: {"colour": "red", "sizes": [1, 2.5], "ok": True})
    tags = factory.LazyFunction(lambda: ["a", "b"])
    amount = Decimal("9.99")
    notes = "long notes, never loaded by the repository"
    owner = factory.SubFactory(OwnerFactory)
    reviewer = None

    class Params:
        deleted = factory.Trait(deleted_at=factory.LazyFunction(timezone.now))


class GadgetFactory(DjangoModelFactory):
    class Meta:
        model = Gadget

    name = factory.Sequence(lambda n: f"Gadget {n}")
    specs = factory.LazyFunction(lambda: {"volts": 230, "ratio": 0.5, "tags": ["x"]})
    price = Money(Decimal("19.90"))


class TrackedItemFactory(DjangoModelFactory):
    class Meta:
        model = TrackedItem

    name = factory.Sequence(lambda n: f"Item {n}")
    quantity = 3
    labels = factory.LazyFunction(lambda: ["new"])


class TenantNoteFactory(DjangoModelFactory):
    class Meta:
        model = TenantNote

    tenant = 1
    title = factory.Sequence(lambda n: f"Note {n}")


class ShelfFactory(DjangoModelFactory):
    class Meta:
        model = Shelf

    name = factory.Sequence(lambda n: f"Shelf {n}")


class BookFactory(DjangoModelFactory):
    class Meta:
        model = Book

    shelf = factory.SubFactory(ShelfFactory)
    title = factory.Sequence(lambda n: f"Book {n}")
    pages = 120
