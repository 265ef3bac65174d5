#!/usr/bin/env python
"""Mutation-test the generic core, each module against its own tests; `make mutation`.

    scripts/mutation.py [module ...] [--keep] [--diffs]    (default: every module below)

For each (module, test file) pair of MODULES, the project's files (`git ls-files`: tracked
and untracked-not-ignored, so uncommitted edits count) are copied into a temporary
directory whose pyproject.toml [tool.mutmut] gets the pair's only_mutate and test
selection on top of the shared settings. mutmut runs there (`--max-children 1`), so the
working tree is never touched and no mutants/ is left behind, and its pytest uses the test
database `<TEST_DATABASE_NAME or test_mutation>_<module>`, one per pair. Then a table of
mutants, killed, survived and score per module, and the names of the mutants that were
not killed (`--diffs` prints each one's diff too).

The score is killed / (mutants - excluded); timeouts, "no tests" (no test of the file runs
the mutated function) and every other outcome but "killed" count against it. A mutant is
excluded only when its sole change is inside a string literal that the pair's `messages`
lists (error and log message text, never a key, lookup or SQL); excluded mutants are listed.
Exit status 1 when any module scores below THRESHOLD, 2 on a usage or mutmut error.

Not part of `make test` or CI: a module takes minutes. `--keep` leaves the copies for
`mutmut show <name>` / `mutmut browse` inside them and prints where they are.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize
import tomllib
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THRESHOLD = 90.0


class MutationError(Exception):
    """mutmut or the copy failed: no figures."""


@dataclass(frozen=True)
class Target:
    """A module of the generic core, the test file it is measured against, and the exact
    text of the message string literals whose string-only mutants are not counted."""

    module: str
    tests: str
    messages: tuple[str, ...] = ()


MODULES: dict[str, Target] = {
    "pagination": Target(
        "repositories/core/pagination.py",
        "tests/repositories/test_pagination.py",
        # RowComparison's ValueError: a programming error, never shown to a client.
        messages=("a row comparison needs matching columns, values and > or <",),
    ),
    "filters": Target("repositories/core/filters.py", "tests/repositories/test_filters.py"),
    "error_mapping": Target(
        "repositories/core/error_mapping.py", "tests/repositories/test_error_mapping.py"
    ),
    "transactions": Target(
        "repositories/core/transactions.py", "tests/repositories/test_transactions.py"
    ),
}


@dataclass
class Outcome:
    """What mutmut said about one module's mutants."""

    name: str
    status_by_mutant: dict[str, str]
    diff_by_mutant: dict[str, str] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)

    @property
    def counted(self) -> int:
        return len(self.status_by_mutant) - len(self.excluded)

    @property
    def killed(self) -> int:
        return sum(status == "killed" for status in self.status_by_mutant.values())

    @property
    def not_killed(self) -> list[str]:
        return [
            mutant
            for mutant, status in self.status_by_mutant.items()
            if status != "killed" and mutant not in self.excluded
        ]

    @property
    def score(self) -> float:
        return 100.0 * self.killed / self.counted if self.counted else 100.0


def project_files() -> list[str]:
    """Return the project's files as git sees them: tracked and new, not ignored."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],  # noqa: S607
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [name for name in listing.split("\0") if name and (ROOT / name).is_file()]


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(_toml_string(value) for value in values) + "]"


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pyproject_for(target: Target, pyproject: str) -> str:
    """Return pyproject.toml with [tool.mutmut] narrowed to `target` (shared keys kept)."""
    section = re.search(r"^\[tool\.mutmut\]\n(.*?)(?=^\[|\Z)", pyproject, re.M | re.S)
    if section is None:
        raise MutationError("pyproject.toml has no [tool.mutmut] section")
    narrowed = {
        "only_mutate": _toml_list([target.module]),
        # One test database per pair, created by the first pytest run and reused by the
        # mutants' runs (creating it for every mutant would double the time).
        "pytest_add_cli_args": _toml_list([*shared_pytest_arguments(pyproject), "--reuse-db"]),
        "pytest_add_cli_args_test_selection": _toml_list([target.tests]),
        # The copy is no repository: hash files to detect changes instead of asking git.
        "use_git_change_detection": "false",
    }
    kept = [
        line
        for line in section.group(1).strip().splitlines()
        if line.partition("=")[0].strip() not in narrowed
    ]
    body = "\n".join([*kept, *(f"{key} = {value}" for key, value in narrowed.items())])
    start, end = section.span()
    return f"{pyproject[:start]}[tool.mutmut]\n{body}\n\n{pyproject[end:]}"


def shared_pytest_arguments(pyproject: str) -> list[str]:
    arguments: list[str] = tomllib.loads(pyproject)["tool"]["mutmut"].get("pytest_add_cli_args", [])
    return arguments


def copy_tree(destination: Path, target: Target) -> None:
    for name in project_files():
        path = destination / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, path)
    pyproject = destination / "pyproject.toml"
    pyproject.write_text(pyproject_for(target, pyproject.read_text()))


def mutmut(copy: Path, environment: dict[str, str], *arguments: str) -> str:
    """Run mutmut in `copy` and return its output; MutationError if it fails."""
    return run_in(copy, environment, sys.executable, "-m", "mutmut", *arguments)


def run_in(copy: Path, environment: dict[str, str], *command: str) -> str:
    completed = subprocess.run(  # noqa: S603 - our interpreter, mutmut and psql
        command,
        cwd=copy,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout[-4000:] + completed.stderr[-4000:])
        raise MutationError(f"{' '.join(command[1:])} failed in {copy}")
    return completed.stdout


def parse_results(text: str) -> dict[str, str]:
    """Return {mutant name: status} from `mutmut results --all true`."""
    results: dict[str, str] = {}
    for line in text.splitlines():
        name, colon, status = line.strip().rpartition(": ")
        if colon and "__mutmut_" in name:
            results[name] = status
    return results


def _tokens(lines: list[str]) -> list[tuple[int, str]]:
    ignored = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    ignored |= {tokenize.COMMENT, tokenize.ENDMARKER}
    found: list[tuple[int, str]] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO("\n".join(lines)).readline):
            if token.type not in ignored:
                found.append((token.type, token.string))
    except (tokenize.TokenError, IndentationError):
        pass  # a diff hunk may stop inside brackets: the tokens so far are enough
    return found


def changed_strings(diff: str) -> list[str] | None:
    """Return the original string literals a mutant's diff changes, or None when it
    changes anything else (an operator, a name, a number, a call)."""
    removed = [line[1:] for line in diff.splitlines() if line[:1] == "-" and line[:3] != "---"]
    added = [line[1:] for line in diff.splitlines() if line[:1] == "+" and line[:3] != "+++"]
    before, after = _tokens(removed), _tokens(added)
    if not before or len(before) != len(after):
        return None
    strings: list[str] = []
    for (kind, text), (new_kind, new_text) in zip(before, after, strict=True):
        if (kind, text) == (new_kind, new_text):
            continue
        if kind != tokenize.STRING or new_kind != tokenize.STRING:
            return None
        strings.append(text)
    return strings or None


def is_message_only(diff: str, messages: tuple[str, ...]) -> bool:
    strings = changed_strings(diff)
    return strings is not None and all(_literal_text(s) in messages for s in strings)


def _literal_text(literal: str) -> str:
    """Return a literal's text without prefix and quotes: `f"x {y}."` gives `x {y}.`."""
    body = literal.lstrip("rbfuRBFU")
    quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
    return body[len(quote) : len(body) - len(quote)]


def database_url() -> str:
    """Return DATABASE_URL, or else the URI of the working tree's embedded PostgreSQL
    (started if need be): in a copy, settings would start another one under its .data/."""
    url = os.environ.get("DATABASE_URL", "")
    if url:
        return url
    sys.path.insert(0, str(ROOT))
    from config.embedded_db import EMBEDDED_DATABASE_NAME, embedded_database

    embedded_database(ROOT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, as in config.embedded_db
        import pgserver

    return str(pgserver.get_server(ROOT / ".data" / "pg").get_uri(EMBEDDED_DATABASE_NAME))


def run_module(name: str, target: Target, workdir: Path, url: str) -> Outcome:
    copy = workdir / name
    copy_tree(copy, target)
    database = f"{os.environ.get('TEST_DATABASE_NAME') or 'test_mutation'}_{name}"
    environment = {**os.environ, "DATABASE_URL": url, "TEST_DATABASE_NAME": database}
    sys.stdout.write(f"== {name}: {target.module} against {target.tests}\n")
    sys.stdout.flush()
    drop_database(copy, environment, database)  # --reuse-db must not find an old schema
    try:
        mutmut(copy, environment, "run", "--max-children", "1")
    finally:
        drop_database(copy, environment, database)
    outcome = Outcome(name, parse_results(mutmut(copy, environment, "results", "--all", "true")))
    if not outcome.status_by_mutant:
        raise MutationError(f"mutmut reported no mutants for {target.module}")
    for mutant, status in outcome.status_by_mutant.items():
        if status == "killed":
            continue
        diff = mutmut(copy, environment, "show", mutant).partition("\n")[2]
        outcome.diff_by_mutant[mutant] = diff
        if is_message_only(diff, target.messages):
            outcome.excluded.append(mutant)
    return outcome


def drop_database(copy: Path, environment: dict[str, str], database: str) -> None:
    """Drop the pair's test database through the project's settings (psql via dbshell)."""
    if not re.fullmatch(r"[a-z0-9_]+", database):
        raise MutationError(f"unexpected test database name {database!r}")
    statement = f"DROP DATABASE IF EXISTS {database}"
    command = (sys.executable, "manage.py", "dbshell", "--", "-q", "-c", statement)
    # As `make` runs manage.py: DEBUG unless told otherwise, so no SECRET_KEY is needed.
    run_in(copy, {"DEBUG": "1", **environment}, *command)


def report(outcomes: list[Outcome], *, diffs: bool) -> None:
    out = sys.stdout
    columns = ("killed", "survived", "timeout", "no tests")
    out.write(f"\n{'module':<15}{'mutants':>9}{'excluded':>10}")
    out.write("".join(f"{column:>10}" for column in columns) + f"{'other':>7}{'score':>9}\n")
    for outcome in outcomes:
        statuses = Counter(
            status
            for mutant, status in outcome.status_by_mutant.items()
            if mutant not in outcome.excluded
        )
        other = outcome.counted - sum(statuses[column] for column in columns)
        out.write(f"{outcome.name:<15}{len(outcome.status_by_mutant):>9}")
        out.write(f"{len(outcome.excluded):>10}")
        out.write("".join(f"{statuses[column]:>10}" for column in columns))
        out.write(f"{other:>7}{outcome.score:>8.1f}%\n")
    for outcome in outcomes:
        for title, names in (("not killed", outcome.not_killed), ("excluded", outcome.excluded)):
            if not names:
                continue
            out.write(f"\n{outcome.name}, {title}:\n")
            for mutant in names:
                out.write(f"  {mutant}: {outcome.status_by_mutant[mutant]}\n")
                if diffs:
                    out.write(_indent(outcome.diff_by_mutant[mutant], "    ") + "\n")


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("modules", nargs="*", metavar="module", help=", ".join(MODULES))
    parser.add_argument("--keep", action="store_true", help="keep the copies with mutants/")
    parser.add_argument("--diffs", action="store_true", help="print each survivor's diff")
    arguments = parser.parse_args(argv)
    unknown = sorted(set(arguments.modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown module {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    names = arguments.modules or list(MODULES)
    workdir = Path(tempfile.mkdtemp(prefix="mutation-"))
    try:
        url = database_url()
        outcomes = [run_module(name, MODULES[name], workdir, url) for name in names]
    except MutationError as error:
        sys.stderr.write(f"{error}\n")
        return 2
    finally:
        if arguments.keep:
            sys.stdout.write(f"copies kept in {workdir}\n")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(outcomes, diffs=arguments.diffs)
    below = [outcome.name for outcome in outcomes if outcome.score < THRESHOLD]
    if below:
        sys.stdout.write(f"\nbelow {THRESHOLD:.0f}%: {', '.join(below)}\n")
        return 1
    sys.stdout.write(f"\nevery module at or above {THRESHOLD:.0f}%\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
