"""The layer's settings (keys of the `REPOSITORIES` Django setting) and their defaults."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, overload

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

#: Every key the layer reads, with the value used when the project does not set it.
#: A project without a `REPOSITORIES` setting gets all of these.
DEFAULTS: Final[Mapping[str, Any]] = MappingProxyType(
    {
        "SLOW_QUERY_MS": 200,  # statements at least this slow are logged
        "MAX_PAGE_SIZE": 100,  # cap on page_size / limit
        "CURSOR_SECRET": "",  # empty: cursors are signed with a key derived from SECRET_KEY
        "SESSION_TTL_SECONDS": 14 * 24 * 3600,  # default lifetime of a user session
        "CONFIG_CACHE_SECONDS": 300,  # SystemConfigRepository.get cache lifetime; 0: no cache
        "AUDIT_MODEL": "domain.AuditLog",  # "app_label.Model" audited repositories write to
        "RECLAIM_THREAD_CONNECTIONS": True,  # a thread that ends gives its connections back
        "SWEEP_POOL_ON_FAILED_CHECK": True,  # one dead pooled connection: check all idle ones
        "RESET_POOLED_SESSIONS": True,  # DISCARD ALL when a connection goes back to the pool
        "READ_REPLICAS": (),  # aliases of streaming replicas reads may go to (routing.py)
        "REPLICA_MAX_LAG_SECONDS": 5,  # a replica further behind than this is skipped
        "REPLICA_HEALTH_SECONDS": 5,  # how long a replica's health (up, lag) is trusted
        "READ_YOUR_WRITES_WAIT_MS": 0,  # wait this long for a replica to replay a write
        "TRANSACTION_POOLING": False,  # behind PgBouncer (transaction mode): refuse session state
    }
)

# The smallest accepted value of each numeric key.
_MINIMUM: Final[Mapping[str, int]] = MappingProxyType(
    {
        "SLOW_QUERY_MS": 0,
        "MAX_PAGE_SIZE": 1,
        "SESSION_TTL_SECONDS": 1,
        "CONFIG_CACHE_SECONDS": 0,
        "REPLICA_MAX_LAG_SECONDS": 0,
        "REPLICA_HEALTH_SECONDS": 0,
        "READ_YOUR_WRITES_WAIT_MS": 0,
    }
)
#: Numeric keys that take fractions (the others are whole numbers).
_FRACTIONAL: Final = frozenset(
    {"SLOW_QUERY_MS", "REPLICA_MAX_LAG_SECONDS", "REPLICA_HEALTH_SECONDS"}
)


@overload
def setting(
    name: Literal["SLOW_QUERY_MS", "REPLICA_MAX_LAG_SECONDS", "REPLICA_HEALTH_SECONDS"],
) -> float: ...
@overload
def setting(
    name: Literal[
        "MAX_PAGE_SIZE", "SESSION_TTL_SECONDS", "CONFIG_CACHE_SECONDS", "READ_YOUR_WRITES_WAIT_MS"
    ],
) -> int: ...
@overload
def setting(name: Literal["READ_REPLICAS"]) -> tuple[str, ...]: ...
@overload
def setting(name: Literal["CURSOR_SECRET", "AUDIT_MODEL"]) -> str: ...
@overload
def setting(
    name: Literal[
        "RECLAIM_THREAD_CONNECTIONS",
        "SWEEP_POOL_ON_FAILED_CHECK",
        "RESET_POOLED_SESSIONS",
        "TRANSACTION_POOLING",
    ],
) -> bool: ...
def setting(name: str) -> Any:
    """Return `settings.REPOSITORIES[name]`, or its default when the project leaves it out.

    Raises KeyError for a name the layer does not read, and ImproperlyConfigured when
    `REPOSITORIES` is not a mapping, holds a key the layer does not know (a typo would
    otherwise be ignored silently), or holds a value of the wrong type or range.
    """
    if name not in DEFAULTS:
        raise KeyError(f"{name!r} is not a repositories setting; known: {', '.join(DEFAULTS)}")
    configured = getattr(settings, "REPOSITORIES", None)
    if configured is None:
        return DEFAULTS[name]
    if not isinstance(configured, Mapping):
        raise ImproperlyConfigured("The REPOSITORIES setting must be a dict.")
    unknown = configured.keys() - DEFAULTS.keys()
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown REPOSITORIES keys: {', '.join(sorted(map(str, unknown)))}; "
            f"known: {', '.join(DEFAULTS)}."
        )
    if name not in configured:
        return DEFAULTS[name]
    return _checked(name, configured[name])


_TEXT = frozenset({"CURSOR_SECRET", "AUDIT_MODEL"})
_FLAGS = frozenset(
    {
        "RECLAIM_THREAD_CONNECTIONS",
        "SWEEP_POOL_ON_FAILED_CHECK",
        "RESET_POOLED_SESSIONS",
        "TRANSACTION_POOLING",
    }
)


def _checked(name: str, value: object) -> Any:
    if name == "READ_REPLICAS":
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ImproperlyConfigured(f'REPOSITORIES["{name}"] must be a list of aliases.')
        if not all(isinstance(alias, str) and alias for alias in value):
            raise ImproperlyConfigured(f'REPOSITORIES["{name}"] must hold alias names.')
        return tuple(value)
    if name in _TEXT:
        if not isinstance(value, str):
            raise ImproperlyConfigured(f'REPOSITORIES["{name}"] must be a string.')
        return value
    if name in _FLAGS:
        if not isinstance(value, bool):
            raise ImproperlyConfigured(f'REPOSITORIES["{name}"] must be True or False.')
        return value
    minimum = _MINIMUM[name]
    numeric = int | float if name in _FRACTIONAL else int
    # `not value >= minimum` also refuses NaN, which compares false with everything.
    if isinstance(value, bool) or not isinstance(value, numeric) or not value >= minimum:
        kind = "a number" if name in _FRACTIONAL else "a whole number"
        raise ImproperlyConfigured(
            f'REPOSITORIES["{name}"] must be {kind} of at least {minimum}, not {value!r}.'
        )
    return value


class CachedFlag:
    """A `REPOSITORIES` on/off flag read once, for per-connection hot paths, and read again
    after `REPOSITORIES` changes (override_settings in tests)."""

    def __init__(
        self,
        name: Literal[
            "RECLAIM_THREAD_CONNECTIONS", "SWEEP_POOL_ON_FAILED_CHECK", "RESET_POOLED_SESSIONS"
        ],
    ) -> None:
        self.name = name
        self._value: bool | None = None
        setting_changed.connect(self._forget, weak=False, dispatch_uid=f"{__name__}.{name}")

    def __bool__(self) -> bool:
        if self._value is None:
            self._value = setting(self.name)
        return self._value

    def _forget(self, *, setting: str, **kwargs: Any) -> None:
        if setting == "REPOSITORIES":
            self._value = None
