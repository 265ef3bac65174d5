"""Admin pages for user sessions, the audit log and system configuration."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from domain.models import (
    AuditLog,
    SystemConfig,
    User,
    UserSession,
)
from repositories.admin.base import (
    AUDIT_ACTIONS,
    AUDITED_ENTITY_TYPES,
    AuditedAdmin,
    ViewOnlyAdminMixin,
)
from repositories.core.keys import parse_uuid

__all__ = ["AuditLogAdmin", "SystemConfigAdmin", "UserSessionAdmin"]

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

    list_display = ("user", "ip", "created_at", "last_seen_at", "expires_at", "revoked_at")
    list_select_related = ("user",)
    list_filter = (SessionStateFilter,)
    search_fields = ("user__email",)
    search_help_text = "A user's exact email, or a user id."
    ordering = ("-created_at", "-id")
    raw_id_fields = ("user",)
    fields = (
        "user",
        "ip",
        "user_agent",
        "created_at",
        "last_seen_at",
        "expires_at",
        "revoked_at",
        "revoked_reason",
        "token_hash",
        "updated_at",
    )
    readonly_fields = (
        "user",
        "token_hash",
        "ip",
        "user_agent",
        "created_at",
        "updated_at",
        "last_seen_at",
        "expires_at",
    )
    show_full_result_count = False

    @admin.display(description="IP address", ordering="ip_address")
    def ip(self, obj: UserSession) -> str:
        return obj.ip_address or ""

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


def _entity_label(entity_type: str) -> str:
    """Return the human name of an audited entity type ("systemconfig" → "System …")."""
    try:
        model = apps.get_model("domain", entity_type)
    except LookupError:
        return entity_type
    return str(model._meta.verbose_name).capitalize()


class AuditActionFilter(admin.SimpleListFilter):
    """Audit rows by action (audit_action_idx leads with action)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(a, a.replace("_", " ").capitalize()) for a in AUDIT_ACTIONS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(action=self.value()) if self.value() else queryset


class AuditEntityTypeFilter(admin.SimpleListFilter):
    """Audit rows by entity type (audit_entity_idx leads with entity_type)."""

    title = "entity type"
    parameter_name = "entity_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(n, _entity_label(n)) for n in AUDITED_ENTITY_TYPES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(entity_type=self.value()) if self.value() else queryset


@admin.register(AuditLog)
class AuditLogAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail: read only here, and append-only in the database."""

    list_display = (
        "occurred_at",
        "action_name",
        "entity_type",
        "entity",
        "actor_name",
        "request_id",
    )
    # actor_repr (a copy taken at write time) is shown instead of the actor FK: no join, and
    # it still reads right after the actor is gone.
    list_filter = (
        AuditActionFilter,
        AuditEntityTypeFilter,
        ("occurred_at", admin.DateFieldListFilter),
    )
    search_fields = ("entity_id",)
    search_help_text = (
        "The exact id of a product, order, user… (pick its entity type on the right for "
        "the fastest search)."
    )
    ordering = ("-occurred_at", "-id")  # audit_occurred_idx, scanned backwards
    fields = (
        "occurred_at",
        "action_name",
        "entity_type",
        "entity",
        "actor_name",
        "changes",
        "request_id",
        "ip",
        "created_at",
    )
    readonly_fields = ("action_name", "entity", "actor_name", "ip")
    show_full_result_count = False

    @admin.display(description="action", ordering="action")
    def action_name(self, obj: AuditLog) -> str:
        return obj.action.replace("_", " ")

    @admin.display(description="entity id")
    def entity(self, obj: AuditLog) -> SafeString | str:
        """The entity id, linked to its admin page when it has one (no query)."""
        try:
            url = reverse(f"admin:domain_{obj.entity_type}_change", args=[obj.entity_id])
        except NoReverseMatch:
            return obj.entity_id
        return format_html('<a href="{}">{}</a>', url, obj.entity_id)

    @admin.display(description="actor", ordering="actor_repr")
    def actor_name(self, obj: AuditLog) -> str:
        """Who acted, as recorded then (an email, or the command that wrote the row)."""
        return obj.actor_repr

    @admin.display(description="IP address")
    def ip(self, obj: AuditLog) -> str:
        return obj.ip_address or ""

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # entity_id equality is served by audit_entity_idx with an entity type, and by a
        # scan of the recent rows (audit_occurred_idx) without one.
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
