"""Create the demo superuser once and print its login: `manage.py ensure_admin`.

The password is random and kept in `.admin-credentials` (git-ignored) next to manage.py, so
every run prints the same login. When that file is lost, the password is reset and the file
rewritten; when the user exists but cannot log in with the stored password, likewise.
Creating the user or resetting its password writes an audit-log row (actor: ensure_admin),
as a repository write would; the password itself is never stored there.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from domain.models import AuditLog, User

ADMIN_EMAIL = "admin@example.com"
ADMIN_URL = "http://127.0.0.1:8000/admin/"
REDACTED = "[redacted]"


def default_credentials_path() -> Path:
    """Return where the admin password is kept: `.admin-credentials` in the project root."""
    return Path(settings.BASE_DIR) / ".admin-credentials"


def read_password(path: Path, email: str) -> str | None:
    """Return the stored password for `email`, or None when the file is missing or stale."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    if values.get("email") != email or not values.get("password"):
        return None
    return values["password"]


def write_password(path: Path, email: str, password: str) -> None:
    """Store the login in `path`, readable by the owner only."""
    path.write_text(f"email={email}\npassword={password}\n", encoding="utf-8")
    path.chmod(0o600)


def audit(user: User, action: str, changes: dict[str, object]) -> None:
    """Record what this command did to the admin user in the audit log."""
    AuditLog.objects.create(
        actor_repr="ensure_admin",
        action=action,
        entity_type="user",
        entity_id=str(user.pk),
        changes=changes,
    )


class Command(BaseCommand):
    help = "Create the admin superuser (once) and print its login and the admin URL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", default=ADMIN_EMAIL)
        parser.add_argument(
            "--credentials-file",
            type=Path,
            default=None,
            help="Where the password is kept (default: .admin-credentials in the project).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        email: str = options["email"]
        path: Path = options["credentials_file"] or default_credentials_path()
        password = read_password(path, email)
        with transaction.atomic():
            user = User.objects.with_email(email).select_for_update().first()
            if user is None:
                password = password or secrets.token_urlsafe(18)
                user = User.objects.create_superuser(email, password)
                fields = {"email": user.email, "is_staff": True, "is_superuser": True}
                audit(user, "created", fields | {"password": REDACTED})
                action = "Created"
            elif password is None or not user.check_password(password):
                password = secrets.token_urlsafe(18)
                user.set_password(password)
                user.is_active = user.is_staff = user.is_superuser = True
                user.save(update_fields=["password", "is_active", "is_staff", "is_superuser"])
                audit(user, "updated", {"password": {"old": REDACTED, "new": REDACTED}})
                action = "Reset the password of"
            else:
                action = "Reusing"
        write_password(path, email, password)
        self.stdout.write(
            f"{action} admin login: {email} / {password}  (saved in {path.name})\n"
            f"Admin: {ADMIN_URL}"
        )
