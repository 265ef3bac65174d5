"""The cleanup_sessions management command."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from domain.models import UserSession
from repositories.errors import DatabaseUnavailableError
from repositories.sessions import SessionRepository
from tests.factories import UserSessionFactory

pytestmark = pytest.mark.django_db


def expired_session():
    now = timezone.now()
    return UserSessionFactory.create(
        created_at=now - timedelta(days=2), expires_at=now - timedelta(1)
    )


def test_cleanup_sessions_deletes_expired_sessions_and_prints_a_summary():
    for _ in range(3):
        expired_session()
    live = UserSessionFactory.create()
    out = StringIO()
    call_command("cleanup_sessions", "--batch-size", "2", stdout=out)
    assert out.getvalue().strip() == "Deleted 3 expired sessions (batches of 2)."
    assert list(UserSession.objects.values_list("pk", flat=True)) == [live.pk]


def test_cleanup_sessions_uses_singular_for_one_session():
    expired_session()
    out = StringIO()
    call_command("cleanup_sessions", stdout=out)
    assert out.getvalue().strip() == "Deleted 1 expired session (batches of 1000)."


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_cleanup_sessions_raises_command_error_when_batch_size_is_invalid(value):
    with pytest.raises(CommandError, match="batch"):
        call_command("cleanup_sessions", "--batch-size", value, stdout=StringIO())


def test_cleanup_sessions_turns_repository_errors_into_command_error(monkeypatch):
    def unavailable(self, *, batch_size):
        raise DatabaseUnavailableError("database unavailable: test")

    monkeypatch.setattr(SessionRepository, "cleanup_expired", unavailable)
    with pytest.raises(CommandError, match="database unavailable"):
        call_command("cleanup_sessions", stdout=StringIO())
