"""config/settings.py: production values pass `check --deploy`; DEBUG keeps plain http working.

Each test imports the settings in a fresh interpreter, since the module reads the
environment once and this process runs them under pytest (where TESTING relaxes them).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# Never connected to: the checks below run without a database.
UNUSED_DATABASE_URL = "postgres://nobody@127.0.0.1:1/unused"
HTTPS_VARIABLES = (
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_PROXY_SSL_HEADER",
)


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python <args>` in the project directory with only `env` set among the settings'
    variables (HTTPS ones from the caller's environment are dropped)."""
    base = {k: v for k, v in os.environ.items() if k not in HTTPS_VARIABLES}
    base |= {"DATABASE_URL": UNUSED_DATABASE_URL, "DJANGO_SETTINGS_MODULE": "config.settings"}
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settings_values(**env: str) -> dict[str, object]:
    """Return the HTTPS settings as a fresh import of config.settings sees them under `env`."""
    code = (
        "import json, config.settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {list(HTTPS_VARIABLES)!r}}}))"
    )
    result = run(["-c", code], **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_check_deploy_passes_with_production_values():
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="example.com",
    )

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_https_settings_are_off_when_debug_is_on():
    values = settings_values(DEBUG="1")

    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_SECURE"] is False


def test_proxy_header_and_trusted_origins_are_read_from_the_environment():
    values = settings_values(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        CSRF_TRUSTED_ORIGINS="https://example.com, https://admin.example.com",
        SECURE_HSTS_SECONDS="3600",
    )

    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://example.com", "https://admin.example.com"]
    assert values["SECURE_HSTS_SECONDS"] == 3600
    assert values["SECURE_SSL_REDIRECT"] is True
