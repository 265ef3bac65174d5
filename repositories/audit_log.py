"""Read access to the audit trail; rows are only ever written by repositories.core.audit.record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

import django_filters as filters

from domain.models import AuditLog
from repositories.core.arguments import unstorable_value
from repositories.core.base import BaseRepository
from repositories.core.error_mapping import translate_errors
from repositories.core.filters import StrictFilterSet
from repositories.errors import InvalidQueryError, RepositoryError
from repositories.user_model import parse_user_key, user_key_filter


class ReadOnlyRepositoryError(RepositoryError):
    """A write was asked of a repository over an append-only table."""


class AuditLogFilterSet(StrictFilterSet):
    """Criteria for the trail: action, entity, actor and a time range on `occurred_at`."""

    action = filters.CharFilter()
    entity_type = filters.CharFilter()
    entity_id = filters.CharFilter()
    actor = user_key_filter("actor_id")
    request_id = filters.CharFilter()
    occurred_after = filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = AuditLog
        fields: tuple[str, ...] = ()


class AuditLogRepository(BaseRepository[AuditLog]):
    """Query the append-only audit trail; every write method raises ReadOnlyRepositoryError.

    The database refuses UPDATE and DELETE on the table as well (a trigger), so the trail
    cannot be rewritten even around this class. Rows load their actor (LEFT JOIN), which
    may be a deleted user or, for a user removed for good, None with `actor_id` kept.
    """

    model = AuditLog
    read_methods = BaseRepository.read_methods | {"for_entity", "by_actor"}
    audit = True
    filterset_class = AuditLogFilterSet
    sortable_fields = ("occurred_at",)
    default_order = ("-occurred_at",)
    select_related = ("actor",)

    def for_entity(self, entity_type: str, entity_id: Any) -> list[AuditLog]:
        """Return the history of one entity, oldest first (order occurred_at, id; 1 query).

        `entity_type` is the model name ("product"); `entity_id` its key (UUID, int or str).
        """
        if not isinstance(entity_type, str) or not entity_type:
            raise InvalidQueryError({"entity_type": ["Enter a model name such as 'product'."]})
        if isinstance(entity_id, bool) or entity_id is None or isinstance(entity_id, Mapping):
            raise InvalidQueryError({"entity_id": ["Enter the entity's key."]})
        if isinstance(entity_id, Sequence) and not isinstance(entity_id, str):
            raise InvalidQueryError({"entity_id": ["Enter the entity's key."]})
        key = str(entity_id)
        # The boundary leaves *_id arguments to the method: refuse a key holding a lone
        # surrogate or a NUL here, before the driver fails to encode it.
        unstorable = unstorable_value(key)
        if unstorable is not None:
            raise InvalidQueryError({"entity_id": [unstorable[1]]})
        with translate_errors(AuditLog, using=self.using):
            return list(
                AuditLog.objects.using(self.using)
                .select_related("actor")
                .filter(entity_type=entity_type, entity_id=key)
                .order_by("occurred_at", "id")
            )

    def by_actor(self, user_id: Any) -> list[AuditLog]:
        """Return what a user did, newest first (order -occurred_at, -id; 1 query).

        Empty for an unknown or malformed id; a deleted user's actions are still listed.
        """
        key = parse_user_key(user_id)
        if key is None:
            return []
        with translate_errors(AuditLog, using=self.using):
            return list(
                AuditLog.objects.using(self.using)
                .select_related("actor")
                .filter(actor_id=key)
                .order_by("-occurred_at", "-id")
            )

    def create(self, data: Mapping[str, Any]) -> NoReturn:
        """Refuse: audit rows are written by repositories.core.audit.record with each write."""
        _refuse("create")

    def create_many(self, rows: Iterable[Mapping[str, Any]], *, batch_size: int = 1000) -> NoReturn:
        """Refuse: audit rows are written by repositories.core.audit.record with each write."""
        _refuse("create_many")

    def update(
        self, id: object, data: Mapping[str, Any], *, expected_version: int | None = None
    ) -> NoReturn:
        """Refuse: the audit trail is append-only."""
        _refuse("update")

    def update_many(self, filters: Mapping[str, Any] | None, data: Mapping[str, Any]) -> NoReturn:
        """Refuse: the audit trail is append-only."""
        _refuse("update_many")

    def delete(self, id: object) -> NoReturn:
        """Refuse: the audit trail is append-only."""
        _refuse("delete")

    def delete_many(
        self, filters: Mapping[str, Any] | None, *, include_deleted: bool = False
    ) -> NoReturn:
        """Refuse: the audit trail is append-only."""
        _refuse("delete_many")

    def soft_delete(self, id: object) -> NoReturn:
        """Refuse: the audit trail is append-only."""
        _refuse("soft_delete")

    def restore(self, id: object) -> NoReturn:
        """Refuse: the audit trail is append-only."""
        _refuse("restore")


def _refuse(method: str) -> NoReturn:
    raise ReadOnlyRepositoryError(
        f"AuditLogRepository.{method} is refused: the audit log is append-only and its "
        "rows are written only by repositories.core.audit.record, inside each audited write."
    )
