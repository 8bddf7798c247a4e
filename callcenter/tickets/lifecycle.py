"""Ticket statuses and the rules for moving between them. Pure: no database, no clock.

menunggu (waiting) -> diproses (in process) -> selesai (done) | ditolak (rejected, with reason).
The command center may settle a waiting ticket itself; an OPD must claim it first. A done or
rejected ticket may be reopened by a supervisor within the reopen window; it goes back to
waiting so it is verified again. Every other move is refused with a message that says which
moves are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from callcenter.auth.roles import Permission, Role, allowed
from callcenter.errors import Conflict

WAITING = "menunggu"
IN_PROCESS = "diproses"
DONE = "selesai"
REJECTED = "ditolak"
STATUSES = (WAITING, IN_PROCESS, DONE, REJECTED)
OPEN_STATUSES = (WAITING, IN_PROCESS)
CLOSED_STATUSES = (DONE, REJECTED)

CHANNELS = ("112", "hotline", "web", "sms", "api", "forwarded")
PRIORITIES = ("low", "normal", "high", "critical")
REOPEN_WINDOW = timedelta(days=30)
MAX_REASON = 2000

# (from, to) -> the name of the move, as it appears in the trail.
TRANSITIONS: dict[tuple[str, str], str] = {
    (WAITING, IN_PROCESS): "start",
    (WAITING, DONE): "resolve",
    (WAITING, REJECTED): "reject",
    (IN_PROCESS, DONE): "resolve",
    (IN_PROCESS, REJECTED): "reject",
    (IN_PROCESS, WAITING): "release",
    (DONE, WAITING): "reopen",
    (REJECTED, WAITING): "reopen",
}


class IllegalTransition(Conflict):
    """The move is not allowed from this status, for this role, or without what it needs."""


@dataclass(frozen=True)
class Move:
    name: str
    from_status: str
    to_status: str


def check_transition(
    current: str,
    target: str,
    role: Role,
    *,
    reason: str = "",
    resolved_at: datetime | None = None,
    now: datetime | None = None,
) -> Move:
    """Return the move from ``current`` to ``target`` or raise :class:`IllegalTransition`."""
    if target not in STATUSES:
        raise IllegalTransition(f"unknown status {target!r}; statuses are {', '.join(STATUSES)}")
    name = TRANSITIONS.get((current, target))
    if name is None:
        options = [to for (frm, to) in TRANSITIONS if frm == current]
        allowed_text = ", ".join(options) if options else "none"
        raise IllegalTransition(f"cannot go from '{current}' to '{target}'; allowed: {allowed_text}")
    if name == "reject" and not reason.strip():
        raise IllegalTransition("rejecting a ticket needs a reason")
    if len(reason) > MAX_REASON:
        raise IllegalTransition(f"reason is longer than {MAX_REASON} characters")
    if name == "resolve" and current == WAITING and role is Role.OPD_OPERATOR:
        raise IllegalTransition("an OPD operator claims a ticket (diproses) before closing it")
    if name == "reopen":
        if not allowed(role, Permission.TICKET_REOPEN):
            raise IllegalTransition("only a supervisor may reopen a closed ticket")
        if resolved_at is not None and now is not None and now - resolved_at > REOPEN_WINDOW:
            raise IllegalTransition(
                f"the reopen window of {REOPEN_WINDOW.days} days has passed; create a new ticket"
            )
    return Move(name=name, from_status=current, to_status=target)
