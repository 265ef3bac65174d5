"""The request middleware that fills the audit context (add it to MIDDLEWARE)."""

from __future__ import annotations

from repositories.core.middleware import AuditContextMiddleware

__all__ = ["AuditContextMiddleware"]
