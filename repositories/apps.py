"""App configuration for the repository layer."""

from django.apps import AppConfig


class RepositoriesConfig(AppConfig):
    name = "repositories"
    verbose_name = "Repositories"

    def ready(self) -> None:
        """Wire query instrumentation and fast loaders on every database connection."""
        from repositories import adapters, instrumentation

        instrumentation.install()
        adapters.install()
