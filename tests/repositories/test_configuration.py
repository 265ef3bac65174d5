"""SystemConfigRepository: typed JSON values, optimistic locking, commit-time cache."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, transaction

from domain.models import AuditLog, SystemConfig
from repositories.configuration import SystemConfigRepository
from repositories.core.audit import audit_context
from repositories.core.base import BaseRepository
from repositories.core.instrumentation import count_queries
from repositories.errors import (
    ConflictError,
    InvalidQueryError,
    NotFoundError,
    StaleObjectError,
    ValidationError,
)
from tests.factories import SystemConfigFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def run_in_threads(*targets):
    """Run each callable in its own thread (own connection); return results or errors."""
    results: list[object] = [None] * len(targets)

    def runner(index, target):
        try:
            results[index] = target()
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=runner, args=(i, target)) for i, target in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


# -- set / get -------------------------------------------------------------------------


def test_set_creates_a_missing_entry_at_version_one_and_audits_it():
    entry = SystemConfigRepository().set("checkout.enabled", True)
    assert entry.version == 1
    assert SystemConfig.objects.get(key="checkout.enabled").value is True
    row = AuditLog.objects.get(entity_type="systemconfig", entity_id=str(entry.pk))
    assert row.action == "created"
    assert row.changes["key"] == "checkout.enabled"
    assert row.changes["value"] is True


def test_set_updates_an_existing_entry_and_always_bumps_the_version():
    repo = SystemConfigRepository()
    repo.set("limits.max", 5)
    second = repo.set("limits.max", 10)
    third = repo.set("limits.max", 10)
    assert (second.version, third.version) == (2, 3)
    assert SystemConfig.objects.get(key="limits.max").version == 3
    updates = AuditLog.objects.filter(entity_type="systemconfig", action="updated").order_by("id")
    assert updates[0].changes["value"] == {"old": 5, "new": 10}
    assert updates[0].changes["version"] == {"old": 1, "new": 2}


def test_set_keeps_or_replaces_the_description():
    repo = SystemConfigRepository()
    repo.set("a.b", 1, description="first")
    assert repo.set("a.b", 2).description == "first"
    assert repo.set("a.b", 3, description="second").description == "second"


def test_set_raises_validation_error_when_description_is_not_text():
    with pytest.raises(ValidationError) as info:
        SystemConfigRepository().set("a.b", 1, description=5)  # type: ignore[arg-type]
    assert "description" in info.value.errors


def test_set_with_expected_version_updates_when_the_version_matches():
    repo = SystemConfigRepository()
    repo.set("feature.x", "on")
    entry = repo.set("feature.x", "off", expected_version=1)
    assert entry.version == 2
    assert SystemConfig.objects.get(key="feature.x").value == "off"


def test_set_raises_stale_object_when_the_version_moved():
    repo = SystemConfigRepository()
    repo.set("feature.y", 1)
    repo.set("feature.y", 2)
    with pytest.raises(StaleObjectError) as info:
        repo.set("feature.y", 3, expected_version=1)
    assert (info.value.expected_version, info.value.actual_version) == (1, 2)
    stored = SystemConfig.objects.get(key="feature.y")
    assert (stored.value, stored.version) == (2, 2)


def test_set_raises_stale_object_when_an_expected_entry_is_missing():
    with pytest.raises(StaleObjectError) as info:
        SystemConfigRepository().set("gone.key", 1, expected_version=3)
    assert info.value.actual_version is None
    assert not SystemConfig.objects.filter(key="gone.key").exists()


@pytest.mark.parametrize("version", [0, -1, "1", 1.0, True])
def test_set_raises_validation_error_when_expected_version_is_invalid(version):
    with pytest.raises(ValidationError) as info:
        SystemConfigRepository().set("k", 1, expected_version=version)
    assert "expected_version" in info.value.errors


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -7,
        3.25,
        "text",
        [],
        [1, "two", None, [3.5]],
        {},
        {"nested": {"list": [1, 2], "flag": False}},
    ],
)
def test_get_returns_typed_json_values_as_set(value):
    repo = SystemConfigRepository()
    repo.set("typed.value", value)
    result = repo.get("typed.value", default="missing")
    assert result == value
    assert type(result) is type(value)


def test_set_stores_tuples_as_lists():
    entry = SystemConfigRepository().set("t", (1, (2, 3)))
    assert entry.value == [1, [2, 3]]
    assert SystemConfigRepository().get("t") == [1, [2, 3]]


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        Decimal("1.5"),
        dt.date(2026, 1, 1),
        float("nan"),
        float("inf"),
        {1: "int key"},
        {"nested": [object()]},
        b"bytes",
    ],
)
def test_set_raises_validation_error_when_value_is_not_json(value):
    with pytest.raises(ValidationError) as info:
        SystemConfigRepository().set("bad.value", value)
    assert "value" in info.value.errors
    assert not SystemConfig.objects.exists()


@pytest.mark.parametrize("key", ["", "has space", "semi;colon", "ü", "x" * 129, None, 5])
def test_set_raises_validation_error_when_key_is_invalid(key):
    with pytest.raises(ValidationError) as info:
        SystemConfigRepository().set(key, 1)
    assert "key" in info.value.errors


def test_set_accepts_every_allowed_key_character():
    key = "Aa0_.:-" + "z" * 121
    assert SystemConfigRepository().set(key, 1).key == key


def test_set_records_the_acting_user_as_updated_by():
    actor = UserFactory.create()
    with audit_context(actor=actor):
        created = SystemConfigRepository().set("who", 1)
        updated = SystemConfigRepository().set("who", 2)
    assert created.updated_by_id == actor.pk
    assert updated.updated_by_id == actor.pk
    assert AuditLog.objects.filter(actor=actor).count() == 2


def test_set_redacts_values_of_secret_looking_keys_in_the_audit_log():
    SystemConfigRepository().set("payments.api_token", "tok_live_123")
    SystemConfigRepository().set("payments.api_token", "tok_live_456")
    text = json.dumps(list(AuditLog.objects.values_list("changes", flat=True)))
    assert "tok_live" not in text
    assert "[redacted]" in text


def test_get_returns_default_when_missing():
    assert SystemConfigRepository().get("missing") is None
    assert SystemConfigRepository().get("missing", default={"x": 1}) == {"x": 1}


def test_get_distinguishes_a_stored_null_from_a_missing_key():
    SystemConfigRepository().set("nullable", None)
    assert SystemConfigRepository().get("nullable", default="fallback") is None


def test_get_returns_default_without_querying_for_malformed_keys(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert SystemConfigRepository().get("no spaces allowed", default=7) == 7


@pytest.mark.parametrize("key", [None, 1, ["a"]])
def test_get_raises_invalid_query_when_key_is_not_text(key):
    with pytest.raises(InvalidQueryError):
        SystemConfigRepository().get(key)


# -- all / delete ----------------------------------------------------------------------


@pytest.mark.parametrize("entries", [3, 8])
def test_all_returns_a_dict_ordered_by_key_in_one_query(entries, django_assert_num_queries):
    for i in reversed(range(entries)):
        SystemConfigFactory.create(key=f"k{i:02d}", value=i)
    with django_assert_num_queries(1):
        values = SystemConfigRepository().all()
    assert list(values) == [f"k{i:02d}" for i in range(entries)]
    assert values["k01"] == 1


def test_delete_removes_the_entry_and_audits_it():
    entry = SystemConfigRepository().set("to.delete", {"a": 1})
    SystemConfigRepository().delete("to.delete")
    assert not SystemConfig.objects.filter(key="to.delete").exists()
    row = AuditLog.objects.get(entity_id=str(entry.pk), action="deleted")
    assert row.changes["value"] == {"a": 1}


@pytest.mark.parametrize("key", ["missing", "bad key", None, 3])
def test_delete_raises_not_found_when_key_is_missing_or_malformed(key):
    with pytest.raises(NotFoundError):
        SystemConfigRepository().delete(key)


# -- inherited CRUD stays coherent -------------------------------------------------------


@pytest.mark.parametrize("entries", [2, 6])
def test_find_many_filters_by_key_prefix_in_one_query(entries, django_assert_num_queries):
    for i in range(entries):
        SystemConfigFactory.create(key=f"mail.k{i}")
    SystemConfigFactory.create(key="other")
    with django_assert_num_queries(1):
        found = SystemConfigRepository().find_many({"key_prefix": "mail."})
    assert [e.key for e in found] == [f"mail.k{i}" for i in range(entries)]


def test_create_validates_keys_and_values():
    repo = SystemConfigRepository()
    with pytest.raises(ValidationError):
        repo.create({"key": "bad key", "value": 1})
    with pytest.raises(ValidationError):
        repo.create({"key": "ok", "value": {1, 2}})
    assert repo.create({"key": "ok", "value": [1]}).value == [1]
    with pytest.raises(ConflictError):
        repo.create({"key": "ok", "value": 2})


def test_create_many_and_update_many_and_delete_many_work_on_entries():
    repo = SystemConfigRepository()
    repo.create_many([{"key": "bulk.a", "value": 1}, {"key": "bulk.b", "value": 2}])
    assert repo.update_many({"key_prefix": "bulk."}, {"value": 0}) == 2
    assert repo.all() == {"bulk.a": 0, "bulk.b": 0}
    assert repo.delete_many({"key": "bulk.a"}) == 1
    assert repo.all() == {"bulk.b": 0}


def test_create_raises_validation_error_when_data_is_not_a_mapping():
    with pytest.raises(ValidationError):
        SystemConfigRepository().create(["key", "value"])  # type: ignore[arg-type]


def test_update_refuses_renaming_a_key():
    entry = SystemConfigFactory.create(key="fixed")
    with pytest.raises(ValidationError) as info:
        SystemConfigRepository().update(entry.pk, {"key": "renamed"})
    assert "key" in info.value.errors


def test_update_by_id_uses_optimistic_locking():
    entry = SystemConfigFactory.create(key="by.id", value=1)
    updated = SystemConfigRepository().update(entry.pk, {"value": 2}, expected_version=1)
    assert updated.version == 2
    with pytest.raises(StaleObjectError):
        SystemConfigRepository().update(entry.pk, {"value": 3}, expected_version=1)


# -- cache (real commits and rollbacks) ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_get_is_served_from_the_cache_after_the_first_read():
    SystemConfigRepository().set("cached", 1)
    repo = SystemConfigRepository()
    with count_queries() as first:
        assert repo.get("cached") == 1
    with count_queries() as second:
        assert repo.get("cached") == 1
        assert repo.get("cached") == 1
    assert (first.count, second.count) == (1, 0)


@pytest.mark.django_db(transaction=True)
def test_get_caches_missing_keys_too():
    repo = SystemConfigRepository()
    assert repo.get("absent", "d") == "d"
    with count_queries() as counted:
        assert repo.get("absent", "d") == "d"
    assert counted.count == 0
    repo.set("absent", "now here")
    assert repo.get("absent", "d") == "now here"


@pytest.mark.django_db(transaction=True)
def test_set_invalidates_the_cached_value_when_it_commits():
    repo = SystemConfigRepository()
    repo.set("flag", "old")
    assert repo.get("flag") == "old"
    repo.set("flag", "new")
    assert repo.get("flag") == "new"


@pytest.mark.django_db(transaction=True)
def test_set_invalidates_only_after_the_outer_transaction_commits():
    repo = SystemConfigRepository()
    repo.set("flag", "old")
    assert repo.get("flag") == "old"
    seen_by_others = []
    with transaction.atomic():
        repo.set("flag", "new")
        assert repo.get("flag") == "new"  # the writer sees its own write
        seen_by_others.extend(run_in_threads(lambda: SystemConfigRepository().get("flag")))
    assert seen_by_others == ["old"]
    assert repo.get("flag") == "new"


@pytest.mark.django_db(transaction=True)
def test_rolled_back_set_leaves_the_old_value_visible():
    repo = SystemConfigRepository()
    repo.set("flag", "old")
    assert repo.get("flag") == "old"  # cached now

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        repo.set("flag", "new")
        assert repo.get("flag") == "new"
        raise Abort

    assert repo.get("flag") == "old"
    cache.clear()
    assert repo.get("flag") == "old"
    stored = SystemConfig.objects.get(key="flag")
    assert (stored.value, stored.version) == ("old", 1)
    assert not AuditLog.objects.filter(action="updated").exists()


@pytest.mark.django_db(transaction=True)
def test_delete_invalidates_the_cached_value_when_it_commits():
    repo = SystemConfigRepository()
    repo.set("short.lived", 1)
    assert repo.get("short.lived") == 1
    repo.delete("short.lived")
    assert repo.get("short.lived", "gone") == "gone"


@pytest.mark.django_db(transaction=True)
def test_inherited_writes_invalidate_the_cache_too():
    repo = SystemConfigRepository()
    entry = repo.set("inherited", 1)
    assert repo.get("inherited") == 1
    repo.update(entry.pk, {"value": 2})
    assert repo.get("inherited") == 2
    repo.update_many({"key": "inherited"}, {"value": 3})
    assert repo.get("inherited") == 3
    repo.delete_many({"key": "inherited"})
    assert repo.get("inherited") is None
    repo.create({"key": "inherited", "value": 4})
    assert repo.get("inherited") == 4


# -- concurrency -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_of_two_concurrent_writers_with_the_same_version_exactly_one_wins():
    SystemConfigRepository().set("race", "start")
    barrier = threading.Barrier(2)

    def writer(value):
        def run():
            barrier.wait(10)
            return SystemConfigRepository().set("race", value, expected_version=1)

        return run

    results = run_in_threads(writer("a"), writer("b"))
    winners = [r for r in results if isinstance(r, SystemConfig)]
    losers = [r for r in results if isinstance(r, StaleObjectError)]
    assert len(winners) == 1, results
    assert len(losers) == 1, results
    stored = SystemConfig.objects.get(key="race")
    assert (stored.value, stored.version) == (winners[0].value, 2)


@pytest.mark.django_db(transaction=True)
def test_a_writer_waiting_on_the_row_lock_sees_the_new_version_and_loses():
    SystemConfigRepository().set("locked", "start")
    first_written = threading.Event()

    def first():
        with transaction.atomic():
            entry = SystemConfigRepository().set("locked", "first", expected_version=1)
            first_written.set()
            time.sleep(0.3)  # the second writer is now blocked on the row lock
        return entry

    def second():
        assert first_written.wait(10)
        return SystemConfigRepository().set("locked", "second", expected_version=1)

    one, two = run_in_threads(first, second)
    assert isinstance(one, SystemConfig)
    assert isinstance(two, StaleObjectError)
    assert two.actual_version == 2
    assert SystemConfig.objects.get(key="locked").value == "first"


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_a_missing_key_both_succeed_in_turn():
    first_inserted = threading.Event()

    def first():
        with transaction.atomic():
            entry = SystemConfigRepository().set("fresh", "first")
            first_inserted.set()
            time.sleep(0.3)  # the second INSERT waits on the unique key
        return entry

    def second():
        assert first_inserted.wait(10)
        return SystemConfigRepository().set("fresh", "second")

    one, two = run_in_threads(first, second)
    assert isinstance(one, SystemConfig), one
    assert isinstance(two, SystemConfig), two
    stored = SystemConfig.objects.get(key="fresh")
    assert (stored.value, stored.version) == ("second", 2)
    actions = list(AuditLog.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["created", "updated"]


def test_database_check_backs_up_the_key_format_as_a_validation_error():
    # Bypass the repository's own key check: the CHECK constraint still refuses.
    with pytest.raises(ValidationError) as info:
        BaseRepository.create(SystemConfigRepository(), {"key": "bad key", "value": 1})
    assert info.value.__cause__ is not None
    assert "system_config_key_format" in str(info.value) or "key" in info.value.errors
    assert not SystemConfig.objects.exists()


@pytest.mark.django_db
def test_set_refuses_an_unknown_actor_inside_the_call_not_at_the_callers_commit():
    from repositories.core.transactions import atomic

    ghost = UserFactory.build(id=uuid.uuid4())  # never saved: no such user row
    repository = SystemConfigRepository()
    with atomic():
        with audit_context(actor=ghost), pytest.raises(ValidationError) as caught:
            repository.set("feature.ghost", True)
        assert "updated_by" in caught.value.errors
        repository.set("feature.kept", 1)  # the caller's transaction goes on
    assert not SystemConfig.objects.filter(key="feature.ghost").exists()
    assert SystemConfig.objects.get(key="feature.kept").value == 1


def _audit_text() -> str:
    return json.dumps(list(AuditLog.objects.values_list("changes", flat=True)))


@pytest.mark.parametrize(
    "write",
    [
        lambda r: r.create({"key": "smtp.password", "value": "hunter2-secret"}),
        lambda r: r.create_many([{"key": "smtp.password", "value": "hunter2-secret"}]),
        lambda r: r.update(
            r.create({"key": "smtp.password", "value": "old"}).pk, {"value": "hunter2-secret"}
        ),
        lambda r: (
            r.create({"key": "smtp.password", "value": "old"}),
            r.update_many({"key": "smtp.password"}, {"value": "hunter2-secret"}),
        ),
        lambda r: (
            r.create({"key": "smtp.password", "value": "hunter2-secret"}),
            r.delete("smtp.password"),
        ),
        lambda r: r.set("smtp.password", "hunter2-secret"),
    ],
    ids=["create", "create_many", "update", "update_many", "delete", "set"],
)
def test_every_write_path_redacts_a_secret_entry_in_the_audit_log(write):
    write(SystemConfigRepository())
    text = _audit_text()
    assert AuditLog.objects.filter(entity_type="systemconfig").exists()
    assert "hunter2" not in text
    assert "[redacted]" in text


def test_values_of_ordinary_keys_stay_readable_in_the_audit_log():
    repository = SystemConfigRepository()
    entry = repository.create({"key": "shop.name", "value": "Corner shop"})
    repository.update(entry.pk, {"value": "Big shop"})
    changes = AuditLog.objects.get(action="updated").changes
    assert changes["value"] == {"old": "Corner shop", "new": "Big shop"}


@pytest.mark.django_db(transaction=True)
def test_a_reader_that_loaded_before_a_commit_cannot_cache_the_old_value(monkeypatch):
    repo = SystemConfigRepository()
    repo.set("race.flag", "old")
    cache.clear()  # the reader below misses and reads the database
    load = SystemConfigRepository._load

    def load_then_lose_the_race(self, key):
        loaded = load(self, key)  # the old value, read before the writer commits
        monkeypatch.setattr(SystemConfigRepository, "_load", load)
        SystemConfigRepository().set("race.flag", "new")  # commits, invalidates
        return loaded  # ... and the reader stores what it read afterwards

    monkeypatch.setattr(SystemConfigRepository, "_load", load_then_lose_the_race)
    assert repo.get("race.flag") == "old"  # the racing read itself answers what it read
    assert repo.get("race.flag") == "new"  # but once set() returned, nobody gets "old"
    assert SystemConfigRepository().get("race.flag") == "new"


@pytest.mark.django_db(transaction=True)
def test_a_lost_generation_counter_never_revives_an_old_entry():
    repo = SystemConfigRepository()
    repo.set("evicted", 1)
    assert repo.get("evicted") == 1
    value_key = repo._cache_key("evicted")
    stale = cache.get(value_key)
    cache.delete(f"{value_key}:generation")  # evicted
    repo.set("evicted", 2)
    cache.set(value_key, stale)  # an old entry put back by a slow reader
    assert repo.get("evicted") == 2
