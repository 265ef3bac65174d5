"""The test-only parity app (installed by config.settings only when TESTING)."""

from __future__ import annotations

from django.apps import AppConfig


class ParityAppConfig(AppConfig):
    name = "tests.parity_app"
    label = "parity_app"
    default_auto_field = "django.db.models.BigAutoField"
