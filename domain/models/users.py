"""The user account, the project's AUTH_USER_MODEL; people log in by email."""

from __future__ import annotations

from typing import ClassVar

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from domain.models.base import SoftDeleteModel
from domain.querysets import UserManager, UserQuerySet


class User(SoftDeleteModel, AbstractBaseUser, PermissionsMixin):
    """An account. Soft-deleted users keep their rows, but free their email for reuse."""

    email = models.EmailField(max_length=254)
    email_verified = models.BooleanField(default=False, db_default=False)
    first_name = models.CharField(max_length=150, blank=True, default="", db_default="")
    last_name = models.CharField(max_length=150, blank=True, default="", db_default="")
    avatar_url = models.URLField(max_length=500, blank=True, default="", db_default="")
    is_active = models.BooleanField(default=True, db_default=True)
    is_staff = models.BooleanField(default=False, db_default=False)

    objects: ClassVar[UserManager] = UserManager()
    all_objects: ClassVar[models.Manager[User]] = UserQuerySet.as_manager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        # Django's own auth.User pattern: when the project's AUTH_USER_MODEL is another
        # model, this one is swapped out (no table, no reverse accessors, no clash).
        swappable = "AUTH_USER_MODEL"
        db_table = "users"
        constraints = [
            # Unique case-insensitively among live users only: a deleted user's email can
            # register again.
            models.UniqueConstraint(
                Lower("email"),
                condition=Q(deleted_at__isnull=True),
                name="users_email_live_uniq",
                violation_error_message="A live user with this email already exists.",
            ),
            models.CheckConstraint(condition=~Q(email=""), name="users_email_not_empty"),
        ]
        indexes = [
            models.Index(fields=["created_at", "id"], name="users_created_idx"),
            models.Index(fields=["last_name", "id"], name="users_last_name_idx"),
        ]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email

    def get_short_name(self) -> str:
        return self.first_name or self.email
