"""Roles and what each may do. One table, read by every endpoint; nothing implicit."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    AGENT = "agent"  # call-taker at a softphone station (command center)
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"  # reads, never writes
    ADMIN = "admin"
    OPD_OPERATOR = "opd-operator"  # bound to one agency; sees only its tickets
    INTEGRATION = "integration"  # other channels / instances creating tickets via the API


class Permission(enum.StrEnum):
    TICKET_READ_ALL = "ticket.read_all"
    TICKET_READ_AGENCY = "ticket.read_agency"
    TICKET_CREATE = "ticket.create"
    TICKET_WORK = "ticket.work"  # transition, comment
    TICKET_DISPATCH = "ticket.dispatch"
    TICKET_ESCALATE = "ticket.escalate"
    TICKET_FORWARD = "ticket.forward"
    TICKET_REVIEW = "ticket.review"
    TICKET_REOPEN = "ticket.reopen"
    SEE_CONFIDENTIAL = "ticket.see_confidential_reporter"
    DIRECTORY_READ = "directory.read"  # agencies, categories
    DIRECTORY_WRITE = "directory.write"
    USERS_READ = "users.read"
    USERS_WRITE = "users.write"
    REPORTS_READ = "reports.read"
    INBOUND_CREATE = "inbound.create"
    CALL_CLASSIFY = "call.classify"  # mark a call as emergency, information, prank or ghost
    CALLER_BLOCK = "caller.block"  # block a prank caller for a while, or lift a block
    CALLBACK_PLACE = "callback.place"  # call back a dropped 112 caller and record the outcome
    AGENT_STATION = "agent.station"  # log my station in to my queues, pause, log out
    LIVE_CONSOLE = "live.console"  # open the console WebSocket (screen-pops, live state)
    LIVE_WATCH = "live.watch"  # the wallboard: every queue, caller and agent
    RECORDING_SEARCH = "recording.search"  # search transcripts, read a recording's metadata
    RECORDING_PLAY = "recording.play"  # play or download a recording (each access is audited)
    RECORDING_HOLD = "recording.hold"  # place or lift a legal hold (kept past retention; audited)
    AUDIT_READ = "audit.read"  # read the audit log and check its hash chain


P = Permission
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.AGENT: frozenset(
        {P.TICKET_READ_ALL, P.TICKET_CREATE, P.TICKET_WORK, P.TICKET_DISPATCH, P.TICKET_ESCALATE,
         P.TICKET_FORWARD, P.SEE_CONFIDENTIAL, P.DIRECTORY_READ, P.CALL_CLASSIFY, P.CALLER_BLOCK,
         P.CALLBACK_PLACE, P.AGENT_STATION, P.LIVE_CONSOLE}
    ),
    Role.SUPERVISOR: frozenset(
        {P.TICKET_READ_ALL, P.TICKET_CREATE, P.TICKET_WORK, P.TICKET_DISPATCH, P.TICKET_ESCALATE,
         P.TICKET_FORWARD, P.TICKET_REVIEW, P.TICKET_REOPEN, P.SEE_CONFIDENTIAL, P.DIRECTORY_READ,
         P.USERS_READ, P.REPORTS_READ, P.CALL_CLASSIFY, P.CALLER_BLOCK, P.CALLBACK_PLACE,
         P.AGENT_STATION, P.LIVE_CONSOLE, P.LIVE_WATCH}
    ),
    # Recordings are heard by auditors and administrators only (DESIGN.md): not by agents or
    # supervisors, whose own calls they are, nor by OPD operators.
    Role.AUDITOR: frozenset(
        {P.TICKET_READ_ALL, P.SEE_CONFIDENTIAL, P.DIRECTORY_READ, P.USERS_READ, P.REPORTS_READ,
         P.RECORDING_SEARCH, P.RECORDING_PLAY, P.RECORDING_HOLD, P.AUDIT_READ}
    ),
    Role.ADMIN: frozenset(set(Permission) - {P.INBOUND_CREATE}),
    # OPD operators work their agency's queue; the confidential reporter stays hidden from them.
    Role.OPD_OPERATOR: frozenset({P.TICKET_READ_AGENCY, P.TICKET_WORK, P.TICKET_ESCALATE, P.DIRECTORY_READ}),
    Role.INTEGRATION: frozenset({P.INBOUND_CREATE, P.DIRECTORY_READ}),
}  # fmt: skip


def allowed(role: Role, permission: Permission) -> bool:
    return permission in PERMISSIONS[role]
