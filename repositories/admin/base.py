"""The admin's shared parts: audited writes, soft delete actions, view-only tables.

Design rules followed by every ModelAdmin here:

- Changelists never run a query per row: every foreign key shown in `list_display` is in
  `list_select_related`, and inlines select their foreign keys. `show_full_result_count`
  is off on the large tables (it costs a second `COUNT(*)` of the whole table).
- Search and filters are answered by indexes. Django's `search_fields` always generate
  `UPPER(col) LIKE UPPER('%term%')` or `UPPER(col) = UPPER(term)`, which no btree index can
  serve, so the large tables override `get_search_results` with exact lookups on indexed
  expressions (`lower(email)`, `orders.number`, the product full-text GIN index). Filters
  use fixed choices, not `AllValuesFieldListFilter` (a `SELECT DISTINCT` over the table).
- Soft-deletable models (User, Category, Product) list every row (`all_objects`) with a
  "deleted" marker column placed early (visible without scrolling), a live/deleted filter
  and "soft delete" / "restore" actions that go through the repositories, so those writes
  are audited like any other, and are also noted in each row's admin History. Bulk hard
  delete is not offered for them.
- Every other write an admin action makes (order status changes, stock adjustments) also
  goes through a repository; its errors become admin messages, never a server error.
- The admin's own writes (add, change, delete) are audited like repository writes, and a
  change bumps `version`, so optimistic-locking callers notice it (AuditedAdmin).
- Tables whose rows the repositories keep consistent (orders and their items and history,
  the stock ledger, the audit log) are view-only: editing an order's status here would skip
  its history row and stock return, editing the ledger would break `stock == sum(delta)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from domain.models import (
    Category,
    User,
)
from repositories.categories import CategoryRepository
from repositories.core.audit import (
    AuditEntry,
    audit_context,
    diff,
    entity_type_of,
    record,
    snapshot,
)
from repositories.errors import RepositoryError
from repositories.products import ProductRepository
from repositories.users import UserRepository

__all__ = [
    "AUDITED_ENTITY_TYPES",
    "AUDIT_ACTIONS",
    "AuditedAdmin",
    "LiveStateFilter",
    "SoftDeleteAdmin",
    "ViewOnlyAdminMixin",
    "acting",
    "note_in_history",
    "restore_selected",
    "soft_delete_selected",
]

#: Actions the repositories write to the audit log (fixed list: no SELECT DISTINCT).
AUDIT_ACTIONS = (
    "created",
    "updated",
    "deleted",
    "soft_deleted",
    "restored",
    "status_changed",
    "stock_adjusted",
    "sessions_revoked",
)

#: Entity types the repositories audit (`_meta.model_name` of each aggregate).
AUDITED_ENTITY_TYPES = ("category", "order", "product", "systemconfig", "user", "usersession")


# --- soft delete ---------------------------------------------------------------------------


class LiveStateFilter(admin.SimpleListFilter):
    """Live rows (deleted_at IS NULL) or soft-deleted ones; all rows when unset."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "Live"), ("deleted", "Deleted")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "live":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "deleted":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


def _repository_for(model: type[Model]) -> Any:
    """Return the repository that soft-deletes and restores rows of `model`."""
    if model is User:
        return UserRepository()
    return CategoryRepository() if model is Category else ProductRepository()


@contextmanager
def acting(request: HttpRequest) -> Iterator[None]:
    """Attribute audit rows written in this block to the admin user and their address.

    AuditContextMiddleware does the same for every request; this keeps the admin's
    writes attributed when a project installs the admin without that middleware.
    """
    actor = request.user if request.user.is_authenticated else None
    with audit_context(actor=actor, ip_address=request.META.get("REMOTE_ADDR")):
        yield


def note_in_history(request: HttpRequest, rows: list[Any], message: str) -> None:
    """Add `message` to the admin History of each row (one INSERT for all of them)."""
    if rows and request.user.is_authenticated:
        LogEntry.objects.log_actions(
            user_id=request.user.pk, queryset=rows, action_flag=CHANGE, change_message=message
        )


def _run_for_each(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    verb: str,
    call: Callable[[Any, Any], object],
) -> None:
    """Call the repository for every selected row; report successes and each failure.

    One repository call (one short transaction, one audit row) per selected row; the
    rows it changed are then noted in their admin History ("Soft deleted.", "Restored.").
    """
    repository = _repository_for(modeladmin.model)
    done = []
    with acting(request):
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                call(repository, pk)
            except RepositoryError as exc:
                modeladmin.message_user(request, f"{pk}: {exc}", messages.ERROR)
            else:
                done.append(pk)
    if done:
        rows = list(modeladmin.model._base_manager.filter(pk__in=done).order_by("pk"))
        note_in_history(request, rows, f"{verb}.")
        name = modeladmin.model._meta.verbose_name_plural if len(done) > 1 else None
        label = name or modeladmin.model._meta.verbose_name
        modeladmin.message_user(request, f"{verb} {len(done)} {label}.", messages.SUCCESS)


@admin.action(description="Soft delete selected rows")
def soft_delete_selected(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> None:
    """Soft-delete each selected row through its repository (audited)."""
    _run_for_each(modeladmin, request, queryset, "Soft-deleted", lambda r, pk: r.soft_delete(pk))


@admin.action(description="Restore selected rows")
def restore_selected(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> None:
    """Restore each selected soft-deleted row through its repository (audited)."""
    _run_for_each(modeladmin, request, queryset, "Restored", lambda r, pk: r.restore(pk))


class AuditedAdmin(admin.ModelAdmin):
    """Audit the admin's own writes like repository writes, and keep versions honest.

    Saving a change locks the row (the admin view runs in a transaction), bumps
    `version` and `updated_at` where the model has them, so a repository caller holding
    the old version gets a StaleObjectError, and records "created" / "updated" (field
    diff) / "deleted" rows, secrets redacted, through repositories.core.audit.
    """

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:

        # The admin's change view already runs in a transaction; this one makes the lock
        # and the audit row safe for any other caller of save_model too.
        with transaction.atomic(), acting(request):
            before = self._lock_and_bump(obj) if change else {}
            super().save_model(request, obj, form, change)
            changes = diff(before, snapshot(obj)) if change else snapshot(obj)
            if changes:
                action = "updated" if change else "created"
                record([AuditEntry(action, entity_type_of(obj), str(obj.pk), changes)])

    @staticmethod
    def _lock_and_bump(obj: Any) -> dict[str, Any]:
        """Lock the stored row, bump `version`/`updated_at` on `obj`; return the stored values."""

        current = type(obj)._base_manager.select_for_update().get(pk=obj.pk)
        if hasattr(obj, "version"):
            obj.version = current.version + 1
        if hasattr(obj, "updated_at"):
            obj.updated_at = timezone.now()
        return snapshot(current)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.delete_queryset(request, type(obj)._base_manager.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:

        with transaction.atomic(using=queryset.db), acting(request):
            # of=self: changelist querysets outer-join their list_select_related tables.
            rows = list(queryset.order_by("pk").select_for_update(of=("self",)))
            entries = [
                AuditEntry("deleted", entity_type_of(r), str(r.pk), snapshot(r)) for r in rows
            ]
            queryset.model._base_manager.filter(pk__in=[r.pk for r in rows]).delete()
            record(entries, using=queryset.db)


class SoftDeleteAdmin(AuditedAdmin):
    """Changelist over every row (`all_objects`), with soft-delete and restore actions.

    Subclasses show `"deleted"` (the marker column) early in `list_display`.
    """

    actions: Sequence[Callable[..., Any]] = (soft_delete_selected, restore_selected)

    @admin.display(description="deleted", ordering="deleted_at")
    def deleted(self, obj: Any) -> SafeString | str:
        """Mark a soft-deleted row: "Deleted" and its date, the exact time on hover."""
        if obj.deleted_at is None:
            return ""
        at = timezone.localtime(obj.deleted_at)
        return format_html(
            '<strong class="deleted-marker" title="{}"'
            ' style="color: var(--error-fg, #ba2121); white-space: nowrap">Deleted {}</strong>',
            date_format(at, "DATETIME_FORMAT"),
            date_format(at, "Y-m-d"),
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = self.model.all_objects.all()
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # These rows are retired by soft delete; a hard delete stays possible one row at a
        # time from its change page (audited), not in bulk from the list.
        actions.pop("delete_selected", None)
        return actions


class ViewOnlyAdminMixin:
    """No add, change or delete: rows are written by the repositories only."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
