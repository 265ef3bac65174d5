"""System configuration: JSON values by key, with optimistic locking."""

from __future__ import annotations

import re
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from domain.models.base import MutableModel, VersionedModel

#: Configuration keys whose values are secrets (matched anywhere, any case).
SECRET_KEY_NAME = re.compile(r"secret|token|password|passwd|api[_.-]?key|credential", re.I)


class SystemConfig(MutableModel, VersionedModel):
    """One configuration entry; writers must name the version they read."""

    key = models.CharField(max_length=128, unique=True)
    value = models.JSONField(null=True, blank=True)
    description = models.TextField(blank=True, default="", db_default="")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects: ClassVar[models.Manager[SystemConfig]] = models.Manager()

    class Meta:
        db_table = "system_config"
        verbose_name = "system configuration entry"
        verbose_name_plural = "system configuration"
        constraints = [
            models.CheckConstraint(
                condition=Q(key__regex=r"^[A-Za-z0-9_.:-]+$"), name="system_config_key_format"
            ),
        ]

    def __str__(self) -> str:
        return self.key

    def audit_redacted_fields(self) -> tuple[str, ...]:
        """Return the fields an audit trail must store redacted: the value of an entry
        whose key names a secret (`smtp.password`, `api.token`). Without the key loaded
        the value counts as secret (never reads the database)."""
        key = self.__dict__.get("key")
        if not isinstance(key, str) or SECRET_KEY_NAME.search(key):
            return ("value",)
        return ()
