"""Refuse argument values PostgreSQL cannot store exactly before any SQL is sent.

A lone surrogate (`"\\ud800"`, which `json.loads` yields from any JSON body) cannot be
encoded as UTF-8 and a NUL byte cannot be stored in a PostgreSQL text value; either
would otherwise surface as a raw `UnicodeEncodeError` or `DataError` deep inside the
driver. Every public repository method checks its arguments with `unstorable_value`
(strings inside mappings, lists and tuples included) and refuses such a call whole.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from repositories.core.errors import InvalidQueryError

__all__ = ["MAX_BIGINT", "argument_path", "check_int", "unstorable_value"]

MAX_BIGINT = 2**63 - 1

#: How deep nested containers are searched (rows of a bulk call are depth 2).
_MAX_DEPTH = 6

_NUL = "\x00"


def _string_problem(text: str) -> str | None:
    if text.isascii():
        return "NUL characters are not allowed." if _NUL in text else None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "Lone surrogate characters are not allowed (the text is not valid Unicode)."
    return "NUL characters are not allowed." if _NUL in text else None


def unstorable_value(value: object, path: tuple[str, ...] = (), depth: int = 0) -> Any:
    """Return `(path, message)` for the first string in `value` that cannot be stored
    (a lone surrogate or a NUL), or None. `path` names where it sits: mapping keys and
    list indexes, the keys themselves included."""
    if isinstance(value, str):
        problem = _string_problem(value)
        return None if problem is None else (path, problem)
    if depth >= _MAX_DEPTH:
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            label = key if isinstance(key, str) else repr(key)
            found = (
                unstorable_value(key, (*path, "<key>"), depth + 1) if isinstance(key, str) else None
            )
            found = found or unstorable_value(item, (*path, label), depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            found = unstorable_value(item, (*path, str(index)), depth + 1)
            if found is not None:
                return found
    return None


def argument_path(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], position: str
) -> str:
    """Return the parameter name of positional argument `position` ("0", "1", ...) or
    keyword `position` of `func` (called with self first), for error messages."""
    if not position.isdigit():
        return position
    names = [
        name
        for name, parameter in inspect.signature(func).parameters.items()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ][1:]
    index = int(position)
    return names[index] if index < len(names) else position


def check_int(name: str, value: object, *, minimum: int, maximum: int = MAX_BIGINT) -> int:
    """Return `value` when it is an int (not a bool) in minimum..maximum, else raise
    InvalidQueryError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidQueryError({name: ["Enter a whole number."]})
    if value < minimum:
        raise InvalidQueryError({name: [f"Must be at least {minimum}."]})
    if value > maximum:
        raise InvalidQueryError({name: [f"Must be at most {maximum}."]})
    return value
