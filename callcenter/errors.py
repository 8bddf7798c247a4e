"""Domain errors shared by every capability; the web layer maps each to one HTTP status."""

from __future__ import annotations


class NotFound(Exception):
    """No such object, or not one this actor may see (both look the same from outside)."""


class Forbidden(Exception):
    """The actor's role does not allow this."""


class Conflict(Exception):
    """The request is valid but clashes with the current state (an illegal transition, say)."""


class Gone(Exception):
    """The object existed and its record stays, but what it held was removed on purpose
    (a recording's files deleted by retention)."""


class InvalidInput(ValueError):
    """A field has a value the domain does not accept; names the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message
