"""What the commerce repositories need of the project's user model (AUTH_USER_MODEL).

`domain.User` is the default and recommended user model. Orders, sessions and the audit
trail work with any other (`auth.User`, a project's own), each need degrading to what
that model records:

- keys: users are keyed like the model's primary key (UUID, integer, ...);
- live users: a user with `deleted_at` set is gone, if the model has that field;
- active users: live and, if the model has an `is_active` field, active.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Field, Q
from django_filters import filters

from repositories.core.filters import key_filter
from repositories.core.keys import parse_key

__all__ = [
    "ACTIVE_FIELD",
    "DELETED_FIELD",
    "active_users",
    "live_users",
    "parse_user_key",
    "user_field",
    "user_key_filter",
    "user_pk",
]

#: domain.User's soft-delete column, honoured in any user model that has it.
DELETED_FIELD = "deleted_at"
#: Django's "may log in" flag (AbstractBaseUser has it as a constant True, not a field).
ACTIVE_FIELD = "is_active"


@functools.cache
def _concrete_fields() -> dict[str, Field[Any, Any]]:
    return {field.name: field for field in get_user_model()._meta.concrete_fields}


def user_field(name: str) -> Field[Any, Any] | None:
    """Return the user model's concrete field `name`, or None when it has none."""
    return _concrete_fields().get(name)


def user_pk() -> Field[Any, Any]:
    """Return the user model's primary key field."""
    pk = get_user_model()._meta.pk
    if pk is None:  # pragma: no cover - every concrete model has one
        raise LookupError("The user model has no primary key.")
    return pk


def live_users(prefix: str = "") -> Q:
    """Return the condition "not soft-deleted" on users, empty if the model has no
    `deleted_at`; `prefix` is the path to the user (e.g. "user__")."""
    if user_field(DELETED_FIELD) is None:
        return Q()
    return Q(**{f"{prefix}{DELETED_FIELD}__isnull": True})


def active_users(prefix: str = "") -> Q:
    """Return the condition on users who may log in and place orders: live, and active
    if the model has an `is_active` field; `prefix` as for live_users."""
    if user_field(ACTIVE_FIELD) is None:
        return live_users(prefix)
    return live_users(prefix) & Q(**{f"{prefix}{ACTIVE_FIELD}": True})


def parse_user_key(value: object) -> Any:
    """Return `value` (a user, its key or the key's text) as a user key, else None."""
    return parse_key(user_pk(), value)


def user_key_filter(field_name: str) -> filters.Filter:
    """Return a filter on `field_name`, a foreign key to users, typed like their key."""
    return key_filter(user_pk(), field_name)
