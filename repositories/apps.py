"""App configuration for the repository layer."""

from django.apps import AppConfig


class RepositoriesConfig(AppConfig):
    name = "repositories"
    verbose_name = "Repositories"

    def ready(self) -> None:
        """Wire query instrumentation on every database connection, and the receivers that
        give back the connections of finished threads, sweep a pool's dead connections and
        reset sessions given back to a pool (each off with its REPOSITORIES setting), and
        register the TRANSACTION_POOLING
        system check (repositories.core.pooling_checks)."""
        from repositories.core import (
            instrumentation,
            pool_health,
            pooling_checks,
            session_reset,
            threads,
        )

        del pooling_checks  # imported for its @register

        instrumentation.install()
        threads.install()
        pool_health.install()
        session_reset.install()
