"""The writes of every repository: create (one or set-based), update, delete."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from django.db import connections, models
from django.db.models import F, QuerySet
from django.utils import timezone

from repositories.core.arguments import check_int
from repositories.core.audit import AuditEntry, diff, record, snapshot
from repositories.core.bulk import copy_rows
from repositories.core.cleaning import clean_data
from repositories.core.error_mapping import translate_errors
from repositories.core.errors import NotFoundError, StaleObjectError, ValidationError
from repositories.core.foundation import ModelT, RepositoryFoundation, first_row
from repositories.core.transactions import check_deferred_constraints

__all__ = ["RepositoryWrites"]

_UUID_BATCH_SQL = "SELECT gen_random_uuid() FROM generate_series(1, %s)"


class RepositoryWrites(RepositoryFoundation[ModelT]):
    """Writes of BaseRepository; each audited in its own transaction when `audit` is on."""

    def create(self, data: Mapping[str, Any]) -> ModelT:
        """Insert one row from a mapping of field names; return it reloaded with preloads.

        Raises ValidationError (unknown fields, invalid values, CHECK/NOT NULL/foreign-key
        violations) or ConflictError (unique violations). Audited as "created".
        """
        values = clean_data(self._spec, data, creating=True)
        instance = self.model(**values)
        with translate_errors(self.model, using=self.using), self._atomic_block():
            instance.save(force_insert=True, using=self.using)
            self._after_create([instance])
            self._check_references(values)
            self._record_audit(
                [self._audit_entry("created", instance, self._audit_snapshot(instance))]
            )
            return self._reloaded(instance.pk, instance)

    def create_many(
        self, rows: Iterable[Mapping[str, Any]], *, batch_size: int = 1000
    ) -> list[ModelT]:
        """Insert many rows set-based; return them with their database-generated keys.

        Per batch, all in one transaction: one query for the keys (when the database
        generates them), one COPY of the rows, the statements of `_after_create` and one
        audit statement (see audit.record). A batch whose values are not all known
        before sending (an auto-increment key, a column default the model leaves to the
        database) is inserted by bulk_create instead of COPY, which reads them back.
        Every row is validated before anything is sent; errors are keyed
        "<row index>.<field>". Constraint violations map as for `create`. Relations are
        not loaded on the returned objects.
        """
        batch_size = check_int("batch_size", batch_size, minimum=1, maximum=100_000)
        if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
            raise ValidationError({"__all__": ["Give a list of mappings, one per row."]})
        instances: list[ModelT] = []
        errors: dict[str, list[str]] = {}
        referenced: dict[str, Any] = {}
        for index, row in enumerate(rows):
            try:
                values = clean_data(self._spec, row, creating=True)
                instances.append(self.model(**values))
                if not referenced:
                    referenced = {k: v for k, v in values.items() if self._is_reference(k)}
            except ValidationError as exc:
                errors.update(
                    {f"{index}.{name}": messages for name, messages in exc.errors.items()}
                )
        if errors:
            raise ValidationError(errors)
        spec = self._spec
        manager = self.model._base_manager.db_manager(self.using)
        with translate_errors(self.model, using=self.using), self._atomic_block():
            for start in range(0, len(instances), batch_size):
                batch = instances[start : start + batch_size]
                if spec.uuid_keys_from_database:
                    with connections[self.using].cursor() as cursor:
                        cursor.execute(_UUID_BATCH_SQL, [len(batch)])
                        for instance, (key,) in zip(batch, cursor.fetchall(), strict=True):
                            setattr(instance, spec.pk.attname, key)
                if not self._copy_batch(batch):
                    manager.bulk_create(batch)
                self._after_create(batch)
                self._record_audit(
                    [self._audit_entry("created", obj, self._audit_snapshot(obj)) for obj in batch]
                )
            self._check_references(referenced)
        return instances

    def _after_create(self, instances: Sequence[ModelT]) -> None:
        """Hook: write what belongs with newly inserted rows, in their transaction.

        Called by `create` (one row) and by `create_many` (once per batch) after the
        rows are inserted, with their keys set, and before their audit rows. Must send
        a number of statements that does not depend on the number of rows. Does nothing
        here.
        """

    def _copy_batch(self, batch: Sequence[ModelT]) -> bool:
        """COPY `batch` into the table; False (nothing sent) when a value is unknown yet.

        Values are adapted as an INSERT adapts them (pre_save, get_db_prep_save). A key
        the database assigns on insert or a value left to the database (a column
        default, an expression) cannot travel by COPY, which returns nothing. The
        adaptation runs while the rows stream, so the server works on the first rows
        while the last ones are prepared (about 5 % faster than preparing them first).
        """
        fields = self._spec.insert_fields
        values: list[list[Any]] = []
        for instance in batch:
            row = [field.pre_save(instance, True) for field in fields]
            if instance.pk is None or any(hasattr(v, "resolve_expression") for v in row):
                return False
            values.append(row)
        connection = connections[self.using]
        rows = (
            [field.get_db_prep_save(v, connection) for field, v in zip(fields, row, strict=True)]
            for row in values
        )
        copy_rows(self.using, self.model._meta.db_table, [str(f.column) for f in fields], rows)
        return True

    def update(
        self, id: object, data: Mapping[str, Any], *, expected_version: int | None = None
    ) -> ModelT:
        """Change fields of a live row; return it reloaded with preloads.

        Always bumps `updated_at` and `version` where the model has them. With
        `expected_version` (versioned models only) the UPDATE is conditional on the
        version and raises StaleObjectError when it moved; without it the row is locked
        (SELECT ... FOR UPDATE) while the diff for the audit row is taken. Raises
        NotFoundError, ValidationError, ConflictError.
        """
        spec = self._spec
        if expected_version is not None:
            if spec.version_field is None:
                raise ValidationError(
                    {"expected_version": [f"{self.model.__name__} rows have no version."]}
                )
            expected_version = cast(int, self._check_value("expected_version", expected_version))
        values = clean_data(self._spec, data, creating=False)
        pk = self._require_pk(id)
        names = self._changed_names(values)
        manager = self._rows_manager(include_deleted=False)
        with translate_errors(self.model, using=self.using), self._atomic_block():
            current_query = manager.filter(pk=pk)
            if expected_version is None:
                current_query = current_query.select_for_update()
            current = first_row(current_query)
            if current is None:
                raise NotFoundError(self.model.__name__, id)
            version = getattr(current, spec.version_field) if spec.version_field else None
            if expected_version is not None and version != expected_version:
                raise StaleObjectError(
                    self.model.__name__,
                    pk,
                    expected_version,
                    version,
                )
            before = snapshot(current, names)
            target = manager.filter(pk=pk)
            if expected_version is not None:
                target = target.filter(**{cast(str, spec.version_field): expected_version})
            now = timezone.now()
            if target.update(**self._bookkeeping(values, now=now)) == 0:
                raise StaleObjectError(self.model.__name__, pk, expected_version or 0)
            self._check_references(values)
            for name, value in values.items():
                setattr(current, name, value)
            changes = diff(before, snapshot(current, names))
            self._bump(current, now)
            self._record_audit([self._audit_entry("updated", current, changes)])
            return self._reloaded(pk, current)

    def update_many(self, filters: Mapping[str, Any] | None, data: Mapping[str, Any]) -> int:
        """Apply `data` to every live row matching `filters`; return the number changed.

        Set-based: one SELECT ... FOR UPDATE (in key order) of the changed columns, one
        UPDATE and one audit INSERT (a diff per row), in one transaction. Bumps
        `updated_at` and `version`. `filters={}` means every live row.
        """
        values = clean_data(self._spec, data, creating=False)
        names = self._changed_names(values)
        queryset = self._filtered_queryset(filters, False, bare=True)[0]
        columns = [self._spec.writable[name].attname for name in names]
        with translate_errors(self.model, using=self.using), self._atomic_block():
            rows = self._unique_rows(
                queryset.select_for_update(of=("self",))
                .order_by("pk")
                .only("pk", *columns, *self.audit_inputs)
            )
            if not rows:
                return 0
            self._rows_manager(include_deleted=False).filter(pk__in=[r.pk for r in rows]).update(
                **self._bookkeeping(values)
            )
            self._check_references(values)
            entries = []
            for row in rows:
                before = snapshot(row, names)
                for name, value in values.items():
                    setattr(row, name, value)
                entries.append(
                    self._audit_entry("updated", row, diff(before, snapshot(row, names)))
                )
            self._record_audit(entries)
            return len(rows)

    def delete(self, id: object) -> None:
        """Remove a row for good (live or soft-deleted); raise NotFoundError if missing.

        Django's on_delete rules apply (cascades). A row still referenced under PROTECT
        raises ValidationError. Audited as "deleted" with a snapshot of the row.
        """
        pk = self._require_pk(id)
        manager = self._rows_manager(include_deleted=True)
        with translate_errors(self.model, using=self.using), self._atomic_block():
            current = self._locked_row(manager, pk, id)
            manager.filter(pk=pk).delete()
            self._check_references(None)
            self._record_audit(
                [self._audit_entry("deleted", current, self._audit_snapshot(current))]
            )

    def delete_many(
        self, filters: Mapping[str, Any] | None, *, include_deleted: bool = False
    ) -> int:
        """Remove every row matching `filters` for good; return the number removed.

        Set-based: one SELECT ... FOR UPDATE in key order, the DELETE (plus Django's
        cascade queries, whose number does not depend on the row count) and one audit
        INSERT with a snapshot per row, in one transaction.
        """
        queryset = self._filtered_queryset(filters, include_deleted, bare=True)[0]
        with translate_errors(self.model, using=self.using), self._atomic_block():
            rows = self._unique_rows(queryset.select_for_update(of=("self",)).order_by("pk"))
            if not rows:
                return 0
            self._rows_manager(include_deleted=True).filter(pk__in=[r.pk for r in rows]).delete()
            self._check_references(None)
            self._record_audit(
                [self._audit_entry("deleted", row, self._audit_snapshot(row)) for row in rows]
            )
            return len(rows)

    def _locked_row(
        self, manager: QuerySet[ModelT], pk: Any, id: object, **conditions: Any
    ) -> ModelT:
        """Return the row `pk` locked FOR UPDATE (meeting `conditions`); NotFoundError
        (naming the caller's `id`) when there is none."""
        row = first_row(manager.select_for_update().filter(pk=pk, **conditions))
        if row is None:
            raise NotFoundError(self.model.__name__, id)
        return row

    def _check_references(self, values: Mapping[str, Any] | None) -> None:
        """Check deferred foreign keys now, inside this method, when a caller's transaction
        is open (they would otherwise fail at the caller's COMMIT, outside any repository).

        Django creates foreign keys DEFERRABLE INITIALLY DEFERRED. When this method's
        atomic block is the outermost one its COMMIT checks them (inside the error
        mapping), so nothing is sent. `values` None means a delete (any reference).
        """
        if values is not None and not any(self._is_reference(key) for key in values):
            return
        check_deferred_constraints(self.using)

    def _is_reference(self, key: str) -> bool:
        field = self._spec.writable.get(key)
        return field is not None and field.is_relation

    def _check_value(self, name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError({name: ["Enter a whole number ≥ 0."]})
        return value

    @staticmethod
    def _unique_rows(queryset: QuerySet[ModelT]) -> list[ModelT]:
        """Evaluate `queryset`, dropping repeats that joins through filters can produce."""
        seen: set[Any] = set()
        rows = []
        for row in queryset:
            if row.pk not in seen:
                seen.add(row.pk)
                rows.append(row)
        return rows

    def _changed_names(self, values: Mapping[str, Any]) -> list[str]:
        return [self._spec.writable[key].name for key in values]

    def _bookkeeping(self, values: Mapping[str, Any], *, now: Any = None) -> dict[str, Any]:
        updates = dict(values)
        spec = self._spec
        if spec.updated_at_field:
            updates[spec.updated_at_field] = now or timezone.now()
        if spec.version_field:
            updates[spec.version_field] = F(spec.version_field) + 1
        return updates

    def _bump(self, instance: models.Model, now: Any) -> None:
        """Mirror on `instance` what __bookkeeping() made the database do."""
        spec = self._spec
        if spec.updated_at_field:
            setattr(instance, spec.updated_at_field, now)
        if spec.version_field:
            setattr(instance, spec.version_field, getattr(instance, spec.version_field) + 1)

    def _audit_snapshot(self, instance: models.Model) -> dict[str, Any]:
        return snapshot(instance, self._spec.audit_fields)

    def _audit_entry(
        self, action: str, instance: models.Model, changes: dict[str, Any]
    ) -> AuditEntry:
        return AuditEntry(action, self._spec.entity_type, str(instance.pk), changes)

    def _record_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Write `entries` to the audit log when this repository audits (`audit`)."""
        if self.audit:
            record(entries, using=self.using)
