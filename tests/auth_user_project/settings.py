"""An existing project that keeps Django's `auth.User` and adds the commerce app.

domain.User is swapped out here: no `users` table, domain's foreign keys point at
auth_user. `make test` runs tests/auth_user_project/ under these settings
(`pytest --ds tests.auth_user_project.settings`), and CI runs `manage.py check` with them.
"""

from __future__ import annotations

import os

from config.settings import *  # noqa: F403
from config.settings import DATABASES, DEBUG_TOOLBAR, TESTING

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_filters",
    "domain",
    "repositories",
]
if TESTING:
    INSTALLED_APPS.append("zeal")  # N+1 detection, as in the main suite
if DEBUG_TOOLBAR:
    INSTALLED_APPS.append("debug_toolbar")  # config.settings added its middleware

AUTH_USER_MODEL = "auth.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "domain.auth.EmailBackend",
]
SILENCED_SYSTEM_CHECKS = []

# Its own test database, so it never meets the main suite's.
_test_name = os.environ.get("TEST_DATABASE_NAME") or "test_repositories"
DATABASES["default"]["TEST"] = {"NAME": f"{_test_name}_auth_user"}
