"""Transaction scopes for application code (SPEC §5): `atomic` and retrying `transactional`."""

from __future__ import annotations

from repositories.core.transactions import Atomic, atomic, transactional

__all__ = ["Atomic", "atomic", "transactional"]
