"""Building blocks that keep this project's migrations safe to run on a live database.

``Migration`` (the base class of every migration in ``domain/migrations``) bounds, before
its first operation and in both directions, how long each statement may wait for a lock
(``lock_timeout``) and how long it may run (``statement_timeout``). DDL queues for its lock
behind the transactions already running on a table, and every later query on that table
queues behind the DDL: without a lock timeout, one slow transaction turns a millisecond
``CREATE TRIGGER`` into an outage. With it, the migration gives up after a few seconds,
having made the application wait at most that long; run it again later.

- An atomic migration runs ``SET LOCAL``, which ends with its transaction.
- A non-atomic one (each statement its own transaction) runs ``SET`` and ``RESET``s both
  when it finishes, failed or not: with the connection pool, a leaked setting would follow
  the connection into application requests. It needs a session of its own, so behind
  PgBouncer in transaction mode (``REPOSITORIES["TRANSACTION_POOLING"]``) it refuses to run
  (``refuse_transaction_pooling``): migrate on a direct connection.

``squawk_ignore`` / ``squawk_ignore_backwards`` name squawk rules that cannot apply to a
migration's forward / backward SQL; they are written into ``manage.py sqlmigrate``'s output
as ``-- squawk-ignore-file`` comments (so ``make lint`` honours them) and never sent to the
database. Give the reason next to them.

``RetrySafeAddIndexConcurrently`` is ``AddIndexConcurrently`` that can be re-run after a
failed attempt; see its docstring.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.core.exceptions import ImproperlyConfigured
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import ProjectState

_DURATION = re.compile(r"^\d+(ms|s|min|h)?$")


def refuse_transaction_pooling(work: str) -> None:
    """Raise ImproperlyConfigured when the project says its database connections go through
    PgBouncer in transaction mode (``REPOSITORIES["TRANSACTION_POOLING"]``): `work` needs a
    session of its own (session settings or locks across statements), which that mode does
    not give, and its session state would reach other clients."""
    if (getattr(settings, "REPOSITORIES", None) or {}).get("TRANSACTION_POOLING"):
        raise ImproperlyConfigured(
            f"{work} needs a database session of its own, which PgBouncer in transaction "
            'mode does not give (REPOSITORIES["TRANSACTION_POOLING"] is on): run it on a '
            "direct connection to PostgreSQL (this project: DATABASE_URL pointing at the "
            "server and DB_TRANSACTION_POOLING unset)."
        )


class Migration(migrations.Migration):
    # How long a statement may queue for a lock before the migration gives up.
    lock_timeout = "5s"
    # How long a statement may run: caps how long a lock, once granted, is held.
    # "0" disables it (CREATE INDEX CONCURRENTLY, which blocks no reads or writes).
    statement_timeout = "1min"
    squawk_ignore: tuple[str, ...] = ()
    squawk_ignore_backwards: tuple[str, ...] = ()

    def apply(
        self, project_state: ProjectState, schema_editor: Any, collect_sql: bool = False
    ) -> ProjectState:
        self._set_timeouts(schema_editor, self.squawk_ignore)
        try:
            return super().apply(project_state, schema_editor, collect_sql)
        finally:
            self._reset_timeouts(schema_editor)

    def unapply(
        self, project_state: ProjectState, schema_editor: Any, collect_sql: bool = False
    ) -> ProjectState:
        self._set_timeouts(schema_editor, self.squawk_ignore_backwards)
        try:
            return super().unapply(project_state, schema_editor, collect_sql)
        finally:
            self._reset_timeouts(schema_editor)

    def _set_timeouts(
        self, schema_editor: BaseDatabaseSchemaEditor, ignore: tuple[str, ...]
    ) -> None:
        if schema_editor.collect_sql:
            schema_editor.collected_sql.extend(f"-- squawk-ignore-file {rule}" for rule in ignore)
        elif not schema_editor.atomic_migration:
            refuse_transaction_pooling(f"Migration {self.app_label}.{self.name}, not atomic,")
        scope = "SET LOCAL" if schema_editor.atomic_migration else "SET"
        for name in ("lock_timeout", "statement_timeout"):
            value = getattr(self, name)
            if not _DURATION.match(value):
                raise ValueError(f"{type(self).__module__}: bad {name} {value!r}")
            schema_editor.execute(f"{scope} {name} = '{value}'")

    def _reset_timeouts(self, schema_editor: BaseDatabaseSchemaEditor) -> None:
        if not schema_editor.atomic_migration:  # SET LOCAL ends with the transaction
            schema_editor.execute("RESET lock_timeout")
            schema_editor.execute("RESET statement_timeout")


class RetrySafeAddIndexConcurrently(AddIndexConcurrently):
    """``AddIndexConcurrently`` that survives an earlier failed attempt.

    A ``CREATE INDEX CONCURRENTLY`` that fails (lock timeout, cancel, deadlock, a unique
    violation, a dropped connection) leaves its index behind, INVALID: never used by
    queries, still maintained on every write, and in the way of the next attempt ("relation
    already exists"). ``IF NOT EXISTS`` alone would keep the INVALID index and record the
    migration as done. So the index is dropped first, then created::

        DROP INDEX CONCURRENTLY IF EXISTS "name";
        CREATE INDEX CONCURRENTLY IF NOT EXISTS "name" ON ...;

    On a first run the drop finds nothing and only emits a NOTICE (it takes no lock). On a
    re-run it also rebuilds the indexes this migration had completed before it failed: a
    cost paid only on recovery, without blocking writes, and the SQL that runs is the SQL
    that ``sqlmigrate`` shows and squawk checks. Reverse is Django's, already retry-safe:
    ``DROP INDEX CONCURRENTLY IF EXISTS``.
    """

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        self._ensure_not_in_transaction(schema_editor)
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        schema_editor.execute(self.index.remove_sql(model, schema_editor, concurrently=True))
        create = self.index.create_sql(model, schema_editor, concurrently=True)
        create.template = create.template.replace(
            "INDEX CONCURRENTLY ", "INDEX CONCURRENTLY IF NOT EXISTS ", 1
        )
        schema_editor.execute(create, params=None)  # as add_index(): no %-interpolation
