"""App configuration for the repository layer."""

from django.apps import AppConfig


class RepositoriesConfig(AppConfig):
    name = "repositories"
    verbose_name = "Repositories"

    def ready(self) -> None:
        """Wire query instrumentation on every database connection."""
        from repositories.core import instrumentation

        instrumentation.install()
