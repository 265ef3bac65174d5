"""App configuration for the commerce schema."""

from django.apps import AppConfig


class DomainConfig(AppConfig):
    name = "domain"
    verbose_name = "Commerce domain"
    default_auto_field = "django.db.models.BigAutoField"
