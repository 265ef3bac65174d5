"""Request middleware that tells the audit trail who is acting, from where, in which request."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from repositories.core.audit import audit_context

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")


class AuditContextMiddleware:
    """Run each request inside `audit_context(actor, request_id, ip_address)`.

    - actor: `request.user`, passed lazily: the user is loaded only if the request
      writes an audit row, and an anonymous user counts as no actor. Place the
      middleware after `AuthenticationMiddleware`.
    - request_id: the `X-Request-ID` header when it is 1-64 characters of letters,
      digits and `._:-`; otherwise a new uuid4 hex. Echoed in the response header and
      kept as `request.request_id`.
    - ip_address: `REMOTE_ADDR` (behind a proxy, have the proxy set it).
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_from(request)
        request.request_id = request_id  # type: ignore[attr-defined]
        actor = getattr(request, "user", None)
        with audit_context(
            actor=actor, request_id=request_id, ip_address=request.META.get("REMOTE_ADDR")
        ):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


def request_id_from(request: HttpRequest) -> str:
    """Return the request's valid X-Request-ID header, or a new uuid4 hex."""
    candidate = request.headers.get(REQUEST_ID_HEADER, "")
    if _SAFE_REQUEST_ID.fullmatch(candidate):
        return candidate
    return uuid.uuid4().hex
