"""Login sessions: only a SHA-256 hash of each token is stored."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from domain.models.base import MutableModel
from domain.querysets import UserSessionQuerySet


class UserSession(MutableModel):
    """A user's login session; the raw token is shown once and never stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sessions"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True, default="", db_default="")
    last_seen_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=200, blank=True, default="", db_default="")

    objects: ClassVar[models.Manager[UserSession]] = UserSessionQuerySet.as_manager()

    class Meta:
        db_table = "user_sessions"
        constraints = [
            models.CheckConstraint(
                condition=Q(token_hash__regex=r"^[0-9a-f]{64}$"),  # noqa: S106
                name="user_sessions_token_hash_sha256",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("created_at")),
                name="user_sessions_expiry_after_creation",
            ),
        ]
        indexes = [
            models.Index(
                fields=["user", "expires_at"],
                condition=Q(revoked_at__isnull=True),
                name="user_sessions_active_idx",
            ),
            models.Index(fields=["expires_at"], name="user_sessions_expires_idx"),
            models.Index(fields=["created_at", "user"], name="user_sessions_created_idx"),
        ]

    def __str__(self) -> str:
        return f"session of {self.user_id}"
