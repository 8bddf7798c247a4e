"""Request bodies of the REST API: strict, closed (unknown fields are errors), bounded."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Short = Annotated[str, StringConstraints(max_length=200)]
Text = Annotated[str, StringConstraints(max_length=10_000)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Number = Annotated[str, StringConstraints(max_length=40, pattern=r"^[0-9+*#]*$")]
# Caller ID as the PBX reports it: digits from the network, a SIP user name on internal lines.
CallerId = Annotated[str, StringConstraints(max_length=40, pattern=r"^[A-Za-z0-9+*#._-]*$")]
Channel = Literal["112", "hotline", "web", "sms", "api"]
Priority = Literal["low", "normal", "high", "critical"]
Status = Literal["menunggu", "diproses", "selesai", "ditolak"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class CallRef(Body):
    system_name: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
    linkedid: Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.-]+$")]
    caller_number: CallerId = ""


class Report(Body):
    """What a report says, whoever brings it in."""

    summary: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    description: Text = ""
    category: Code | None = None
    priority: Priority = "normal"
    location_text: Annotated[str, StringConstraints(max_length=500)] = ""
    district: Annotated[str, StringConstraints(max_length=100)] = ""
    reporter_name: Short = ""
    reporter_contact: Short = ""
    reporter_number: Number = ""
    confidential: bool = False
    anonymous: bool = False


class TicketCreate(Report):
    channel: Channel
    call: CallRef | None = None


class InboundTicket(Report):
    """A report from another channel (SMS gateway, web form, mobile app)."""

    external_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    channel: Literal["web", "sms", "api"] = "api"


class ForwardedReporter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: bool = False
    name: Short = ""
    contact: Short = ""
    number: Annotated[str, StringConstraints(max_length=40)] = ""


class ForwardedTicket(BaseModel):
    """What another instance of this product sends when it forwards a report here."""

    model_config = ConfigDict(extra="forbid")
    source_ticket: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    channel: str = ""
    category: Annotated[str, StringConstraints(max_length=32)] | None = None
    priority: Priority = "normal"
    summary: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    description: Text = ""
    location_text: Annotated[str, StringConstraints(max_length=500)] = ""
    district: Annotated[str, StringConstraints(max_length=100)] = ""
    reporter: ForwardedReporter = ForwardedReporter()
    created_at: datetime | None = None
    note: Text = ""


class Transition(Body):
    to: Status
    note: Text = ""
    reason: Text = ""


class Dispatch(Body):
    agency: Code
    note: Text = ""


class Forward(Body):
    agency: Code
    note: Text = ""


class Comment(Body):
    note: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]


class Escalate(Body):
    note: Text = ""


class Review(Body):
    kind: Literal["supervisor", "citizen"] = "supervisor"
    score: Annotated[int, Field(ge=1, le=5)]
    note: Text = ""


class LinkCall(Body):
    call: CallRef


class Login(Body):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class AgencyCreate(Body):
    code: Code
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    kind: Literal["opd", "external"] = "opd"
    webhook_url: Annotated[str, StringConstraints(max_length=500, pattern=r"^https?://")] | None = None


class CategoryCreate(Body):
    code: Code
    name_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    name_en: Short = ""
    agency: Code | None = None


class RouteSet(Body):
    agency: Code


class UserCreate(Body):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=10, max_length=1024)]
    role: Literal["agent", "supervisor", "auditor", "admin", "opd-operator", "integration"]
    agency: Code | None = None
    display_name: Short = ""


class TokenCreate(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class Pause(Body):
    reason: Code


class CallbackOutcome(Body):
    outcome: Literal["dihubungi", "tidak_diangkat", "gagal", "batal"]
    note: Annotated[str, StringConstraints(max_length=1000)] = ""


class Spy(Body):
    agent: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    mode: Literal["listen", "whisper", "barge"] = "listen"


# ---- the 112 desk: call classification and prank-caller blocks --------------------------------
# Free text without control characters (tab and line breaks allowed): PostgreSQL refuses NUL.
NoteText = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]


class CallClassify(Body):
    """What the agent judged the call to be (see ``calls.blocks.CLASSIFICATIONS``)."""

    code: Literal["darurat", "informasi", "iseng", "hantu"]
    note: NoteText = ""


class BlockCreate(Body):
    """Block a prank caller's number for ``hours`` (24 unless said; at most a year)."""

    number: Annotated[str, StringConstraints(min_length=1, max_length=33, pattern=r"^\+?[0-9]{1,32}$")]
    reason: Annotated[
        str, StringConstraints(min_length=1, max_length=500, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")
    ]
    hours: Annotated[float, Field(gt=0, le=24 * 366)] = 24.0
