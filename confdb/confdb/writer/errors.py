"""Errors the writer reports to its user: clear, naming the object or field."""

from __future__ import annotations

from confdb.validation import ValidationError


class WriteError(Exception):
    """A write refused for a reason other than a malformed value (conflict, missing object...)."""


class NotFound(WriteError):
    pass


class Conflict(WriteError):
    pass


__all__ = ["Conflict", "NotFound", "ValidationError", "WriteError"]
