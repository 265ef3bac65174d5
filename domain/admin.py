"""Admin pages for inspecting the commerce schema.

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
  `deleted_at` column, a live/deleted filter and "soft delete" / "restore" actions that go
  through the repositories, so those writes are audited like any other. Bulk hard delete is
  not offered for them.
- The admin's own writes (add, change, delete) are audited like repository writes, and a
  change bumps `version`, so optimistic-locking callers notice it (AuditedAdmin).
- Tables whose rows the repositories keep consistent (orders and their items and history,
  the stock ledger, the audit log) are view-only: editing an order's status here would skip
  its history row and stock return, editing the ledger would break `stock == sum(delta)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.postgres.search import SearchQuery
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Field as DbField
from django.db.models import Model, Q, QuerySet, URLField
from django.http import HttpRequest
from django.utils import timezone

from domain.models import (
    AuditLog,
    Category,
    InventoryMovement,
    Order,
    OrderItem,
    OrderStatus,
    OrderStatusHistory,
    Product,
    SystemConfig,
    User,
    UserSession,
)
from domain.querysets import UserQuerySet
from repositories.core.errors import RepositoryError
from repositories.core.keys import parse_uuid

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
    """Return the repository that soft-deletes and restores rows of `model`.

    Imported here, not at module level: the admin must load even while a repository
    module is broken or half-written, and repositories import models, not the admin.
    """
    if model is User:
        from repositories.users import UserRepository

        return UserRepository()
    from repositories import CategoryRepository, ProductRepository

    return CategoryRepository() if model is Category else ProductRepository()


@contextmanager
def _acting(request: HttpRequest) -> Iterator[None]:
    """Attribute audit rows written in this block to the admin user and their address.

    AuditContextMiddleware does the same for every request; this keeps the admin's
    writes attributed when a project installs the admin without that middleware.
    """
    from repositories.core.audit import audit_context

    actor = request.user if request.user.is_authenticated else None
    with audit_context(actor=actor, ip_address=request.META.get("REMOTE_ADDR")):
        yield


def _run_for_each(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    verb: str,
    call: Callable[[Any, Any], object],
) -> None:
    """Call the repository for every selected row; report successes and each failure.

    One repository call (one short transaction, one audit row) per selected row.
    """
    repository = _repository_for(modeladmin.model)
    done = 0
    with _acting(request):
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                call(repository, pk)
            except RepositoryError as exc:
                modeladmin.message_user(request, f"{pk}: {exc}", messages.ERROR)
            else:
                done += 1
    if done:
        name = modeladmin.model._meta.verbose_name_plural if done > 1 else None
        label = name or modeladmin.model._meta.verbose_name
        modeladmin.message_user(request, f"{verb} {done} {label}.", messages.SUCCESS)


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
        from repositories.core.audit import AuditEntry, diff, entity_type_of, record, snapshot

        # The admin's change view already runs in a transaction; this one makes the lock
        # and the audit row safe for any other caller of save_model too.
        with transaction.atomic(), _acting(request):
            before = self._lock_and_bump(obj) if change else {}
            super().save_model(request, obj, form, change)
            changes = diff(before, snapshot(obj)) if change else snapshot(obj)
            if changes:
                action = "updated" if change else "created"
                record([AuditEntry(action, entity_type_of(obj), str(obj.pk), changes)])

    @staticmethod
    def _lock_and_bump(obj: Any) -> dict[str, Any]:
        """Lock the stored row, bump `version`/`updated_at` on `obj`; return the stored values."""
        from repositories.core.audit import snapshot

        current = type(obj)._base_manager.select_for_update().get(pk=obj.pk)
        if hasattr(obj, "version"):
            obj.version = current.version + 1
        if hasattr(obj, "updated_at"):
            obj.updated_at = timezone.now()
        return snapshot(current)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.delete_queryset(request, type(obj)._base_manager.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        from repositories.core.audit import AuditEntry, entity_type_of, record, snapshot

        with transaction.atomic(using=queryset.db), _acting(request):
            # of=self: changelist querysets outer-join their list_select_related tables.
            rows = list(queryset.order_by("pk").select_for_update(of=("self",)))
            entries = [
                AuditEntry("deleted", entity_type_of(r), str(r.pk), snapshot(r)) for r in rows
            ]
            queryset.model._base_manager.filter(pk__in=[r.pk for r in rows]).delete()
            record(entries, using=queryset.db)


class SoftDeleteAdmin(AuditedAdmin):
    """Changelist over every row (`all_objects`), with soft-delete and restore actions."""

    actions = (soft_delete_selected, restore_selected)

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


# --- users ---------------------------------------------------------------------------------


class UserCreationForm(AdminUserCreationForm):
    """Create a user from an email and a password (or an unusable password)."""

    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self) -> str:
        """Refuse an email a live user already has, ignoring case (as the database does)."""
        email = User.objects.normalize_email(self.cleaned_data["email"]).strip()
        if User.objects.with_email(email).exists():
            raise DjangoValidationError("A live user with this email already exists.")
        return email


def _https_formfield(field: DbField[Any, Any], **kwargs: Any) -> forms.Field | None:
    """Build a form field; URLs typed without a scheme are taken as https (Django 6's default)."""
    if isinstance(field, URLField):
        kwargs.setdefault("assume_scheme", "https")
    return field.formfield(**kwargs)


class UserEditForm(UserChangeForm):
    """Edit a user; the password is shown as its hash summary with a link to change it."""

    class Meta:
        model = User
        fields = "__all__"
        field_classes: ClassVar[dict[str, Any]] = {}
        formfield_callback = _https_formfield

    def clean_email(self) -> str:
        """Refuse an email another live user has, ignoring case."""
        email = User.objects.normalize_email(self.cleaned_data["email"]).strip()
        clash = User.objects.with_email(email).exclude(pk=self.instance.pk)
        if self.instance.deleted_at is None and clash.exists():
            raise DjangoValidationError("A live user with this email already exists.")
        return email


@admin.register(User)
class UserAdmin(SoftDeleteAdmin, DjangoUserAdmin):
    """Users, live and soft-deleted; log in and search by email."""

    form = UserEditForm
    add_form = UserCreationForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "avatar_url")}),
        (
            "Permissions",
            {
                "fields": (
                    "is_active",
                    "email_verified",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                )
            },
        ),
        ("Dates", {"fields": ("last_login", "created_at", "updated_at", "deleted_at")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )
    readonly_fields = ("last_login", "created_at", "updated_at", "deleted_at")
    list_display = (
        "email",
        "first_name",
        "last_name",
        "is_active",
        "email_verified",
        "is_staff",
        "created_at",
        "deleted_at",
    )
    list_filter = (LiveStateFilter, "is_active", "is_staff", "is_superuser", "email_verified")
    # Searched by get_search_results below; declared so the search box is shown.
    search_fields = ("email",)
    search_help_text = "Exact email (any case), exact last name, or a user id."
    ordering = ("-created_at", "-id")  # users_created_idx, scanned backwards
    show_full_result_count = False

    def formfield_for_dbfield(
        self, db_field: DbField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        # As in UserEditForm: the admin builds its form with this callback instead.
        if isinstance(db_field, URLField):
            kwargs.setdefault("assume_scheme", "https")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # lower(email) = lower(term) is the expression of users_email_live_uniq; last_name
        # equality uses users_last_name_idx; a UUID hits the primary key.
        term = search_term.strip()
        if not term:
            return queryset, False
        if key := parse_uuid(term):
            return queryset.filter(pk=key), False
        if "@" in term:
            return cast(UserQuerySet, queryset).with_email(term), False
        return queryset.filter(last_name=term), False


# --- catalog -------------------------------------------------------------------------------


@admin.register(Category)
class CategoryAdmin(SoftDeleteAdmin):
    """The category tree; moving a category under its own descendant is refused by the DB."""

    list_display = ("name", "slug", "parent", "created_at", "deleted_at")
    list_select_related = ("parent",)
    list_filter = (LiveStateFilter,)
    # Small table (tens of rows): a substring search over name is cheap; slug also has a
    # plain btree index for exact matches.
    search_fields = ("name", "=slug")
    ordering = ("name", "id")  # categories_name_idx
    prepopulated_fields = {"slug": ("name",)}
    raw_id_fields = ("parent",)
    readonly_fields = ("created_at", "updated_at", "deleted_at")


@admin.register(Product)
class ProductAdmin(SoftDeleteAdmin):
    """Products; stock is read-only here because only ledger movements may change it."""

    list_display = (
        "sku",
        "name",
        "category",
        "price",
        "currency",
        "stock_quantity",
        "is_active",
        "created_at",
        "deleted_at",
    )
    list_select_related = ("category",)
    # Categories are few, so the category filter's choice list is one small query.
    list_filter = (LiveStateFilter, "is_active", "currency", "category")
    search_fields = ("sku",)
    search_help_text = "Words of the name, SKU or description (full-text), or a product id."
    ordering = ("-created_at", "-id")  # products_created_idx, scanned backwards
    raw_id_fields = ("category",)
    fields = (
        "sku",
        "name",
        "description",
        "category",
        "price",
        "currency",
        "is_active",
        "stock_quantity",
        "version",
        "created_at",
        "updated_at",
        "deleted_at",
    )
    readonly_fields = ("stock_quantity", "version", "created_at", "updated_at", "deleted_at")
    show_full_result_count = False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # The generated search_vector mixes the english (name, description) and simple (sku)
        # configurations, so the term is parsed both ways; `@@` is answered by the GIN index
        # products_search_gin. (The sku btree index is partial on live rows, so it cannot
        # serve this changelist, which lists deleted rows too.)
        term = search_term.strip()
        if not term:
            return queryset, False
        if key := parse_uuid(term):
            return queryset.filter(pk=key), False
        query = SearchQuery(term, config="english", search_type="websearch") | SearchQuery(
            term, config="simple", search_type="websearch"
        )
        return queryset.filter(search_vector=query), False


@admin.register(InventoryMovement)
class InventoryMovementAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """The stock ledger, append-only: view only."""

    list_display = ("created_at", "product", "delta", "reason", "order")
    list_select_related = ("product", "order")
    list_filter = ("reason",)
    search_fields = ("product__id",)
    search_help_text = "A product id or an order id."
    ordering = ("-created_at", "-id")
    show_full_result_count = False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # Both keys have an index (inventory_product_idx, inventory_order_idx).
        key = parse_uuid(search_term)
        if key is None:
            return (queryset.none() if search_term.strip() else queryset), False
        return queryset.filter(Q(product_id=key) | Q(order_id=key)), False


# --- orders --------------------------------------------------------------------------------


class OrderItemInline(admin.TabularInline):
    """The order's lines, as snapshotted at purchase."""

    model = OrderItem
    fields = ("product", "sku", "product_name", "unit_price", "quantity", "line_total")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderItem]:
        # The product link is rendered from the row: load it in the same query.
        return super().get_queryset(request).select_related("product").order_by("sku", "id")


class OrderStatusHistoryInline(admin.TabularInline):
    """The order's status transitions, oldest first."""

    model = OrderStatusHistory
    fields = ("created_at", "from_status", "to_status", "actor", "note")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderStatusHistory]:
        return super().get_queryset(request).select_related("actor").order_by("created_at", "id")


class OrderStatusFilter(admin.SimpleListFilter):
    """Orders by status (orders_status_idx leads with status)."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(s.value, str(s.label)) for s in OrderStatus]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(status=self.value()) if self.value() else queryset


@admin.register(Order)
class OrderAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """Orders with their items and status history; status changes go through the repository."""

    list_display = ("number", "user", "status", "total", "currency", "placed_at", "version")
    list_select_related = ("user",)
    list_filter = (OrderStatusFilter, ("placed_at", admin.DateFieldListFilter))
    search_fields = ("number",)
    search_help_text = "An exact order number, a customer's exact email, or an order id."
    ordering = ("-placed_at", "-id")  # orders_placed_idx, scanned backwards
    inlines = (OrderItemInline, OrderStatusHistoryInline)
    show_full_result_count = False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # number = term uses the unique index orders_number_key; an email finds the live
        # user by lower(email) and then their orders through orders_user_placed_idx.
        term = search_term.strip()
        if not term:
            return queryset, False
        if key := parse_uuid(term):
            return queryset.filter(pk=key), False
        if "@" in term:
            return queryset.filter(user__in=User.objects.with_email(term).values("pk")), False
        return queryset.filter(number=term.upper()), False


class OrderChildAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """View-only rows that belong to an order, searched by the order's exact number.

    orders_number_key finds the order; the child table's index leading with order_id
    (order_items_one_per_product, order_history_order_idx) finds its rows.
    """

    search_fields = ("order__number",)
    search_help_text = "An exact order number."

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(order__number=term.upper()), False


@admin.register(OrderItem)
class OrderItemAdmin(OrderChildAdmin):
    """Order lines (snapshots); view only."""

    list_display = ("order", "sku", "product_name", "product", "unit_price", "quantity")
    list_select_related = ("order", "product")
    ordering = ("-created_at", "-id")
    show_full_result_count = False


@admin.register(OrderStatusHistory)
class OrderStatusHistoryAdmin(OrderChildAdmin):
    """Every status transition of every order; view only."""

    list_display = ("created_at", "order", "from_status", "to_status", "actor", "note")
    list_select_related = ("order", "actor")
    list_filter = ("to_status",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False


# --- sessions, audit, configuration --------------------------------------------------------


class SessionStateFilter(admin.SimpleListFilter):
    """Active (not revoked, not expired), expired or revoked sessions."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "active":
            return queryset.active()  # type: ignore[attr-defined]
        if self.value() == "expired":
            return queryset.expired()  # type: ignore[attr-defined]
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(UserSession)
class UserSessionAdmin(AuditedAdmin):
    """Login sessions. Sessions are created by logging in, so there is no add page; the
    revocation fields are the only editable ones."""

    list_display = ("user", "ip_address", "created_at", "last_seen_at", "expires_at", "revoked_at")
    list_select_related = ("user",)
    list_filter = (SessionStateFilter,)
    search_fields = ("user__email",)
    search_help_text = "A user's exact email, or a user id."
    ordering = ("-created_at", "-id")
    raw_id_fields = ("user",)
    readonly_fields = (
        "user",
        "token_hash",
        "ip_address",
        "user_agent",
        "created_at",
        "updated_at",
        "last_seen_at",
        "expires_at",
    )
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # Through user_sessions_user_id index; the email through lower(email).
        term = search_term.strip()
        if not term:
            return queryset, False
        if key := parse_uuid(term):
            return queryset.filter(user_id=key), False
        return queryset.filter(user__in=User.objects.with_email(term).values("pk")), False


class AuditActionFilter(admin.SimpleListFilter):
    """Audit rows by action (audit_action_idx leads with action)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(a, a.replace("_", " ")) for a in AUDIT_ACTIONS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(action=self.value()) if self.value() else queryset


class AuditEntityTypeFilter(admin.SimpleListFilter):
    """Audit rows by entity type (audit_entity_idx leads with entity_type)."""

    title = "entity type"
    parameter_name = "entity_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(n, n) for n in AUDITED_ENTITY_TYPES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(entity_type=self.value()) if self.value() else queryset


@admin.register(AuditLog)
class AuditLogAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail: read only here, and append-only in the database."""

    list_display = ("occurred_at", "action", "entity_type", "entity_id", "actor_repr", "request_id")
    # actor_repr (a copy taken at write time) is shown instead of the actor FK: no join, and
    # it still reads right after the actor is gone.
    list_filter = (
        AuditActionFilter,
        AuditEntityTypeFilter,
        ("occurred_at", admin.DateFieldListFilter),
    )
    search_fields = ("entity_id",)
    search_help_text = "An exact entity id (with the entity-type filter: audit_entity_idx)."
    ordering = ("-occurred_at", "-id")  # audit_occurred_idx, scanned backwards
    show_full_result_count = False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        return (queryset.filter(entity_id=term) if term else queryset), False


@admin.register(SystemConfig)
class SystemConfigAdmin(AuditedAdmin):
    """Configuration entries; each save bumps the optimistic-lock version (AuditedAdmin)."""

    list_display = ("key", "value", "version", "updated_by", "updated_at")
    list_select_related = ("updated_by",)
    # Small table; the key also has a unique btree index for exact matches.
    search_fields = ("key", "description")
    ordering = ("key",)
    readonly_fields = ("version", "updated_by", "created_at", "updated_at")
    fields = ("key", "value", "description", *readonly_fields)

    def save_model(self, request: HttpRequest, obj: SystemConfig, form: Any, change: bool) -> None:
        if request.user.is_authenticated:
            obj.updated_by_id = request.user.pk
        super().save_model(request, obj, form, change)
