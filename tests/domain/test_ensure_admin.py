"""ensure_admin: one superuser, a stable random password in a git-ignored file."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from domain.management.commands.ensure_admin import default_credentials_path, read_password
from domain.models import User

pytestmark = pytest.mark.django_db


def ensure(path):
    out = StringIO()
    call_command("ensure_admin", "--credentials-file", str(path), stdout=out)
    return out.getvalue()


def test_creates_superuser_once_and_prints_login_and_url(tmp_path):
    creds = tmp_path / ".admin-credentials"
    first = ensure(creds)
    password = read_password(creds, "admin@example.com")
    assert password and len(password) >= 20
    assert f"admin@example.com / {password}" in first
    assert "http://127.0.0.1:8000/admin/" in first
    admin = User.objects.with_email("admin@example.com").get()
    assert admin.is_superuser and admin.is_staff
    assert authenticate(None, username="admin@example.com", password=password) == admin
    assert creds.stat().st_mode & 0o077 == 0  # owner-only

    second = ensure(creds)
    assert "Reusing" in second
    assert password in second
    assert "http://127.0.0.1:8000/admin/" in second
    assert User.objects.count() == 1


def test_lost_file_resets_the_password(tmp_path):
    creds = tmp_path / ".admin-credentials"
    ensure(creds)
    old = read_password(creds, "admin@example.com")
    creds.unlink()
    out = ensure(creds)
    new = read_password(creds, "admin@example.com")
    assert "Reset" in out
    assert new != old
    assert authenticate(None, username="admin@example.com", password=new) is not None
    assert authenticate(None, username="admin@example.com", password=old) is None


def test_stale_file_for_another_email_is_replaced(tmp_path):
    creds = tmp_path / ".admin-credentials"
    creds.write_text("email=someone@example.com\npassword=x\n", encoding="utf-8")
    ensure(creds)
    assert read_password(creds, "admin@example.com")


def test_wrong_stored_password_is_reset_and_restores_admin_rights(tmp_path):
    creds = tmp_path / ".admin-credentials"
    User.objects.create_user("admin@example.com", "something-else")
    creds.write_text("email=admin@example.com\npassword=not-it\n", encoding="utf-8")
    out = ensure(creds)
    assert "Reset" in out
    admin = User.objects.with_email("admin@example.com").get()
    assert admin.is_superuser and admin.is_staff and admin.is_active


def test_default_credentials_file_is_git_ignored():
    path = default_credentials_path()
    gitignore = path.parent / ".gitignore"
    assert path.name in gitignore.read_text(encoding="utf-8").split()


def test_creating_and_resetting_the_admin_is_audited_without_the_password(tmp_path):
    from domain.models import AuditLog

    creds = tmp_path / ".admin-credentials"
    ensure(creds)
    admin = User.objects.with_email("admin@example.com").get()
    entry = AuditLog.objects.get(action="created", entity_type="user")
    assert entry.entity_id == str(admin.pk)
    assert entry.actor_repr == "ensure_admin"
    assert entry.changes["password"] == "[redacted]"
    ensure(creds)  # reused: nothing written
    assert AuditLog.objects.count() == 1
    creds.unlink()
    password = ensure(creds).split(" / ")[1].split()[0]
    reset = AuditLog.objects.get(action="updated", entity_id=str(admin.pk))
    assert password not in str(reset.changes)


def test_createsuperuser_with_a_taken_email_explains_itself():
    from django.core.management.base import CommandError

    User.objects.create_user("taken@example.com", "x")
    with pytest.raises(CommandError, match="already exists"):
        call_command(
            "createsuperuser", "--noinput", "--email", "TAKEN@example.com", stdout=StringIO()
        )
    assert User.objects.count() == 1
