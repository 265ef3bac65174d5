"""Authentication by email, case-insensitively, among live users."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import FieldDoesNotExist
from django.db.models import QuerySet
from django.http import HttpRequest

from domain.models import User


class EmailBackend(ModelBackend):
    """Log in with email and password; deleted and inactive users cannot log in.

    With a user model other than domain.User, "deleted" applies only if it has a
    `deleted_at` field, and, as its emails need not be unique, an email shared by several
    live users logs nobody in.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        user_model = get_user_model()
        email_field = user_model.get_email_field_name()
        email = username if username is not None else kwargs.get(email_field)
        if not email or password is None:
            return None
        # Two rows at most: one is the user, two say the email is ambiguous.
        found = list(_live_users_with_email(user_model, email_field, email)[:2])
        if len(found) != 1:
            user_model().set_password(password)  # same work as a real check: no timing oracle
            return None
        user = found[0]
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None


def _live_users_with_email(user_model: type[User], email_field: str, email: str) -> QuerySet[User]:
    if user_model is User:  # unique among live users (the lower(email) index)
        return User.objects.with_email(email)
    users = user_model._default_manager.filter(**{f"{email_field}__iexact": email})
    try:
        user_model._meta.get_field("deleted_at")
    except FieldDoesNotExist:
        return users
    return users.filter(deleted_at__isnull=True)
