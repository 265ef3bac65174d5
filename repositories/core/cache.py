"""Values in Django's cache that are never served older than a committed write.

Each key has a generation counter that a committed write increments (`next_generation`,
run from `transaction.on_commit`). A cached value is stored with the generation read
*before* its database read and served only while that generation is current: a reader
that loaded the old value before a writer committed can still store it, but nobody is
served it once the writer's transaction has committed. Versioned keys rather than
delete-on-commit, which a slow reader's late `add` would undo.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

from django.core.cache import cache

__all__ = ["cached_or_load", "generation_key", "next_generation"]


def generation_key(value_key: str) -> str:
    """Return the cache key of `value_key`'s generation counter."""
    return f"{value_key}:generation"


def cached_or_load(
    value_key: str, load: Callable[[], tuple[bool, Any]], *, timeout: int
) -> tuple[bool, Any]:
    """Return (found, value) for `value_key` from the cache, calling `load` on a miss."""
    counter = generation_key(value_key)
    cached = cache.get_many([counter, value_key])
    generation = cached.get(counter)
    if generation is None:
        # Never written, or evicted: start from a random point so an entry stored under
        # an evicted generation can never match again.
        cache.add(counter, secrets.randbits(62), timeout=None)
        generation = cache.get(counter)
    entry = cached.get(value_key)
    if entry is not None and generation is not None and entry[0] == generation:
        return entry[1], entry[2]
    found, value = load()
    if generation is not None:
        cache.set(value_key, (generation, found, value), timeout=timeout)
    return found, value


def next_generation(value_keys: Sequence[str]) -> None:
    """Make every cached value of these keys stale; call it after the write committed."""
    for value_key in value_keys:
        counter = generation_key(value_key)
        try:
            cache.incr(counter)
        except ValueError:  # never read, or evicted: any new start invalidates
            cache.set(counter, secrets.randbits(62), timeout=None)
    cache.delete_many(list(value_keys))
