"""The boundary of every public repository method: query label, argument checks and
error translation, applied to each public method a repository class defines."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from repositories.core.arguments import argument_path, unstorable_value
from repositories.core.error_mapping import translate_errors
from repositories.core.errors import DatabaseUnavailableError, InvalidQueryError, ValidationError
from repositories.core.instrumentation import query_label
from repositories.core.routing import (
    PRIMARY,
    call_alias,
    current_call_alias,
    mark_down,
    replicas,
    routed_call,
)

__all__ = ["label_methods"]

FuncT = TypeVar("FuncT", bound=Callable[..., Any])

#: Public methods that build no query and so need no label.
_UNLABELLED = frozenset({"get_queryset"})


def _labelled(func: FuncT, name: str) -> FuncT:
    """Wrap a public repository method: its queries carry `/* repo:Class.method */` and
    any database error it lets through becomes a RepositoryError (the connection is
    discarded when it broke), so no public method can leak a raw driver error."""

    def run(self: Any, args: Any, kwargs: Any) -> Any:
        with (
            query_label(f"{type(self).__name__}.{name}"),
            translate_errors(self.model, using=self.using),
        ):
            return func(self, *args, **kwargs)

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if (args or kwargs) and _refuse_unstorable(self, func, name, args, kwargs):
            return None
        if not (getattr(self, "routed", False) and replicas()):
            return run(self, args, kwargs)
        outermost = current_call_alias() is None
        alias = call_alias(writes=name not in self.read_methods)
        try:
            with routed_call(alias):
                return run(self, args, kwargs)
        except DatabaseUnavailableError as exc:
            if alias == PRIMARY or not outermost:
                raise
            # A read only: run it again on the primary, and skip the replica for a while.
            mark_down(alias, str(exc))
        with routed_call(PRIMARY):
            return run(self, args, kwargs)

    wrapper.__repository_labelled__ = True  # type: ignore[attr-defined]
    return cast(FuncT, wrapper)


#: Parameters carrying values to store: an unstorable value there is a ValidationError;
#: anywhere else (criteria, keys, limits) it is an InvalidQueryError.
_VALUE_PARAMETERS = frozenset(
    {
        "data",
        "rows",
        "value",
        "note",
        "user_agent",
        "description",
        "idempotency_key",
        "reason",
        "raw",
        "ip_address",
        "items",
        "to_status",
    }
)


def _refuse_unstorable(
    repository: Any, func: Callable[..., Any], name: str, args: Any, kwargs: Any
) -> bool:
    """Raise for a string argument PostgreSQL cannot store (lone surrogate, NUL); return
    True when the method answers None instead (a lookup, `lookup_methods`).

    Keys (`id`, `<thing>_id`) are left to the method, which refuses malformed ones.
    """
    found = None
    for position, value in [*((str(i), v) for i, v in enumerate(args)), *kwargs.items()]:
        found = unstorable_value(value)
        if found is None:
            continue
        parameter = argument_path(func, args, kwargs, position)
        if parameter == "id" or parameter.endswith("_id"):
            found = None
            continue
        break
    if found is None:
        return False
    if name in repository.lookup_methods:
        return True
    path, message = found
    key = ".".join(path) if path else parameter
    if parameter in _VALUE_PARAMETERS:
        raise ValidationError({key: [message]})
    raise InvalidQueryError({key: [message]})


def label_methods(cls: type) -> None:
    """Wrap every public function `cls` defines (not inherited ones: those are wrapped
    where they are defined) in the boundary; run for each repository class."""
    for name, attribute in list(vars(cls).items()):
        if (
            name.startswith("_")
            or name in _UNLABELLED
            or not inspect.isfunction(attribute)
            or getattr(attribute, "__repository_labelled__", False)
        ):
            continue
        setattr(cls, name, _labelled(attribute, name))
