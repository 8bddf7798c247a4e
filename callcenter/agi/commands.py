"""Typed AGI commands and replies. Pure: no I/O.

Every argument goes through :func:`quote`, which refuses line breaks (they would end the command
and let the rest be read as a new one) and escapes quotes, so caller-supplied text can never
become a second command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\([A-Za-z0-9_,]{0,64}\))?$")
_DIGITS = re.compile(r"^[0-9*#]*$")
_REPLY = re.compile(r"^(?P<code>\d{3})(?:[ -](?P<rest>.*))?$")
_RESULT = re.compile(r"^result=(?P<result>-?\S*)\s*(?:\((?P<data>[^)]*)\))?\s*(?P<extra>.*)$")


class AgiCommandError(ValueError):
    """A command could not be built safely from the given values."""


def quote(value: str) -> str:
    if "\n" in value or "\r" in value or "\x00" in value:
        raise AgiCommandError("AGI argument contains a line break or NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _variable(name: str) -> str:
    if not _VARIABLE.match(name):
        raise AgiCommandError(f"invalid channel variable name {name!r}")
    return name


def _digits(digits: str) -> str:
    if not _DIGITS.match(digits):
        raise AgiCommandError(f"invalid DTMF digits {digits!r}")
    return digits


@dataclass(frozen=True)
class AgiReply:
    code: int
    result: str
    data: str
    extra: str

    @property
    def ok(self) -> bool:
        return self.code == 200 and not self.result.startswith("-1")

    @property
    def digit(self) -> str:
        """The DTMF digit of a STREAM FILE / WAIT FOR DIGIT reply (result is its ASCII code)."""
        try:
            code = int(self.result)
        except ValueError:
            return ""
        return chr(code) if code > 0 else ""


def parse_reply(line: str) -> AgiReply:
    match = _REPLY.match(line.strip())
    if not match:
        raise ValueError(f"unparseable AGI reply {line!r}")
    rest = match.group("rest") or ""
    result = _RESULT.match(rest)
    if not result:
        return AgiReply(code=int(match.group("code")), result="", data="", extra=rest)
    return AgiReply(
        code=int(match.group("code")),
        result=result.group("result"),
        data=result.group("data") or "",
        extra=result.group("extra"),
    )


@dataclass(frozen=True)
class Answer:
    def render(self) -> str:
        return "ANSWER"


@dataclass(frozen=True)
class Hangup:
    def render(self) -> str:
        return "HANGUP"


@dataclass(frozen=True)
class StreamFile:
    """Play a prompt; a key in ``escape_digits`` interrupts it."""

    filename: str
    escape_digits: str = ""

    def render(self) -> str:
        return f"STREAM FILE {quote(self.filename)} {quote(_digits(self.escape_digits))}"


@dataclass(frozen=True)
class GetData:
    """Play a prompt and collect up to ``max_digits`` keys (result is the digits, '' on timeout)."""

    filename: str
    timeout_ms: int
    max_digits: int

    def render(self) -> str:
        if not (0 < self.timeout_ms <= 600_000 and 0 < self.max_digits <= 64):
            raise AgiCommandError("GET DATA timeout or digit count out of range")
        return f"GET DATA {quote(self.filename)} {self.timeout_ms} {self.max_digits}"


@dataclass(frozen=True)
class SayDigits:
    digits: str
    escape_digits: str = ""

    def render(self) -> str:
        if not self.digits.isdigit():
            raise AgiCommandError(f"SAY DIGITS needs digits, got {self.digits!r}")
        return f"SAY DIGITS {self.digits} {quote(_digits(self.escape_digits))}"


@dataclass(frozen=True)
class RecordFile:
    """Record what the caller says (e.g. for a speech choice); a key in ``escape_digits`` or
    ``silence`` seconds of quiet ends it. Reply: result 0 on timeout/silence, the key's ASCII
    code with data 'dtmf', -1 on hang-up."""

    filename: str
    format: str
    escape_digits: str
    timeout_ms: int
    silence: int = 0

    def render(self) -> str:
        if self.format not in ("wav", "gsm", "sln") or not 0 < self.timeout_ms <= 120_000:
            raise AgiCommandError("RECORD FILE format or timeout out of range")
        tail = f" s={self.silence}" if self.silence else ""
        return (
            f"RECORD FILE {quote(self.filename)} {self.format} {quote(_digits(self.escape_digits))} "
            f"{self.timeout_ms}{tail}"
        )


@dataclass(frozen=True)
class SetVariable:
    name: str
    value: str

    def render(self) -> str:
        return f"SET VARIABLE {_variable(self.name)} {quote(self.value)}"


@dataclass(frozen=True)
class GetVariable:
    name: str

    def render(self) -> str:
        return f"GET VARIABLE {_variable(self.name)}"


@dataclass(frozen=True)
class Verbose:
    message: str
    level: int = 3

    def render(self) -> str:
        return f"VERBOSE {quote(self.message)} {self.level}"


AgiCommand = (
    Answer | Hangup | StreamFile | GetData | SayDigits | RecordFile | SetVariable | GetVariable | Verbose
)
