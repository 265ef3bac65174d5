"""Small models, each exercising one thing a repository read must load exactly as the ORM.

- Owner: a UUID primary key and a custom field (`MoneyField`, cents in a bigint column
  loading as a `Money` value object).
- Widget: an integer (BigAutoField) key, a JSONField, a custom field with `from_db_value`
  (`CommaSeparatedField`), a DecimalField, a required and a nullable foreign key (joined by
  its repository with `select_related`), a column its repository defers (`notes`), soft
  delete (`deleted_at`), `version`, and an `auto_now` `updated_at` that save() rewrites.
- Gadget: a schema-qualified table (`"parity_schema"."gadget"`), JSON and money columns.
- TrackedItem: a `__setattr__` override recording which fields changed after loading.
- TenantNote: a default manager filtering by a context variable (the current tenant).
- Shelf / Book: a default manager that prefetches a reverse relation (`books`).
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from django.conf import settings
from django.db import models

# --- custom fields -------------------------------------------------------------------------


@dataclass(frozen=True)
class Money:
    """An amount of money to the cent (equal when the amounts are equal)."""

    amount: Decimal

    @classmethod
    def from_cents(cls, cents: int) -> Money:
        return cls(Decimal(cents).scaleb(-2))

    @property
    def cents(self) -> int:
        return int(self.amount.scaleb(2).to_integral_exact())


class MoneyField(models.Field):
    """A `Money` stored as whole cents in a bigint column."""

    description = "An amount of money, stored in cents"

    def get_internal_type(self) -> str:
        return "BigIntegerField"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Money | None:
        return None if value is None else Money.from_cents(value)

    def to_python(self, value: Any) -> Money | None:
        if value is None or isinstance(value, Money):
            return value
        return Money(Decimal(str(value)))

    def get_prep_value(self, value: Any) -> int | None:
        # Strict on purpose: a raw number is not money, so a value that skipped
        # from_db_value cannot be written back silently.
        if value is None:
            return None
        if not isinstance(value, Money):
            raise TypeError(f"MoneyField takes a Money, not {type(value).__name__}.")
        return value.cents


class CommaSeparatedField(models.Field):
    """A list of strings stored as "a,b,c" in a text column ("" is the empty list)."""

    description = "A list of strings without commas"

    def get_internal_type(self) -> str:
        return "TextField"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> list[str] | None:
        if value is None:
            return None
        return value.split(",") if value else []

    def to_python(self, value: Any) -> list[str] | None:
        if value is None or isinstance(value, list):
            return value
        if isinstance(value, tuple):
            return list(value)
        return str(value).split(",") if value else []

    def get_prep_value(self, value: Any) -> str | None:
        # Strict on purpose: a string that skipped from_db_value is refused, not re-stored.
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            raise TypeError(f"CommaSeparatedField takes a list, not {type(value).__name__}.")
        return ",".join(value)


# --- models --------------------------------------------------------------------------------


class Owner(models.Model):
    """A UUID-keyed row with a custom (money) field; the target of Widget's keys."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    balance = MoneyField()

    def __str__(self) -> str:
        return self.name


class LiveWidgetManager(models.Manager["Widget"]):
    """Widgets that are not soft-deleted."""

    def get_queryset(self) -> models.QuerySet[Widget]:
        return super().get_queryset().filter(deleted_at__isnull=True)


class Widget(models.Model):
    """Integer key, JSON, a custom list field, a decimal, two foreign keys, soft delete."""

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=100)
    payload = models.JSONField(default=dict, blank=True)
    tags = CommaSeparatedField(default=list, blank=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    notes = models.TextField(blank=True, default="")
    owner = models.ForeignKey(Owner, on_delete=models.PROTECT, related_name="widgets")
    reviewer = models.ForeignKey(
        Owner, null=True, blank=True, on_delete=models.SET_NULL, related_name="reviewed_widgets"
    )
    version = models.PositiveIntegerField(default=1)
    # Rewritten by every save() by design: the save round-trip test excludes it.
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = LiveWidgetManager()
    all_objects: ClassVar[models.Manager[Widget]] = models.Manager()

    def __str__(self) -> str:
        return self.name


class Gadget(models.Model):
    """A table in another schema: its db_table is a schema-qualified, quoted name."""

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=100)
    specs = models.JSONField(default=dict, blank=True)
    price = MoneyField()

    class Meta:
        db_table = '"parity_schema"."gadget"'

    def __str__(self) -> str:
        return self.name


_TRACKED_FIELDS = frozenset({"name", "quantity", "labels"})


class TrackedItem(models.Model):
    """Records, through `__setattr__`, which fields were assigned a new value after loading.

    Nothing is recorded while the instance is being built (`_state.adding` is still True
    then, also for instances loaded from the database), nor for assignments of the value
    the field already holds, so a freshly loaded or refreshed instance has no changes.
    """

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=100)
    quantity = models.IntegerField(default=0)
    labels = CommaSeparatedField(default=list, blank=True)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _TRACKED_FIELDS:
            state = self.__dict__.get("_state")
            if (
                state is not None
                and not state.adding
                and name in self.__dict__
                and self.__dict__[name] != value
            ):
                self.__dict__.setdefault("_changed_fields", set()).add(name)
        super().__setattr__(name, value)

    @property
    def changed_fields(self) -> frozenset[str]:
        return frozenset(self.__dict__.get("_changed_fields", ()))

    def __str__(self) -> str:
        return self.name


#: The tenant whose rows TenantNote.objects returns (None: no tenant, no rows).
current_tenant: ContextVar[int | None] = ContextVar("parity_current_tenant", default=None)


class TenantManager(models.Manager["TenantNote"]):
    """The current tenant's notes, as `current_tenant` holds it when the query is built."""

    def get_queryset(self) -> models.QuerySet[TenantNote]:
        return super().get_queryset().filter(tenant=current_tenant.get())


class TenantNote(models.Model):
    id = models.BigAutoField(primary_key=True)
    tenant = models.PositiveIntegerField()
    title = models.CharField(max_length=100)

    objects = TenantManager()
    all_tenants: ClassVar[models.Manager[TenantNote]] = models.Manager()

    class Meta:
        default_manager_name = "objects"

    def __str__(self) -> str:
        return self.title


class ShelfManager(models.Manager["Shelf"]):
    """Shelves with their books prefetched."""

    def get_queryset(self) -> models.QuerySet[Shelf]:
        return super().get_queryset().prefetch_related("books")


class Shelf(models.Model):
    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=100)

    objects = ShelfManager()

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    id = models.BigAutoField(primary_key=True)
    shelf = models.ForeignKey(Shelf, on_delete=models.CASCADE, related_name="books")
    title = models.CharField(max_length=100)
    pages = models.PositiveIntegerField()

    class Meta:
        ordering = ("title", "id")

    def __str__(self) -> str:
        return self.title


class TrailEntry(models.Model):
    """An audit model of another app (REPOSITORIES["AUDIT_MODEL"]): the documented fields,
    an integer key, a text request id of another length."""

    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_repr = models.CharField(max_length=254, blank=True, default="")
    action = models.CharField(max_length=32)
    entity_type = models.CharField(max_length=64)
    entity_id = models.CharField(max_length=80)
    changes = models.JSONField(default=dict)
    request_id = models.CharField(max_length=100, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    objects: ClassVar[models.Manager[TrailEntry]] = models.Manager()

    def __str__(self) -> str:
        return f"{self.action} {self.entity_type} {self.entity_id}"
