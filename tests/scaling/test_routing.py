"""Reads on a streaming replica, writes and read-your-writes on the primary, and a
stopped or lagging replica skipped quickly (real servers: tests/scaling/conftest.py)."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from domain.models import User, UserSession
from repositories import NotFoundError, ProductRepository, SessionRepository, UserRepository
from repositories.core import routing
from repositories.transactions import atomic
from tests.faults.cluster import ThrowawayCluster
from tests.faults.figures import report
from tests.scaling.conftest import REPLICA
from tests.scaling.servers import wait_replayed

pytestmark = pytest.mark.scaling
Servers = tuple[ThrowawayCluster, ThrowawayCluster]
_emails = itertools.count()


def _user_data() -> dict[str, Any]:
    return {"email": f"scaling{next(_emails)}@example.com", "first_name": "S", "last_name": "R"}


def _lag_bound(seconds: float) -> Any:
    return override_settings(
        REPOSITORIES={**settings.REPOSITORIES, "REPLICA_MAX_LAG_SECONDS": seconds}
    )


def test_reads_land_on_the_replica_and_writes_on_the_primary(routed: Servers) -> None:
    primary, replica = routed
    with routing.consistency_scope():
        user = UserRepository().create(_user_data())
        assert user._state.db == "default"
    wait_replayed(primary, replica)
    with routing.consistency_scope():
        loaded = UserRepository().get_by_id(user.pk)
        found = UserRepository().find_many({"email": user.email})
        assert loaded._state.db == REPLICA
        assert [row._state.db for row in found] == [REPLICA]
        with routing.primary():
            assert UserRepository().get_by_id(user.pk)._state.db == "default"
        with atomic():
            assert UserRepository().get_by_id(user.pk)._state.db == "default"
        # A repository built with an alias keeps it, reads included.
        assert UserRepository(using="default").get_by_id(user.pk)._state.db == "default"


def test_reads_stay_on_the_primary_until_the_replica_replays_the_write(routed: Servers) -> None:
    primary, replica = routed
    with _lag_bound(3600), replica.connect() as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        with routing.consistency_scope():
            user = UserRepository().create(_user_data())
            started = time.perf_counter()
            loaded = UserRepository().get_by_id(user.pk)
            ryw_ms = (time.perf_counter() - started) * 1000
            assert loaded._state.db == "default"
            assert UserRepository().find_by_email(user.email) is not None
        # A context that did not write reads the paused replica.
        with routing.consistency_scope(), pytest.raises(NotFoundError):
            UserRepository().get_by_id(user.pk)
        conn.execute("SELECT pg_wal_replay_resume()")
        wait_replayed(primary, replica)
        with routing.consistency_scope():
            assert UserRepository().get_by_id(user.pk)._state.db == REPLICA
    report("scaling/read_your_writes", first_read_after_write_ms=round(ryw_ms, 1))


@pytest.mark.usefixtures("routed")
def test_bounded_wait_reads_on_the_replica_once_it_replays() -> None:
    repositories = {**settings.REPOSITORIES, "READ_YOUR_WRITES_WAIT_MS": 2000}
    with override_settings(REPOSITORIES=repositories), routing.consistency_scope():
        user = UserRepository().create(_user_data())
        assert UserRepository().get_by_id(user.pk)._state.db == REPLICA


def test_session_validate_touches_last_seen_on_the_primary(routed: Servers) -> None:
    primary, replica = routed
    user = UserRepository().create(_user_data())
    session, token = SessionRepository().create_session(user.pk)
    UserSession.objects.using("default").filter(pk=session.pk).update(
        last_seen_at=timezone.now() - timedelta(hours=1)
    )
    wait_replayed(primary, replica)
    with routing.consistency_scope():
        validated = SessionRepository().validate(token)
        assert validated is not None
        assert validated._state.db == "default"
        assert validated.last_seen_at is not None
        assert validated.last_seen_at > timezone.now() - timedelta(minutes=1)


def test_lagging_replica_is_skipped(routed: Servers) -> None:
    _primary, replica = routed
    with _lag_bound(1), replica.connect() as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        UserRepository().create(_user_data())
        time.sleep(1.5)
        UserRepository().create(_user_data())  # the replica receives it, cannot replay it
        time.sleep(0.2)
        routing.forget_health()
        with routing.consistency_scope():
            users = UserRepository().find_many({}, limit=1)
            assert users[0]._state.db == "default"
        assert not routing.replica_health(REPLICA).usable


@pytest.mark.parametrize("health", ["unknown", "cached healthy"])
def test_stopped_replica_is_skipped_within_the_bound(routed: Servers, health: str) -> None:
    primary, replica = routed
    user = UserRepository().create(_user_data())
    wait_replayed(primary, replica)
    with routing.consistency_scope():
        assert UserRepository().get_by_id(user.pk)._state.db == REPLICA  # pooled, healthy
    replica._run("pg_ctl", "-D", str(replica.data), "-m", "fast", "-w", "stop")
    if health == "unknown":
        routing.forget_health()
    with routing.consistency_scope():
        started = time.perf_counter()
        loaded = UserRepository().get_by_id(user.pk)
        first = time.perf_counter() - started
        started = time.perf_counter()
        ProductRepository().count()
        second = time.perf_counter() - started
    assert loaded._state.db == "default"
    report(
        f"scaling/stopped_replica ({health} health)",
        first_read_s=round(first, 3),
        next_read_s=round(second, 3),
    )
    assert first < 3.0  # connect_timeout 1 s / pool timeout 2 s for the replica alias
    assert second < 0.5  # the replica is marked down: no second attempt


def test_router_sends_plain_orm_reads_to_the_replica(routed: Servers) -> None:
    _primary, replica = routed
    router = routing.ReplicaRouter()
    with routing.consistency_scope(), replica.connect() as conn:
        assert router.db_for_read(User) == REPLICA
        conn.execute("SELECT pg_wal_replay_pause()")
        assert router.db_for_write(User) == "default"
        User.objects.using("default").create(**_user_data())
        assert router.db_for_read(User) == "default"  # it wrote: read-your-writes
    assert router.allow_migrate(REPLICA, "domain") is False
    assert router.allow_migrate("default", "domain") is True
