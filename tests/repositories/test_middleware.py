"""AuditContextMiddleware: actor, request id and client address for the audit trail."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.test import RequestFactory
from django.utils.functional import SimpleLazyObject

from domain.models import AuditLog
from repositories.core.audit import AuditEntry, AuditState, current_audit_state, record
from repositories.core.middleware import AuditContextMiddleware
from tests.factories import UserFactory

HEX32 = re.compile(r"[0-9a-f]{32}")


def _run(request: HttpRequest) -> tuple[HttpResponseBase, AuditState]:
    seen: list[AuditState] = []

    def view(req: HttpRequest) -> HttpResponse:
        seen.append(current_audit_state())
        return HttpResponse("ok")

    response = AuditContextMiddleware(view)(request)
    return response, seen[0]


def test_middleware_uses_a_valid_request_id_header_and_echoes_it():
    request = RequestFactory().get("/", headers={"X-Request-ID": "abc-123.x:y_z"})
    response, state = _run(request)
    assert state.request_id == "abc-123.x:y_z"
    assert response["X-Request-ID"] == "abc-123.x:y_z"
    assert getattr(request, "request_id", None) == "abc-123.x:y_z"


@pytest.mark.parametrize("header", ["", "a" * 65, "bad id", "x\r\nSet-Cookie: a=b", "é"])
def test_middleware_replaces_an_invalid_request_id_with_a_new_one(header):
    request = RequestFactory().get("/", headers={"X-Request-ID": header})
    response, state = _run(request)
    assert HEX32.fullmatch(state.request_id)
    assert response["X-Request-ID"] == state.request_id


def test_middleware_generates_a_request_id_when_the_header_is_missing():
    first = _run(RequestFactory().get("/"))[1].request_id
    second = _run(RequestFactory().get("/"))[1].request_id
    assert HEX32.fullmatch(first)
    assert first != second


def test_middleware_takes_the_ip_from_remote_addr():
    _, state = _run(RequestFactory().get("/", REMOTE_ADDR="203.0.113.9"))
    assert state.ip_address == "203.0.113.9"
    _, state = _run(RequestFactory().get("/", REMOTE_ADDR="garbage"))
    assert state.ip_address is None


def test_middleware_leaves_the_context_when_the_request_ends():
    _run(RequestFactory().get("/", headers={"X-Request-ID": "req-1"}))
    assert current_audit_state().request_id == ""


def test_middleware_without_authentication_has_no_actor():
    _, state = _run(RequestFactory().get("/"))
    assert state.actor is None


@pytest.mark.django_db
def test_middleware_records_the_authenticated_user_as_actor():
    user = UserFactory.create(email="who@example.com")
    request = RequestFactory().get("/", REMOTE_ADDR="198.51.100.2")
    request.user = SimpleLazyObject(lambda: user)  # type: ignore[assignment]

    def view(req: HttpRequest) -> HttpResponse:
        record([AuditEntry("updated", "product", "p1", {})])
        return HttpResponse("ok")

    response = AuditContextMiddleware(view)(request)
    row = AuditLog.objects.get()
    assert (row.actor_id, row.actor_repr, row.ip_address) == (
        user.pk,
        "who@example.com",
        "198.51.100.2",
    )
    assert row.request_id == response["X-Request-ID"]


@pytest.mark.django_db
def test_middleware_records_no_actor_for_an_anonymous_user():
    request = RequestFactory().get("/")
    request.user = AnonymousUser()

    def view(req: HttpRequest) -> HttpResponse:
        record([AuditEntry("updated", "product", "p1", {})])
        return HttpResponse("ok")

    AuditContextMiddleware(view)(request)
    assert AuditLog.objects.get().actor_id is None


@pytest.mark.django_db
def test_middleware_is_installed_and_sets_the_response_header(client):
    response = client.get("/admin/login/", headers={"X-Request-ID": "client-req-1"})
    assert response.status_code == 200
    assert response["X-Request-ID"] == "client-req-1"


@pytest.mark.django_db
def test_middleware_does_not_load_the_user_unless_something_is_audited(
    django_assert_num_queries,
):
    user = UserFactory.create()
    with django_assert_num_queries(0):
        response = AuditContextMiddleware(lambda req: HttpResponse("ok"))(_lazy_user_request(user))
    assert response.status_code == 200


def _lazy_user_request(user: Any) -> HttpRequest:
    from domain.models import User

    request = RequestFactory().get("/")
    request.user = SimpleLazyObject(lambda: User.objects.get(pk=user.pk))  # type: ignore[assignment]
    return request


def test_middleware_runs_after_authentication(settings):
    middleware = list(settings.MIDDLEWARE)
    audit = middleware.index("repositories.middleware.AuditContextMiddleware")
    assert audit > middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware")
