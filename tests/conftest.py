"""Shared pytest fixtures: factories are in tests/factories.py."""

from __future__ import annotations
