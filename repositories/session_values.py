"""The values a session takes from its caller: lifetime, address, revocation reason."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_ipv46_address

from domain.models import UserSession
from repositories.core.conf import setting
from repositories.errors import ValidationError

__all__ = ["MAX_TTL", "MIN_TTL", "checked_ip", "revoke_reason", "session_lifetime"]

MIN_TTL = timedelta(seconds=1)
#: Longest session lifetime: far beyond any real session, far below datetime overflow.
MAX_TTL = timedelta(days=3650)
MAX_REASON_LENGTH = UserSession._meta.get_field("revoked_reason").max_length or 200


def session_lifetime(ttl: object) -> timedelta:
    if ttl is None:
        return timedelta(seconds=setting("SESSION_TTL_SECONDS"))
    if not isinstance(ttl, timedelta) or not MIN_TTL <= ttl <= MAX_TTL:
        raise ValidationError(
            {"ttl": ["Enter a timedelta from one second to ten years (3,650 days)."]}
        )
    return ttl


def checked_ip(address: object) -> str | None:
    if address is None or address == "":
        return None
    if not isinstance(address, str):
        raise ValidationError({"ip_address": ["Enter a valid IPv4 or IPv6 address."]})
    try:
        validate_ipv46_address(address)
    except DjangoValidationError as exc:
        raise ValidationError({"ip_address": list(exc.messages)}) from None
    return address


def revoke_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip() or "\x00" in reason:
        raise ValidationError({"reason": ["Enter a non-empty string without NUL characters."]})
    if len(reason) > MAX_REASON_LENGTH:
        raise ValidationError(
            {"reason": [f"Ensure this value has at most {MAX_REASON_LENGTH} characters."]}
        )
    return reason.strip()
