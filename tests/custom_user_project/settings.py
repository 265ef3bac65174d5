"""A project with its own user model (accounts.Member) that adds the commerce app.

Member has a text key and soft delete but no `is_active`, names or join date, so each
behaviour of repositories.user_model degrades as far as it can. `make test` runs
tests/custom_user_project/ under these settings (`pytest --ds ...`). Everything else is
the auth.User project's settings (tests/auth_user_project/settings.py).
"""

from __future__ import annotations

from tests.auth_user_project.settings import *  # noqa: F403
from tests.auth_user_project.settings import DATABASES, INSTALLED_APPS, _test_name

INSTALLED_APPS = [
    *INSTALLED_APPS[: INSTALLED_APPS.index("domain")],
    "tests.custom_user_project.accounts",
    *INSTALLED_APPS[INSTALLED_APPS.index("domain") :],
]
ROOT_URLCONF = "tests.custom_user_project.urls"
AUTH_USER_MODEL = "accounts.Member"
AUTHENTICATION_BACKENDS = ["domain.auth.EmailBackend"]

# Its own test database, so it never meets the main suite's.
DATABASES["default"]["TEST"] = {"NAME": f"{_test_name}_custom_user"}
