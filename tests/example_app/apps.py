"""The test-only example app (installed by config.settings only when TESTING)."""

from __future__ import annotations

from django.apps import AppConfig


class ExampleAppConfig(AppConfig):
    name = "tests.example_app"
    label = "example_app"
    default_auto_field = "django.db.models.BigAutoField"
