"""SystemConfig's cache is scoped by the database, not the alias: a write through one alias
invalidates what every alias reading the same data has cached (issue 12, part 4)."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.db import connections
from django.db.utils import load_backend
from django.test import override_settings

from repositories.configuration import SystemConfigRepository, database_identity

SECOND = "config_cache_second"


@pytest.fixture
def second_alias() -> Iterator[str]:
    """A second alias on the very database `default` uses (its own connection), made at
    run time (not in DATABASES, so Django's test case lets it connect)."""
    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    wrapper = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, SECOND)
    connections[SECOND] = wrapper
    try:
        yield SECOND
    finally:
        wrapper.close()
        wrapper.close_pool()
        del connections[SECOND]


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db(transaction=True)
def test_write_through_one_alias_invalidates_the_other_aliases_cached_value(second_alias):
    SystemConfigRepository().set("shared.flag", 1)
    other = SystemConfigRepository(using=second_alias)
    assert other.get("shared.flag") == 1  # cached for the second alias now
    assert SystemConfigRepository().get("shared.flag") == 1

    SystemConfigRepository().set("shared.flag", 2)
    assert other.get("shared.flag") == 2
    SystemConfigRepository(using=second_alias).set("shared.flag", 3)
    assert SystemConfigRepository().get("shared.flag") == 3


@pytest.mark.django_db(transaction=True)
def test_same_database_same_identity_other_database_other_identity(second_alias):
    assert database_identity(second_alias) == database_identity("default")
    connections[second_alias].settings_dict["NAME"] = "another_database"
    assert database_identity(second_alias) != database_identity("default")


@pytest.mark.django_db(transaction=True)
def test_replica_alias_shares_the_primarys_keys(second_alias):
    connections[second_alias].settings_dict["HOST"] = "replica.invalid"
    with override_settings(REPOSITORIES={"READ_REPLICAS": [second_alias]}):
        assert database_identity(second_alias) == database_identity("default")
    assert database_identity(second_alias) != database_identity("default")
