"""QuerySets and the managers built from them: live rows by default, all rows on request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self, TypeVar

from django.contrib.auth.base_user import BaseUserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

if TYPE_CHECKING:
    from domain.models import User

_M = TypeVar("_M", bound=models.Model)


class SoftDeleteQuerySet(models.QuerySet[_M]):
    """Rows of a soft-deletable table."""

    def alive(self) -> Self:
        return self.filter(deleted_at__isnull=True)

    def deleted(self) -> Self:
        return self.filter(deleted_at__isnull=False)

    def soft_delete(self) -> int:
        """Mark every row deleted now; return the number of rows touched."""
        now = timezone.now()
        return self.update(deleted_at=now, updated_at=now)


class LiveManager(models.Manager[_M]):
    """The default manager: hides soft-deleted rows (related managers inherit this)."""

    def get_queryset(self) -> models.QuerySet[_M]:
        return super().get_queryset().filter(deleted_at__isnull=True)


class UserQuerySet(SoftDeleteQuerySet["User"]):
    def active(self) -> Self:
        return self.filter(is_active=True)

    def with_email(self, email: str) -> Self:
        """Filter by email, case-insensitively, through the lower(email) index."""
        return self.alias(email_lower=Lower("email")).filter(email_lower=email.strip().lower())


class UserManager(BaseUserManager["User"]):
    """Live users; creates users and superusers that log in by email."""

    def get_queryset(self) -> UserQuerySet:
        return UserQuerySet(self.model, using=self._db).alive()

    def with_email(self, email: str) -> UserQuerySet:
        """Live users with this email, compared case-insensitively."""
        return self.get_queryset().with_email(email)

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get_queryset().with_email(username or "").get()

    def _create(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).strip(), **extra)
        # Checked first so that `createsuperuser` (which shows a ValidationError's message)
        # reports a taken email in words; the unique index still decides under a race.
        if self.with_email(user.email).exists():
            raise ValidationError({"email": "A live user with this email already exists."})
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create(email, password, **extra)


class CategoryQuerySet(SoftDeleteQuerySet[Any]):
    def roots(self) -> Self:
        return self.filter(parent__isnull=True)


class ProductQuerySet(SoftDeleteQuerySet[Any]):
    def active(self) -> Self:
        return self.filter(is_active=True)

    def for_category(self, category_id: Any) -> Self:
        return self.filter(category_id=category_id)

    def with_category(self) -> Self:
        return self.select_related("category")


class OrderQuerySet(models.QuerySet[Any]):
    def for_user(self, user_id: Any) -> Self:
        return self.filter(user_id=user_id)

    def with_items(self) -> Self:
        return self.prefetch_related("items__product")

    def revenue_bearing(self) -> Self:
        """Orders whose money counts as revenue: paid, shipped or delivered."""
        return self.filter(status__in=("paid", "shipped", "delivered"))


class UserSessionQuerySet(models.QuerySet[Any]):
    def active(self) -> Self:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, expires_at__gt=now)

    def expired(self) -> Self:
        return self.filter(expires_at__lte=timezone.now())

    def for_user(self, user_id: Any) -> Self:
        return self.filter(user_id=user_id)
