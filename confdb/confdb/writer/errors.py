"""Errors the writer reports to its user: clear, naming the object or field."""

from __future__ import annotations

from confdb.validation import ValidationError


class WriteError(Exception):
    """A write refused for a reason other than a malformed value (conflict, missing object...).

    `field`, when known, names the field whose value the database refuses (`user.context`); it prefixes
    the message as ValidationError's does.
    """

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class NotFound(WriteError):
    pass


class Conflict(WriteError):
    pass


__all__ = ["Conflict", "NotFound", "ValidationError", "WriteError"]
