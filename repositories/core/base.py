"""BaseRepository: generic reads, writes, soft delete, filters, sorting and pages."""

from __future__ import annotations

from repositories.core.foundation import ModelT
from repositories.core.reads import RepositoryReads
from repositories.core.soft_delete import RepositorySoftDelete

__all__ = ["BaseRepository", "ModelT"]


class BaseRepository(RepositoryReads[ModelT], RepositorySoftDelete[ModelT]):
    """Generic data access for one model: reads, writes, filters, sorting and pages.

    Subclasses set `model`, `filterset_class` (a StrictFilterSet), `sortable_fields`,
    `default_order`, and optionally `select_related`, `prefetch_related`,
    `deferred_fields` (never loaded by reads, e.g. a large generated column),
    `audit_exclude`, `readonly_fields` (never written), `create_only_fields` (set
    when a row is created, refused by updates), `soft_delete_field`, `version_field`,
    `updated_at_field` (bookkeeping columns, used when the model has them) and `audit`
    (record every write in the audit log). Every public method runs inside
    `query_label("<Class>.<method>")`. Database errors surface as RepositoryError
    subclasses (see repositories.core.error_mapping). Soft-deleted rows are invisible unless
    `include_deleted=True` is passed where offered.
    """
