#!/usr/bin/env python
"""Lint the SQL of every migration with squawk (https://squawkhq.com); part of `make lint`.

    scripts/squawk_migrations.py [app_label ...]      (default: domain)

For every migration of the apps, forwards and backwards, the output of `manage.py
sqlmigrate` is written to <app>/<migration>.sql and <app>/<migration>.backwards.sql in a
temporary directory, and ./node_modules/.bin/squawk (`npm ci` installs the version that
package-lock.json pins) checks them all with the rules of .squawk.toml. A migration opts
out of a rule for one direction with `squawk_ignore` / `squawk_ignore_backwards`
(domain/migration_ops.py). The exit status is squawk's.

sqlmigrate connects to the database (DATABASE_URL, or the embedded PostgreSQL) to read
which migrations are applied; the SQL it prints does not depend on them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQUAWK = ROOT / "node_modules" / ".bin" / "squawk"


def main(app_labels: list[str]) -> int:
    if not SQUAWK.exists():
        sys.stderr.write(f"{SQUAWK} is missing: run `npm ci` (or `make lint`)\n")
        return 2
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db.migrations.loader import MigrationLoader

    names = sorted(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    with tempfile.TemporaryDirectory(prefix="squawk-") as tmp:
        files = []
        for app_label, name in names:
            if app_label not in app_labels:
                continue
            (Path(tmp) / app_label).mkdir(exist_ok=True)
            for suffix, backwards in ((".sql", False), (".backwards.sql", True)):
                out = StringIO()
                call_command("sqlmigrate", app_label, name, backwards=backwards, stdout=out)
                path = Path(app_label) / f"{name}{suffix}"
                (Path(tmp) / path).write_text(out.getvalue())
                files.append(str(path))
        if not files:
            sys.stderr.write(f"no migrations found for {', '.join(app_labels)}\n")
            return 2
        sys.stdout.write(f"squawk: {len(files)} files of {', '.join(app_labels)} migrations\n")
        sys.stdout.flush()
        command = [str(SQUAWK), "--config", str(ROOT / ".squawk.toml"), *files]
        return subprocess.run(command, cwd=tmp, check=False).returncode  # noqa: S603


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["domain"]))
