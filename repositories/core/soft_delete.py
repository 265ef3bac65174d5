"""Soft delete and restore, for models with a soft-delete column (`soft_delete_field`)."""

from __future__ import annotations

from django.utils import timezone

from repositories.core.error_mapping import translate_errors
from repositories.core.errors import ConflictError, ValidationError
from repositories.core.foundation import ModelT
from repositories.core.writes import RepositoryWrites

__all__ = ["RepositorySoftDelete"]


class RepositorySoftDelete(RepositoryWrites[ModelT]):
    """Hide rows without deleting them, and bring them back."""

    def soft_delete(self, id: object) -> ModelT:
        """Hide a live row (set its `soft_delete_field`); return it.

        NotFoundError when the row is missing or already deleted.

        Only for soft-deletable models (ValidationError otherwise). Audited as "soft_deleted".
        """
        field = self._require_soft_delete()
        pk = self._require_pk(id)
        manager = self._rows_manager(include_deleted=True)
        with translate_errors(self.model, using=self.using), self._atomic_block():
            current = self._locked_row(manager, pk, id, **{f"{field}__isnull": True})
            now = timezone.now()
            manager.filter(pk=pk).update(**self._bookkeeping({field: now}, now=now))
            changes = {field: {"old": None, "new": now.isoformat()}}
            self._record_audit([self._audit_entry("soft_deleted", current, changes)])
            setattr(current, field, now)
            self._bump(current, now)
            return self._reloaded(pk, current, include_deleted=True)

    def restore(self, id: object) -> ModelT:
        """Make a soft-deleted row live again; return it (a live row is returned as is).

        Raises NotFoundError for an unknown key and ConflictError (with_deleted_row=True)
        when a live row has taken its unique values meanwhile. Audited as "restored".
        """
        field = self._require_soft_delete()
        pk = self._require_pk(id)
        manager = self._rows_manager(include_deleted=True)
        with translate_errors(self.model, using=self.using), self._atomic_block():
            current = self._locked_row(manager, pk, id)
            deleted_at = getattr(current, field)
            if deleted_at is None:
                return self._reloaded(pk, current)
            try:
                with translate_errors(self.model, using=self.using):
                    now = timezone.now()
                    manager.filter(pk=pk).update(**self._bookkeeping({field: None}, now=now))
            except ConflictError as clash:
                what = ", ".join(clash.fields) or "unique values"
                raise ConflictError(
                    f"cannot restore {self._spec.entity_type} {pk}: a live "
                    f"{self._spec.entity_type} now has the same {what}",
                    fields=clash.fields,
                    constraint=clash.constraint,
                    with_deleted_row=True,
                ) from clash.__cause__
            changes = {field: {"old": deleted_at.isoformat(), "new": None}}
            self._record_audit([self._audit_entry("restored", current, changes)])
            setattr(current, field, None)
            self._bump(current, now)
            return self._reloaded(pk, current)

    def _require_soft_delete(self) -> str:
        """Return the soft-delete column; ValidationError when the model has none."""
        field = self._spec.soft_delete_field
        if field is None:
            raise ValidationError(
                {
                    "__all__": [
                        f"{self.model.__name__} rows cannot be soft-deleted (the model has "
                        "no soft-delete column); use delete()."
                    ]
                }
            )
        return field
