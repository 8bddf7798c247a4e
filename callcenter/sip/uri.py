"""Small, pure helpers for SIP URIs and name-addr strings (no pjsua2 import).

Used by both the asyncio side and the worker process, and unit-testable on
their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

# What may appear in a dial string that is not already a URI: phone numbers,
# extensions, feature codes (*, #) and simple user names.
_DIAL_TARGET_RE = re.compile(r"^[A-Za-z0-9_.+*#~!-]{1,64}$")

# Compact header forms (RFC 3261 section 7.3.3) that we normalise.
_COMPACT_HEADERS = {
    "i": "call-id",
    "f": "from",
    "t": "to",
    "m": "contact",
    "v": "via",
    "l": "content-length",
    "c": "content-type",
}


@dataclass(frozen=True)
class NameAddr:
    """A parsed ``"Display" <sip:user@host>;params`` value."""

    display_name: str | None
    uri: str
    user: str | None


def is_sip_uri(target: str) -> bool:
    """True if *target* already is a ``sip:``/``sips:`` URI."""
    lowered = target.lower()
    return lowered.startswith("sip:") or lowered.startswith("sips:")


def build_target_uri(target: str, host: str, port: int) -> str:
    """Turn a dial string into a SIP request URI.

    A ``sip:``/``sips:`` URI (optionally in angle brackets) is returned as is;
    anything else must look like a number/extension/user name and becomes
    ``sip:TARGET@host:port`` (``#`` is percent-encoded).
    """
    target = target.strip()
    if target.startswith("<") and target.endswith(">"):
        target = target[1:-1].strip()
    if is_sip_uri(target):
        if any(ch.isspace() for ch in target) or len(target) > 512:
            raise ValueError(f"invalid SIP URI: {target!r}")
        return target
    if not _DIAL_TARGET_RE.match(target):
        raise ValueError(
            f"invalid dial target {target!r}: expected a number/extension "
            "(letters, digits, * # + . _ -) or a sip: URI"
        )
    user = quote(target, safe="*+.-_~!")
    return f"sip:{user}@{host}:{port}"


def parse_name_addr(value: str) -> NameAddr:
    """Parse a From/To/Contact style value, e.g. ``"Budi" <sip:0812@h>;tag=x``.

    Never raises: unparsable input comes back as the URI with no user part.
    """
    text = value.strip()
    display: str | None = None
    uri = text
    lt = text.find("<")
    if lt >= 0:
        gt = text.find(">", lt + 1)
        uri = text[lt + 1 : gt if gt > lt else len(text)].strip()
        raw_display = text[:lt].strip()
        if raw_display.startswith('"'):
            end = raw_display.rfind('"')
            raw_display = raw_display[1:end] if end > 0 else raw_display[1:]
            raw_display = raw_display.replace('\\"', '"').replace("\\\\", "\\")
        display = raw_display or None
    else:
        # addr-spec form: parameters after ';' belong to the header, not the URI.
        uri = text.split(";", 1)[0].strip()
    return NameAddr(display_name=display, uri=uri, user=uri_user(uri))


def uri_user(uri: str) -> str | None:
    """The (percent-decoded) user part of a SIP URI, or None."""
    lowered = uri.lower()
    if lowered.startswith("sips:"):
        rest = uri[5:]
    elif lowered.startswith("sip:") or lowered.startswith("tel:"):
        rest = uri[4:]
    else:
        return None
    if lowered.startswith("tel:"):
        return unquote(rest.split(";", 1)[0]) or None
    if "@" not in rest:
        return None
    user = rest.split("@", 1)[0].split(";", 1)[0].split(":", 1)[0]
    return unquote(user) or None


def parse_sip_headers(message: str) -> dict[str, str]:
    """Headers of a raw SIP message as ``{lower-case name: first value}``.

    The start line is skipped, folded lines are joined, compact names are
    expanded (``i`` -> ``call-id`` ...).  Only the first occurrence of a header
    is kept.
    """
    head = message.replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = head.split("\n")[1:]
    headers: dict[str, str] = {}
    last: str | None = None
    for line in lines:
        if not line:
            continue
        if line[0] in " \t" and last is not None:
            headers[last] = f"{headers[last]} {line.strip()}"
            continue
        name, sep, val = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        key = _COMPACT_HEADERS.get(key, key)
        if key in headers:
            last = None
            continue
        headers[key] = val.strip()
        last = key
    return headers
