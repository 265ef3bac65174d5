"""Collect this directory only under its own settings (tests.custom_user_project.settings)."""

from __future__ import annotations

from django.conf import settings

collect_ignore_glob = [] if settings.AUTH_USER_MODEL == "accounts.Member" else ["test_*.py"]
