"""The Django admin of the commerce schema, registered when the `domain` app is installed
(the generic layer alone registers nothing). The user pages are registered only while
domain.User is the project's user model."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings

if apps.is_installed("domain"):
    from repositories.admin import catalog, orders, system  # noqa: F401 - registers

    if settings.AUTH_USER_MODEL == "domain.User":
        from repositories.admin import users  # noqa: F401 - registers
