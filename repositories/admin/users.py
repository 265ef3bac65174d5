"""Admin pages for users: email login, soft delete, search by email and name."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Field as DbField
from django.db.models import Q, QuerySet, URLField
from django.http import HttpRequest

from domain.models import (
    User,
)
from domain.querysets import UserQuerySet
from repositories.admin.base import (
    LiveStateFilter,
    SoftDeleteAdmin,
)
from repositories.core.keys import parse_uuid

__all__ = ["UserAdmin"]

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
        "deleted",
        "is_active",
        "email_verified",
        "is_staff",
        "created_at",
    )
    list_filter = (LiveStateFilter, "is_active", "is_staff", "is_superuser", "email_verified")
    # Searched by get_search_results below; declared so the search box is shown.
    search_fields = ("email",)
    search_help_text = (
        'A whole email (any case), the start of names or of an email ("ada love", '
        '"demo.user.1"), or a user id.'
    )
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
        # A whole email: lower(email) = lower(term), the expression of the unique index
        # users_email_live_uniq (live users; deleted ones are found by their id). A UUID:
        # the primary key. Otherwise every word must start the first name, the last name or
        # the email, in any case: a read of the users table (a trigram index would need
        # pg_trgm, which the embedded PostgreSQL lacks).
        term = search_term.strip()
        if not term:
            return queryset, False
        if key := parse_uuid(term):
            return queryset.filter(pk=key), False
        if "@" in term:
            return cast(UserQuerySet, queryset).with_email(term), False
        for word in term.split()[:4]:
            queryset = queryset.filter(
                Q(first_name__istartswith=word)
                | Q(last_name__istartswith=word)
                | Q(email__istartswith=word)
            )
        return queryset, False
