"""Who is acting, for the audit trail (SPEC §7); the machinery is repositories.core.audit."""

from __future__ import annotations

from repositories.core.audit import (
    AuditEntry,
    AuditState,
    audit_context,
    current_audit_state,
    diff,
    record,
    snapshot,
)

__all__ = [
    "AuditEntry",
    "AuditState",
    "audit_context",
    "current_audit_state",
    "diff",
    "record",
    "snapshot",
]
