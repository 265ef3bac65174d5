"""The layer's settings: a project that sets no REPOSITORIES gets the documented defaults."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from repositories import ProductRepository
from repositories.configuration import SystemConfigRepository
from repositories.core import instrumentation
from repositories.core.conf import DEFAULTS, setting
from repositories.core.instrumentation import count_queries
from repositories.errors import InvalidQueryError
from repositories.sessions import SessionRepository
from tests.factories import ProductFactory, UserFactory


@pytest.fixture
def no_repositories_setting(settings):
    """A project that never mentions REPOSITORIES."""
    del settings.REPOSITORIES
    return settings


# --- the accessor ----------------------------------------------------------------------------


def test_defaults_are_the_documented_values():
    assert dict(DEFAULTS) == {
        "SLOW_QUERY_MS": 200,
        "MAX_PAGE_SIZE": 100,
        "CURSOR_SECRET": "",
        "SESSION_TTL_SECONDS": 14 * 24 * 3600,
        "CONFIG_CACHE_SECONDS": 300,
        "AUDIT_MODEL": "domain.AuditLog",
        "RECLAIM_THREAD_CONNECTIONS": True,
        "SWEEP_POOL_ON_FAILED_CHECK": True,
        "RESET_POOLED_SESSIONS": True,
        "READ_REPLICAS": (),
        "REPLICA_MAX_LAG_SECONDS": 5,
        "REPLICA_HEALTH_SECONDS": 5,
        "READ_YOUR_WRITES_WAIT_MS": 0,
        "TRANSACTION_POOLING": False,
    }


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_setting_returns_the_default_when_repositories_is_unset(no_repositories_setting, name):
    assert setting(name) == DEFAULTS[name]


@pytest.mark.parametrize("configured", [None, {}])
def test_setting_returns_the_default_when_repositories_is_empty(settings, configured):
    settings.REPOSITORIES = configured
    assert setting("MAX_PAGE_SIZE") == 100


def test_setting_falls_back_per_key_when_the_dict_is_partial(settings):
    settings.REPOSITORIES = {"MAX_PAGE_SIZE": 7}
    assert setting("MAX_PAGE_SIZE") == 7
    assert setting("SESSION_TTL_SECONDS") == 14 * 24 * 3600
    assert setting("CURSOR_SECRET") == ""


def test_setting_raises_key_error_for_a_name_the_layer_does_not_read():
    with pytest.raises(KeyError, match="PAGE_SIZE"):
        setting("PAGE_SIZE")  # type: ignore[call-overload]


def test_setting_raises_improperly_configured_for_an_unknown_key_in_the_dict(settings):
    settings.REPOSITORIES = {"MAX_PAGESIZE": 10}
    with pytest.raises(ImproperlyConfigured, match="MAX_PAGESIZE"):
        setting("MAX_PAGE_SIZE")


def test_setting_raises_improperly_configured_when_repositories_is_not_a_dict(settings):
    settings.REPOSITORIES = [("MAX_PAGE_SIZE", 10)]
    with pytest.raises(ImproperlyConfigured):
        setting("MAX_PAGE_SIZE")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_PAGE_SIZE", 0),
        ("MAX_PAGE_SIZE", "100"),
        ("MAX_PAGE_SIZE", 10.0),
        ("MAX_PAGE_SIZE", True),
        ("SESSION_TTL_SECONDS", 0),
        ("CONFIG_CACHE_SECONDS", -1),
        ("SLOW_QUERY_MS", -1),
        ("SLOW_QUERY_MS", float("nan")),
        ("SLOW_QUERY_MS", "200"),
        ("CURSOR_SECRET", None),
        ("CURSOR_SECRET", b"key"),
        ("RECLAIM_THREAD_CONNECTIONS", 1),
        ("SWEEP_POOL_ON_FAILED_CHECK", "yes"),
        ("RESET_POOLED_SESSIONS", 0),
        ("READ_REPLICAS", "replica_0"),
        ("READ_REPLICAS", [""]),
        ("REPLICA_MAX_LAG_SECONDS", -1),
        ("TRANSACTION_POOLING", 1),
    ],
)
def test_setting_raises_improperly_configured_for_a_bad_value(settings, name, value):
    settings.REPOSITORIES = {name: value}
    with pytest.raises(ImproperlyConfigured, match=name):
        setting(name)


def test_setting_accepts_a_fractional_slow_query_threshold(settings):
    settings.REPOSITORIES = {"SLOW_QUERY_MS": 0.5}
    assert setting("SLOW_QUERY_MS") == 0.5


# --- the layer without REPOSITORIES ------------------------------------------------------------


@pytest.mark.django_db
def test_paginate_caps_page_size_at_the_default_when_repositories_is_unset(
    no_repositories_setting,
):
    ProductFactory.create_batch(3)
    page = ProductRepository().paginate(page_size=100)
    assert (page.total, len(page.items), page.page_size) == (3, 3, 100)
    with pytest.raises(InvalidQueryError) as caught:
        ProductRepository().paginate(page_size=101)
    assert "page_size" in caught.value.errors


@pytest.mark.django_db
def test_paginate_cursor_signs_with_secret_key_when_repositories_is_unset(
    no_repositories_setting,
):
    ProductFactory.create_batch(3)
    products = ProductRepository()
    first = products.paginate_cursor(order_by=["created_at"], limit=2)
    assert first.has_next
    rest = products.paginate_cursor(order_by=["created_at"], after=first.next_cursor, limit=100)
    assert len(first.items) + len(rest.items) == 3
    assert not rest.has_next
    with pytest.raises(InvalidQueryError):
        products.paginate_cursor(limit=101)

    # An empty CURSOR_SECRET means SECRET_KEY: the cursor stays valid; another secret refuses it.
    no_repositories_setting.REPOSITORIES = {"CURSOR_SECRET": ""}
    assert products.paginate_cursor(order_by=["created_at"], after=first.next_cursor).items
    no_repositories_setting.REPOSITORIES = {"CURSOR_SECRET": "rotated"}
    with pytest.raises(InvalidQueryError):
        products.paginate_cursor(order_by=["created_at"], after=first.next_cursor)


@pytest.mark.django_db
def test_search_works_and_caps_limit_when_repositories_is_unset(no_repositories_setting):
    shoe = ProductFactory.create(name="Running shoe", description="Light and fast.")
    found = ProductRepository().search("runn sho", limit=1000)
    assert [product.pk for product in found] == [shoe.pk]


@pytest.mark.django_db
def test_create_session_lasts_fourteen_days_when_repositories_is_unset(no_repositories_setting):
    user = UserFactory.create()
    session, token = SessionRepository().create_session(user.pk)
    assert session.expires_at - session.created_at == timedelta(days=14)
    assert token


@pytest.mark.django_db
def test_create_session_takes_the_ttl_from_a_partial_dict(settings):
    settings.REPOSITORIES = {"SESSION_TTL_SECONDS": 60}
    session, _ = SessionRepository().create_session(UserFactory.create().pk)
    assert session.expires_at - session.created_at == timedelta(minutes=1)


@pytest.fixture
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.usefixtures("_clear_cache")
@pytest.mark.django_db(transaction=True)
def test_config_get_is_cached_when_repositories_is_unset(no_repositories_setting):
    repo = SystemConfigRepository()
    repo.set("shop.name", "Demo")
    assert repo.get("shop.name") == "Demo"
    with count_queries() as counted:
        assert repo.get("shop.name") == "Demo"
    assert counted.count == 0


@pytest.mark.usefixtures("_clear_cache")
@pytest.mark.django_db(transaction=True)
def test_config_get_is_not_cached_when_a_partial_dict_sets_zero_seconds(settings):
    settings.REPOSITORIES = {"CONFIG_CACHE_SECONDS": 0}
    repo = SystemConfigRepository()
    repo.set("shop.name", "Demo")
    assert repo.get("shop.name") == "Demo"
    with count_queries() as counted:
        assert repo.get("shop.name") == "Demo"
    assert counted.count == 1


def test_slow_query_threshold_is_200_ms_when_repositories_is_unset(
    no_repositories_setting, monkeypatch
):
    # Deleting a setting sends no setting_changed, so the cached threshold is reset here;
    # monkeypatch restores the value that matches the restored settings afterwards.
    monkeypatch.setattr(instrumentation, "_slow_query_seconds", None)
    assert instrumentation._load_threshold() == pytest.approx(0.2)
