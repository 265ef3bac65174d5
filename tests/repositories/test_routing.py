"""Routing without replicas and its pure parts (the servers: tests/scaling)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connections
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from domain.models import User
from repositories.core import routing


def test_parse_lsn_reads_the_text_form() -> None:
    assert routing.parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert routing.parse_lsn(None) == 0


def test_reads_go_to_the_primary_when_no_replica_is_configured() -> None:
    routing.note_write()
    assert routing.read_alias() == routing.PRIMARY
    router = routing.ReplicaRouter()
    assert router.db_for_read(User) == routing.PRIMARY
    assert router.db_for_write(User) == routing.PRIMARY
    assert router.allow_migrate(routing.PRIMARY, "domain") is True


@pytest.mark.django_db
def test_a_server_not_in_recovery_is_not_a_usable_replica() -> None:
    # The test database is a primary: as a "replica" it is refused (promoted or misconfigured).
    connections.databases["not_a_replica"] = connections.databases["default"]
    repositories = {**settings.REPOSITORIES, "READ_REPLICAS": ["not_a_replica"]}
    try:
        with override_settings(REPOSITORIES=repositories):
            routing.forget_health()
            health = routing.replica_health("not_a_replica")
            assert not health.usable
            assert "recovery" in health.reason
            assert routing.read_alias() == routing.PRIMARY
    finally:
        del connections.databases["not_a_replica"]
        routing.forget_health()


def test_an_unreachable_replica_is_marked_down() -> None:
    connections.databases["gone"] = {
        **connections.databases["default"],
        "HOST": "127.0.0.1",
        "PORT": "1",
    }
    try:
        routing.forget_health()
        health = routing.replica_health("gone")
        assert not health.usable
        assert "unreachable" in health.reason
        routing.mark_down("gone", "test")
        assert not routing.replica_health("gone").usable
    finally:
        del connections.databases["gone"]
        routing.forget_health()


def test_middleware_passes_through_without_replicas() -> None:
    middleware = routing.ConsistencyScopeMiddleware(lambda request: HttpResponse("ok"))
    request = RequestFactory().get("/", HTTP_COOKIE=f"{routing.WAL_COOKIE}=zz")
    response = middleware(request)
    assert routing.WAL_COOKIE not in response.cookies


def test_middleware_seeds_the_scope_from_the_cookie() -> None:
    seen = []

    def view(request: object) -> HttpResponse:
        seen.append(routing._scope.get())
        return HttpResponse("ok")

    repositories = {**settings.REPOSITORIES, "READ_REPLICAS": ["replica_x"]}
    with override_settings(REPOSITORIES=repositories):
        middleware = routing.ConsistencyScopeMiddleware(view)
        middleware(RequestFactory().get("/", HTTP_COOKIE=f"{routing.WAL_COOKIE}=1A"))
        middleware(RequestFactory().get("/", HTTP_COOKIE=f"{routing.WAL_COOKIE}=nothex"))
    assert [scope.lsn if scope else "no scope" for scope in seen] == [0x1A, None]
    assert routing._cookie_lsn("") is None
