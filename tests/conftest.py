"""Shared pytest fixtures: factories are in tests/factories.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from zeal import zeal_context


@pytest.fixture(autouse=True)
def _fail_on_n_plus_one() -> Iterator[None]:
    """Fail any test that loads a relation lazily in a loop (django-zeal, ZEAL_RAISE).

    The same relation loaded lazily twice from the same line raises
    `zeal.NPlusOneError`; wrap a deliberate case in `zeal.zeal_ignore()`. Detection
    follows the test's context, so threads a test starts are not watched.
    """
    with zeal_context():
        yield
