"""User accounts: lookup by email, active-user listings, verification, passwords.

For the project's user model, AUTH_USER_MODEL: domain.User (recommended) or another one,
whose fields decide what degrades (see UserRepository).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import django_filters as filters
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from django.db.models import Q, QuerySet

from domain.models import User
from repositories.core.base import BaseRepository
from repositories.core.error_mapping import translate_errors
from repositories.core.filters import StrictFilterSet
from repositories.core.transactions import atomic
from repositories.errors import InvalidQueryError, ValidationError
from repositories.sessions import SessionRepository
from repositories.user_model import live_users, user_field

UserModel = get_user_model()
#: domain.User is the user model (not swapped out for another AUTH_USER_MODEL).
_DOMAIN_USER = UserModel is User
_EMAIL_FIELD = UserModel.get_email_field_name()
_EMAIL_MAX_LENGTH = getattr(user_field(_EMAIL_FIELD), "max_length", None) or 254
#: When accounts were created: domain.User's created_at, AbstractUser's date_joined.
_JOINED = next((name for name in ("created_at", "date_joined") if user_field(name)), None)
_validate_email = EmailValidator()


def _has(*names: str) -> bool:
    return all(user_field(name) is not None for name in names)


class UserFilterSet(StrictFilterSet):
    """Criteria for listing users: verification, join dates, name and email contains.

    Another user model gets the filters its fields allow (auth.User: no email_verified;
    join dates are its date_joined).
    """

    if _has("email_verified"):
        email_verified = filters.BooleanFilter()
    if _has("is_active"):
        is_active = filters.BooleanFilter()
    if _JOINED is not None:
        joined_after = filters.IsoDateTimeFilter(field_name=_JOINED, lookup_expr="gte")
        joined_before = filters.IsoDateTimeFilter(field_name=_JOINED, lookup_expr="lt")
    if _has("first_name", "last_name"):
        name = filters.CharFilter(method="filter_name")
    if _has(_EMAIL_FIELD):
        email = filters.CharFilter(field_name=_EMAIL_FIELD, lookup_expr="icontains")

    class Meta:
        model = UserModel
        fields: tuple[str, ...] = ()

    def filter_name(self, queryset: QuerySet[User], name: str, value: str) -> QuerySet[User]:
        """Keep users whose first or last name contains every word of `value`."""
        for word in value.split():
            queryset = queryset.filter(Q(first_name__icontains=word) | Q(last_name__icontains=word))
        return queryset


class UserRepository(BaseRepository[User]):
    """Read and write user accounts; soft-deleted users are invisible unless stated.

    Emails are stripped and keep their case, but are unique case-insensitively among
    live users: soft-deleting a user frees the email, and `restore` then raises
    ConflictError (fields ("email",), with_deleted_row=True) if it was taken meanwhile.
    Passwords are only ever stored hashed (Django's hashers, after its password
    validators), and audit rows show them as "[redacted]".

    Serves the project's user model. With one other than domain.User, what needs a field
    it lacks degrades: no soft delete without `deleted_at` (soft_delete/restore raise
    ValidationError), no verification without `email_verified` (verify_email raises
    ValidationError), emails unique only if that model makes them so (find_by_email
    then returns the oldest live match), filters and sorts on the fields it has.
    """

    model = UserModel
    read_methods = BaseRepository.read_methods | {"find_by_email", "find_active_users"}
    audit = True
    lookup_methods = BaseRepository.lookup_methods | {"find_by_email"}
    filterset_class = UserFilterSet
    sortable_fields = tuple(
        name for name in (_EMAIL_FIELD, _JOINED, "last_name") if name and user_field(name)
    )
    default_order = (f"-{_JOINED}",) if _JOINED else ()

    def find_by_email(self, email: str) -> User | None:
        """Return the live user with this email (any case), or None (one query).

        Uses the unique index on lower(email). Raises InvalidQueryError for a non-string.
        """
        if not isinstance(email, str):
            raise InvalidQueryError({"email": ["Enter a string."]})
        if not email.strip():
            return None
        with translate_errors(UserModel, using=self.using):
            if _DOMAIN_USER:
                queryset = User.objects.db_manager(self.using).get_queryset().with_email(email)
                # [:1] rather than first(): no ORDER BY, the unique index answers alone.
                return next(iter(queryset[:1]), None)
            # Another user model may let live users share an email: the oldest one wins.
            users = UserModel._default_manager.db_manager(self.using)
            lookup = {f"{_EMAIL_FIELD}__iexact": email.strip()}
            return users.filter(live_users(), **lookup).order_by("pk").first()

    def find_active_users(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        order_by: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[User]:
        """Return live, active users matching `filters` (see UserFilterSet), one query.

        Offset and cursor pages of the same listing: `paginate`/`paginate_cursor` with
        `{"is_active": True, ...}`.
        """
        return self.find_many(
            self._active_filters(filters), order_by=order_by, limit=limit, offset=offset
        )

    def create(self, data: Mapping[str, Any]) -> User:
        """Create a user; a "password" is validated and stored hashed (absent: unusable).

        Raises ConflictError when a live user has the email (any case).
        """
        return super().create(self._prepare(data, user=None, creating=True))

    def create_many(
        self, rows: Iterable[Mapping[str, Any]], *, batch_size: int = 1000
    ) -> list[User]:
        """Create users set-based; each row's "password" is validated and hashed."""
        if isinstance(rows, Iterable) and not isinstance(rows, str | bytes | Mapping):
            rows = [self._prepare(row, user=None, creating=True) for row in rows]
        return super().create_many(rows, batch_size=batch_size)

    def update(
        self, id: object, data: Mapping[str, Any], *, expected_version: int | None = None
    ) -> User:
        """Update a live user; a new "password" is hashed and revokes all their sessions.

        The password change, the revocation and their audit rows share one transaction.
        """
        if not isinstance(data, Mapping) or "password" not in data:
            return super().update(
                id, self._prepare(data, user=None), expected_version=expected_version
            )
        with atomic(using=self.using):
            user = self.get_by_id(id)
            prepared = self._prepare(data, user=user)
            updated = super().update(id, prepared, expected_version=expected_version)
            SessionRepository(using=self.using).revoke_all(updated.pk, reason="password_changed")
        return updated

    def update_many(self, filters: Mapping[str, Any] | None, data: Mapping[str, Any]) -> int:
        """Update matching live users set-based; passwords cannot be set in bulk."""
        if isinstance(data, Mapping) and "password" in data:
            raise ValidationError(
                {"password": ["Set passwords one user at a time with set_password()."]}
            )
        return super().update_many(filters, self._prepare(data, user=None))

    def verify_email(self, id: object) -> User:
        """Mark the user's email verified and return the user.

        Idempotent: an already verified user is returned as is, with no write and no
        audit row. Raises NotFoundError for an unknown, malformed or deleted user.
        """
        user = self.get_by_id(id)
        # A user model without the field: update() refuses it (ValidationError).
        if getattr(user, "email_verified", False):
            return user
        return self.update(user.pk, {"email_verified": True})

    def set_password(self, id: object, raw: str) -> User:
        """Validate and hash `raw` as the user's password, revoking all their sessions.

        Runs Django's AUTH_PASSWORD_VALIDATORS (ValidationError on failure). The hash
        write, the revocation (reason "password_changed") and the audit rows, where the
        password shows as "[redacted]", commit together.
        """
        if not isinstance(raw, str) or not raw:
            raise ValidationError({"password": ["Enter a non-empty string."]})
        return self.update(id, {"password": raw})

    def soft_delete(self, id: object) -> User:
        """Soft-delete the user, freeing the email, and revoke all their sessions."""
        with atomic(using=self.using):
            user = super().soft_delete(id)
            SessionRepository(using=self.using).revoke_all(user.pk, reason="user_deleted")
        return user

    def _active_filters(self, filters: Mapping[str, Any] | None) -> dict[str, Any]:
        if filters is None:
            filters = {}
        if not isinstance(filters, Mapping):
            raise InvalidQueryError("filters must be a mapping of filter names to values")
        if "is_active" in filters:
            raise InvalidQueryError(
                {"is_active": ["find_active_users always lists active users; use find_many."]}
            )
        if "is_active" not in UserFilterSet.base_filters:
            return dict(filters)  # a user model without the field: every live user
        return {**filters, "is_active": True}

    def _prepare(self, data: Any, *, user: User | None, creating: bool = False) -> Any:
        """Return `data` with the email normalised and any password validated and hashed.

        Anything that is not a mapping is passed on for the base class to refuse.
        """
        if not isinstance(data, Mapping):
            return data
        prepared = dict(data)
        if _EMAIL_FIELD in prepared:
            prepared[_EMAIL_FIELD] = _normalise_email(prepared[_EMAIL_FIELD])
        if "password" in prepared:
            prepared["password"] = _hash_password(prepared["password"], user, prepared)
        elif creating:
            prepared["password"] = make_password(None)  # unusable until one is set
        return prepared


def _normalise_email(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError({"email": ["Enter a valid email address."]})
    email = value.strip()
    if len(email) > _EMAIL_MAX_LENGTH:
        raise ValidationError(
            {"email": [f"Ensure this value has at most {_EMAIL_MAX_LENGTH} characters."]}
        )
    try:
        _validate_email(email)
    except DjangoValidationError as exc:
        raise ValidationError({"email": list(exc.messages)}) from None
    return email


def _hash_password(raw: object, user: User | None, data: Mapping[str, Any]) -> str:
    if raw is None:
        return make_password(None)  # an unusable password: no login until one is set
    if not isinstance(raw, str) or not raw:
        raise ValidationError({"password": ["Enter a non-empty string."]})
    subject = user
    if subject is None:
        # What the similarity validator compares the password with.
        names = {UserModel.USERNAME_FIELD, _EMAIL_FIELD, "first_name", "last_name"}
        attributes = {k: data[k] for k in names if k in data and user_field(k)}
        subject = UserModel(**{k: v for k, v in attributes.items() if isinstance(v, str)})
    try:
        password_validation.validate_password(raw, subject)
    except DjangoValidationError as exc:
        raise ValidationError({"password": list(exc.messages)}) from None
    return make_password(raw)
