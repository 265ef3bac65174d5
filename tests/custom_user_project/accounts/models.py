"""A project's own user model, as unlike domain.User as a login model gets.

A text primary key, a soft-delete `deleted_at` (its default manager hides deleted rows,
as repositories expect of any soft-deletable model), no `is_active` field
(AbstractBaseUser's constant True), no names, no join date, no `email_verified`, emails
not unique.
"""

from __future__ import annotations

from typing import ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class LiveMembers(BaseUserManager["Member"]):
    def get_queryset(self) -> models.QuerySet[Member]:
        return super().get_queryset().filter(deleted_at__isnull=True)


class Member(AbstractBaseUser):
    handle = models.CharField(primary_key=True, max_length=40)
    email = models.EmailField(blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[LiveMembers] = LiveMembers()
    all_objects: ClassVar[models.Manager[Member]] = models.Manager()

    USERNAME_FIELD = "handle"
    EMAIL_FIELD = "email"

    def __str__(self) -> str:
        return self.handle
