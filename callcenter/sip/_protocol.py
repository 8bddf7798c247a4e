"""Wire format between :mod:`callcenter.sip.phone` and :mod:`callcenter.sip.worker`.

One JSON object per line (UTF-8, ``\\n`` terminated) over a Unix socketpair.

Parent -> worker (commands)::

    {"id": 7, "cmd": "dial", "args": {"uri": "sip:112@127.0.0.1:5060"}}

Worker -> parent::

    {"type": "reply", "id": 7, "ok": true, "result": {...}}
    {"type": "reply", "id": 7, "ok": false, "error": "...", "status_code": 486}
    {"type": "event", "event": "call_state", "data": {...}}

The first command is always ``init`` (the configuration, including the
password, travels over the socket rather than the command line so it never
shows up in ``ps``).  The worker answers ``init`` with a reply carrying the
bound SIP port, or with an error and exits.
"""

from __future__ import annotations

import json
from typing import Any

# Hard cap on one message; the parent's StreamReader uses it as its limit.
MAX_MESSAGE_BYTES = 1 << 20

# Call states as reported by the worker (names of pjsip_inv_state without prefix).
STATE_NULL = "NULL"
STATE_CALLING = "CALLING"
STATE_INCOMING = "INCOMING"
STATE_EARLY = "EARLY"
STATE_CONNECTING = "CONNECTING"
STATE_CONFIRMED = "CONFIRMED"
STATE_DISCONNECTED = "DISCONNECTED"


def encode(message: dict[str, Any]) -> bytes:
    """Serialise one message to a newline-terminated JSON line."""
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    if len(data) >= MAX_MESSAGE_BYTES:
        raise ValueError(f"message too large ({len(data)} bytes)")
    return data + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """Parse one JSON line; raises ValueError on anything but a JSON object."""
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("protocol message is not a JSON object")
    return obj
