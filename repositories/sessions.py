"""Login sessions: issue tokens, validate them, revoke them, purge expired ones."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import django_filters as filters
from django.contrib.auth import get_user_model
from django.core.validators import validate_ipv46_address
from django.db import connections
from django.db.models import Count, F, Value
from django.db.models.functions import Now
from django.utils import timezone

from domain.models import UserSession
from repositories.core.audit import AuditEntry, entity_type_of, record, snapshot
from repositories.core.base import BaseRepository
from repositories.core.error_mapping import translate_errors
from repositories.core.filters import StrictFilterSet
from repositories.core.keys import parse_uuid
from repositories.core.transactions import atomic, check_deferred_constraints
from repositories.errors import NotFoundError, ValidationError
from repositories.session_values import checked_ip, revoke_reason, session_lifetime
from repositories.user_model import (
    active_users,
    live_users,
    parse_user_key,
    user_field,
    user_key_filter,
)

#: Bytes of randomness in a token: 256 bits, URL-safe base64 (43 characters).
TOKEN_BYTES = 32
#: `validate` writes `last_seen_at` at most this often per session.
TOUCH_INTERVAL = timedelta(minutes=1)
#: Longer User-Agent headers are cut to this many characters (they are client-controlled).
USER_AGENT_MAX_LENGTH = 1024
# Longer inputs cannot be tokens we issued: rejected before hashing.
_MAX_TOKEN_LENGTH = 256
_ENTITY = entity_type_of(UserSession)
#: The earliest instant a window may reach back to (Python's datetime.min).
_EARLIEST = datetime.min.replace(tzinfo=UTC)
# Audit rows never hold the token hash (nor, of course, the token).
_AUDITED_FIELDS = tuple(
    f.attname for f in UserSession._meta.concrete_fields if f.name != "token_hash"
)

_TOUCH_SQL = (
    "UPDATE user_sessions SET last_seen_at = now() "
    "WHERE id = %s AND (last_seen_at IS NULL OR last_seen_at < now() - interval '1 minute') "
    "RETURNING last_seen_at"
)
_REVOKE_ALL_SQL = (
    "UPDATE user_sessions SET revoked_at = %s, revoked_reason = %s, updated_at = %s "
    "WHERE user_id = %s AND revoked_at IS NULL AND expires_at > %s "
    "AND id IS DISTINCT FROM %s::uuid "
    "RETURNING id"
)
# One short batch: rows another cleanup (or a revoke) holds are skipped, not waited for.
_CLEANUP_SQL = (
    "DELETE FROM user_sessions WHERE id IN ("
    "SELECT id FROM user_sessions WHERE expires_at <= now() "
    "LIMIT %s FOR UPDATE SKIP LOCKED) "
    "RETURNING id, user_id"
)


@dataclass(frozen=True)
class SuspiciousUser:
    """A user whose recent sessions came from many addresses (`suspicious_users`).

    `user_id` is typed like the user model's key; `email` is "" for a user model without
    an email field.
    """

    user_id: Any
    email: str
    distinct_ips: int
    sessions: int


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest stored for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


class UserSessionFilterSet(StrictFilterSet):
    """Criteria for listing sessions (`find_many`, `count`, paginations)."""

    user = user_key_filter("user_id")
    ip_address = filters.CharFilter(field_name="ip_address", validators=[validate_ipv46_address])
    revoked = filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull", exclude=True)
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    expires_after = filters.IsoDateTimeFilter(field_name="expires_at", lookup_expr="gte")
    expires_before = filters.IsoDateTimeFilter(field_name="expires_at", lookup_expr="lt")

    class Meta:
        model = UserSession
        fields: tuple[str, ...] = ()


class SessionRepository(BaseRepository[UserSession]):
    """Issue, validate and revoke login sessions; only token hashes are ever stored.

    Audit rows never contain a token or its hash. Sessions of deleted or inactive users
    are never valid, whatever their expiry (with a user model other than domain.User: as
    far as it records deletion, `deleted_at`, and activity, `is_active`).
    """

    model = UserSession
    read_methods = BaseRepository.read_methods | {"active_for_user", "suspicious_users"}
    audit = True
    lookup_methods = BaseRepository.lookup_methods | {"validate"}
    filterset_class = UserSessionFilterSet
    sortable_fields = ("created_at", "expires_at", "last_seen_at")
    default_order = ("-created_at",)
    select_related = ("user",)
    audit_exclude = ("token_hash",)
    # A session's owner and token never change; revocation goes through revoke().
    readonly_fields = ("user", "token_hash")

    def create(self, data: Mapping[str, Any]) -> NoReturn:
        """Refuse: sessions are opened by create_session(), which issues the token."""
        raise ValidationError({"__all__": ["Sessions are opened with create_session()."]})

    def create_many(self, rows: Iterable[Mapping[str, Any]], *, batch_size: int = 1000) -> NoReturn:
        """Refuse: sessions are opened one at a time by create_session()."""
        raise ValidationError({"__all__": ["Sessions are opened with create_session()."]})

    def create_session(
        self,
        user_id: Any,
        *,
        ip_address: str | None = None,
        user_agent: str = "",
        ttl: timedelta | None = None,
    ) -> tuple[UserSession, str]:
        """Open a session for a live, active user; return it and its token.

        The token (256 bits from `secrets`) is returned once and never stored: keep it.
        `ttl` (at least a second) defaults to REPOSITORIES["SESSION_TTL_SECONDS"] (14 days);
        `user_agent` is kept to its first USER_AGENT_MAX_LENGTH characters.
        Raises NotFoundError for an unknown, malformed or deleted user, ValidationError
        for an inactive user or bad arguments. Queries: the user, then the insert and its
        audit row in one transaction.
        """
        lifetime = session_lifetime(ttl)
        address = checked_ip(ip_address)
        if not isinstance(user_agent, str) or "\x00" in user_agent:
            raise ValidationError({"user_agent": ["Enter a string without NUL characters."]})
        key = parse_user_key(user_id)
        if key is None:
            raise NotFoundError("User", user_id)
        users = get_user_model()._default_manager.db_manager(self.using)
        with translate_errors(UserSession, using=self.using):
            user = next(iter(users.filter(live_users(), pk=key)[:1]), None)
        if user is None:
            raise NotFoundError("User", user_id)
        if not user.is_active:
            raise ValidationError({"user_id": ["This user is inactive and cannot log in."]})
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = timezone.now()
        session = UserSession(
            user=user,
            token_hash=hash_token(token),
            ip_address=address,
            user_agent=user_agent[:USER_AGENT_MAX_LENGTH],
            created_at=now,
            updated_at=now,
            expires_at=now + lifetime,
        )
        with translate_errors(UserSession, using=self.using), atomic(using=self.using):
            session.save(force_insert=True, using=self.using)
            check_deferred_constraints(self.using)  # a user deleted meanwhile fails here
            changes = snapshot(session, _AUDITED_FIELDS)
            record([AuditEntry("created", _ENTITY, str(session.pk), changes)], using=self.using)
        return session, token

    def validate(self, token: object) -> UserSession | None:
        """Return the live session for `token` with its user loaded, or None.

        None for an empty, malformed, unknown, expired or revoked token and for a deleted
        or inactive user. One query; a second one (a conditional UPDATE) refreshes
        `last_seen_at` when it is more than a minute old, so busy sessions write at most
        once a minute however many requests validate them.
        """
        if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN_LENGTH:
            return None
        with translate_errors(UserSession, using=self.using):
            session_query = (
                UserSession.objects.using(self.using)
                .select_related("user")
                .filter(
                    active_users("user__"),
                    token_hash=hash_token(token),
                    revoked_at__isnull=True,
                    expires_at__gt=Now(),
                )
            )
            # [:1] rather than first(): no ORDER BY, the token_hash unique index answers.
            session = next(iter(session_query[:1]), None)
            if session is not None and _due_for_touch(session.last_seen_at):
                with connections[self.using].cursor() as cursor:
                    cursor.execute(_TOUCH_SQL, [session.pk])
                    row = cursor.fetchone()
                if row is not None:
                    session.last_seen_at = row[0]
        return session

    def revoke(self, session_id: Any, *, reason: str) -> UserSession:
        """Revoke one session and return it (user loaded); revoking twice changes nothing.

        Raises NotFoundError for an unknown or malformed id. 3 queries (2 when the
        session was already revoked).
        """
        reason = revoke_reason(reason)
        key = parse_uuid(session_id)
        if key is None:
            raise NotFoundError("UserSession", session_id)
        with translate_errors(UserSession, using=self.using), atomic(using=self.using):
            now = timezone.now()
            changed = (
                UserSession.objects.using(self.using)
                .filter(pk=key, revoked_at__isnull=True)
                .update(revoked_at=now, revoked_reason=reason, updated_at=now)
            )
            if changed:
                record([_revoked_entry(key, now, reason)], using=self.using)
            query = UserSession.objects.using(self.using).select_related("user").filter(pk=key)
            session = next(iter(query[:1]), None)
        if session is None:
            raise NotFoundError("UserSession", session_id)
        return session

    def revoke_all(self, user_id: Any, *, except_id: Any = None, reason: str = "revoked") -> int:
        """Revoke every live session of a user, except `except_id`; return how many.

        One UPDATE plus one audit INSERT (one row per revoked session). An unknown or
        malformed user id revokes nothing; a malformed `except_id` excludes nothing.
        """
        reason = revoke_reason(reason)
        key = parse_user_key(user_id)
        if key is None:
            return 0
        keep = parse_uuid(except_id) if except_id is not None else None
        with translate_errors(UserSession, using=self.using), atomic(using=self.using):
            now = timezone.now()
            with connections[self.using].cursor() as cursor:
                cursor.execute(_REVOKE_ALL_SQL, [now, reason, now, key, now, keep])
                revoked = [row[0] for row in cursor.fetchall()]
            record([_revoked_entry(sid, now, reason) for sid in revoked], using=self.using)
        return len(revoked)

    def active_for_user(self, user_id: Any) -> list[UserSession]:
        """Return the user's valid sessions, newest first, with the user loaded (1 query).

        Empty for an unknown, malformed, deleted or inactive user.
        """
        key = parse_user_key(user_id)
        if key is None:
            return []
        with translate_errors(UserSession, using=self.using):
            return list(
                UserSession.objects.using(self.using)
                .select_related("user")
                .filter(
                    active_users("user__"),
                    user_id=key,
                    revoked_at__isnull=True,
                    expires_at__gt=Now(),
                )
                .order_by("-created_at", "-id")
            )

    def cleanup_expired(self, *, batch_size: int = 1000) -> int:
        """Delete expired sessions in batches; return how many were deleted.

        A session is deleted once `expires_at` has passed, revoked or not: revoked
        sessions stay until then (for `suspicious_users` and investigations), and no
        session outlives its expiry by more than a cleanup interval. Each batch of at
        most `batch_size` rows is its own short transaction (DELETE of a `FOR UPDATE SKIP
        LOCKED` selection, so concurrent cleanups never wait for each other) with one
        audit INSERT; call it outside a transaction so the batches really commit apart.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError({"batch_size": ["Enter a whole number of at least 1."]})
        total = 0
        while True:
            with translate_errors(UserSession, using=self.using), atomic(using=self.using):
                with connections[self.using].cursor() as cursor:
                    cursor.execute(_CLEANUP_SQL, [batch_size])
                    deleted = cursor.fetchall()
                record(
                    [
                        AuditEntry("deleted", _ENTITY, str(sid), {"user_id": str(uid)})
                        for sid, uid in deleted
                    ],
                    using=self.using,
                )
            total += len(deleted)
            if len(deleted) < batch_size:
                return total

    def suspicious_users(self, *, window: timedelta, min_distinct_ips: int) -> list[SuspiciousUser]:
        """Return users with sessions opened from at least `min_distinct_ips` addresses
        within the last `window`, most addresses first (one query).

        Counts every session created in the window, revoked, expired or not, and users
        deleted since; sessions without an address count as sessions but not as addresses.
        """
        if not isinstance(window, timedelta) or window <= timedelta(0):
            raise ValidationError({"window": ["Enter a positive timedelta."]})
        if (
            isinstance(min_distinct_ips, bool)
            or not isinstance(min_distinct_ips, int)
            or min_distinct_ips < 1
        ):
            raise ValidationError({"min_distinct_ips": ["Enter a whole number of at least 1."]})
        now = timezone.now()
        if window > now - _EARLIEST:
            # now - window would raise OverflowError before year 1.
            raise ValidationError({"window": ["Enter a window that starts after year 1."]})
        since = now - window
        email_field = get_user_model().get_email_field_name()
        email = F(f"user__{email_field}") if user_field(email_field) is not None else Value("")
        with translate_errors(UserSession, using=self.using):
            rows = (
                UserSession.objects.using(self.using)
                .filter(created_at__gte=since)
                .values("user_id", user_email=email)
                .annotate(distinct_ips=Count("ip_address", distinct=True), sessions=Count("id"))
                .filter(distinct_ips__gte=min_distinct_ips)
                .order_by("-distinct_ips", "-sessions", "user_id")
            )
            return [
                SuspiciousUser(
                    user_id=row["user_id"],
                    email=row["user_email"],
                    distinct_ips=row["distinct_ips"],
                    sessions=row["sessions"],
                )
                for row in rows
            ]


def _due_for_touch(last_seen_at: datetime | None) -> bool:
    return last_seen_at is None or last_seen_at < timezone.now() - TOUCH_INTERVAL


def _revoked_entry(session_id: uuid.UUID, when: datetime, reason: str) -> AuditEntry:
    return AuditEntry(
        "revoked",
        _ENTITY,
        str(session_id),
        {
            "revoked_at": {"old": None, "new": when.isoformat()},
            "revoked_reason": {"old": "", "new": reason},
        },
    )
