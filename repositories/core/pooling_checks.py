"""The startup check for `REPOSITORIES["TRANSACTION_POOLING"]` (PgBouncer, transaction mode).

Behind a pooler in transaction mode, consecutive transactions of one Django connection run
on different server sessions, and one server session serves many clients in turn. What a
connection sets for its whole session is therefore lost for the next transaction *and*
inherited by another client. With the setting on, `manage.py check` (and every command that
runs checks: runserver, migrate, test) refuses, for each alias of DATABASES:

- repositories.E101 `OPTIONS["options"]` with `-c name=value` (or `--name=value`): a
  startup parameter that PgBouncer refuses or applies to one server session only;
- repositories.E102 `OPTIONS["assume_role"]`: Django runs `SET ROLE` once per connection;
- repositories.E103 `OPTIONS["prepare_threshold"]` other than None: psycopg prepares named
  statements that exist on one server session only (`prepared statement "_pg3_0" does not
  exist` / `DuplicatePreparedStatement`);
- repositories.E104 `DISABLE_SERVER_SIDE_CURSORS` not True: `QuerySet.iterator()` would
  declare a cursor in one transaction and fetch from it in the next.

Allowed, deliberately: `server_side_binding` (with prepare_threshold None, psycopg sends
unnamed statements, which live within one transaction), `CONN_MAX_AGE` > 0 and Django's
pool (a client connection to PgBouncer holds no server session between transactions).
The layer itself sets timeouts only with `set_config(..., true)` (SET LOCAL); the test
tests/repositories/test_session_state.py shows no public method leaves session state.
"""

from __future__ import annotations

import shlex
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from repositories.core.conf import setting

__all__ = ["check_transaction_pooling"]

_HINT = 'REPOSITORIES["TRANSACTION_POOLING"] is True (PgBouncer in transaction mode): '


def _session_options(options: Any) -> list[str]:
    """Return the `-c` / `--name=value` settings of a libpq `options` string."""
    if not isinstance(options, str):
        return []
    try:
        words = shlex.split(options)
    except ValueError:
        words = options.split()
    found: list[str] = []
    for index, word in enumerate(words):
        if word == "-c" and index + 1 < len(words):
            found.append(words[index + 1])
        elif (word.startswith("-c") and len(word) > 2) or (word.startswith("--") and "=" in word):
            found.append(word[2:])
    return found


@register("repositories")
def check_transaction_pooling(**kwargs: Any) -> list[CheckMessage]:
    """Refuse database settings that cannot work behind a transaction-mode pooler."""
    if not setting("TRANSACTION_POOLING"):
        return []
    errors: list[CheckMessage] = []
    for alias, database in getattr(settings, "DATABASES", {}).items():
        options = database.get("OPTIONS") or {}
        session = _session_options(options.get("options"))
        if session:
            errors.append(
                Error(
                    f'DATABASES["{alias}"]["OPTIONS"]["options"] sets session settings: '
                    f"{', '.join(session)}.",
                    hint=_HINT + "set them per role or database (ALTER ROLE/DATABASE ... "
                    "SET), or per transaction (SET LOCAL, atomic(statement_timeout=...)).",
                    id="repositories.E101",
                )
            )
        if options.get("assume_role"):
            errors.append(
                Error(
                    f'DATABASES["{alias}"]["OPTIONS"]["assume_role"] runs SET ROLE for the '
                    "session.",
                    hint=_HINT + "connect as that role (USER) instead.",
                    id="repositories.E102",
                )
            )
        if options.get("prepare_threshold") is not None:
            errors.append(
                Error(
                    f'DATABASES["{alias}"]["OPTIONS"]["prepare_threshold"] makes psycopg '
                    "prepare named statements, which exist on one server session only.",
                    hint=_HINT + "leave prepare_threshold out (None: no prepared statements).",
                    id="repositories.E103",
                )
            )
        if database.get("DISABLE_SERVER_SIDE_CURSORS") is not True:
            errors.append(
                Error(
                    f'DATABASES["{alias}"]["DISABLE_SERVER_SIDE_CURSORS"] is not True: '
                    "QuerySet.iterator() would fetch from a cursor on another server session.",
                    hint=_HINT + 'set DATABASES["' + alias + '"]["DISABLE_SERVER_SIDE_CURSORS"]'
                    " = True.",
                    id="repositories.E104",
                )
            )
    return errors
