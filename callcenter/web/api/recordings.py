"""The auditor's side of recordings in the REST API: search, one recording, and its audio.

- ``GET /api/v1/recordings/search``: transcripts by words and by what is known of the call.
- ``GET /api/v1/recordings/{id}``: the call, the files with their integrity facts, the
  transcripts per leg with word times, legal hold, deletion, and who played it.
- ``GET /api/v1/recordings/{id}/audio?kind=mixed|caller|agent[&download=1]``: the WAV file with
  HTTP range requests (aiohttp's ``FileResponse``: 206 with ``Content-Range``, 416 when
  unsatisfiable, ``Accept-Ranges: bytes``; the file is stat'ed, opened and sent off the loop).
- ``POST /api/v1/recordings/{id}/verify``: re-hash the recording's files now and compare them
  with the catalogue (what ``callcenter recordings verify`` does for all); audited with the result.
- ``POST /api/v1/recordings/{id}/legal-hold`` and ``.../legal-hold/release`` with a ``reason``:
  keep the files past retention (a court or a prosecutor asked for them), or let retention apply
  again; both appended to the audit log with the reason.

Only auditors and administrators (``RECORDING_SEARCH``, ``RECORDING_PLAY``, ``RECORDING_HOLD``).
What they see of confidential reports is decided in :mod:`callcenter.recording.access`.

**One audit entry per playback.** A browser plays a recording with many range requests (the
first from byte 0, then one per seek). A request is appended to the audit log as
``recording.play`` (``recording.download`` with ``download=1``) when it starts a playback: it
has no Range header, or its range starts at byte 0 (a suffix range covering the whole file
counts). A range starting later is a continuation and is not logged again, *unless* this process
has not logged that user playing that file within :data:`CONTINUATION_WINDOW` seconds: a request
for the middle of a file is never a way round the log. Unsatisfiable ranges (416) and refusals
are not playbacks. The entry is committed before the first byte is sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session

from callcenter.audit.log import RECORDING_VERIFY, append
from callcenter.auth.roles import Permission as P
from callcenter.errors import Gone, InvalidInput, NotFound
from callcenter.recording import access
from callcenter.recording.access import AuditHit, Playable, RecordingView
from callcenter.recording.catalogue import catalogued_files
from callcenter.recording.integrity import CataloguedFile, VerifyReport, verify_files
from callcenter.recording.models import Recording
from callcenter.recording.retention import MAX_HOLD_REASON, lift_legal_hold, place_legal_hold
from callcenter.storage.base import utcnow
from callcenter.transcription.jobmodels import Transcript
from callcenter.transcription.search import MAX_LIMIT, SearchError, TranscriptQuery
from callcenter.web.api.framework import BODY, DATABASE, QUERY, ApiError, Route, actor, json_ok
from callcenter.web.api.views import iso, reporter

CONTINUATION_WINDOW = 600.0
CHUNK_SIZE = 256 * 1024
# Accesses listed with a recording (the audit log has them all).
MAX_ACCESSES = 100
# Where dates without a time are days (the pages set the command center's zone here).
ZONE: web.AppKey[tzinfo] = web.AppKey("recordings_zone", tzinfo)

When = AwareDatetime | date
Username = Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9_.@-]*$")]


class RecordingSearch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    q: Annotated[str, StringConstraints(max_length=500)] = Field(
        default="", description="words, all of which must occur; 'word*' matches a prefix"
    )
    since: When | None = Field(default=None, description="call start from (a date: from that day)")
    until: When | None = Field(
        default=None, description="call start before (a date: up to and with that day)"
    )
    caller: Annotated[str, StringConstraints(max_length=40, pattern=r"^[A-Za-z0-9+*#._-]*$")] = ""
    agent: Username = ""
    queue: Annotated[str, StringConstraints(max_length=40, pattern=r"^[A-Za-z0-9_-]*$")] = ""
    ticket: Annotated[str, StringConstraints(max_length=16, pattern=r"^[0-9]*$")] = ""
    leg: Literal["caller", "agent"] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 50
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0


class HoldReason(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: Annotated[str, StringConstraints(min_length=1, max_length=MAX_HOLD_REASON)] = Field(
        description="why: the case, the request's reference (kept in the audit log)"
    )


class AudioQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["mixed", "caller", "agent"] = "mixed"
    download: bool = False


# ---- search ------------------------------------------------------------------------------------
def _moment(value: When | None, zone: tzinfo, *, end: bool, name: str) -> datetime | None:
    """A datetime as given; a date as the start of that day (``end``: of the next day) in ``zone``."""
    if value is None:
        return None
    try:
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        day = value + timedelta(days=1) if end else value
        return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidInput(name, "out of range") from None


def transcript_query(search: RecordingSearch, zone: tzinfo) -> TranscriptQuery:
    since = _moment(search.since, zone, end=False, name="since")
    until = _moment(search.until, zone, end=True, name="until")
    if since is not None and until is not None and since >= until:
        raise InvalidInput("until", "must be after since")
    return TranscriptQuery(
        words=search.q, since=since, until=until, caller_number=search.caller, agent=search.agent,
        queue=search.queue, ticket_number=search.ticket, leg=search.leg or "",
    )  # fmt: skip


def hit_json(found: AuditHit) -> dict[str, object]:
    hit = found.hit
    return {
        "transcript_id": hit.transcript_id,
        "recording_id": hit.recording_id,
        "call": {
            "started_at": iso(hit.call_started_at),
            "caller_number": None if found.confidential else hit.caller_number,
            "agent": hit.agent,
            "queue": hit.queue,
        } if hit.call_id is not None else None,
        "confidential": found.confidential,
        "ticket_numbers": list(hit.ticket_numbers),
        "leg": hit.leg,
        "speaker": hit.speaker,
        "engine": hit.engine,
        "language": hit.language,
        "snippet": hit.snippet,
        "highlights": [list(span) for span in hit.highlights],
        "transcription": hit.transcription,
    }  # fmt: skip


def zone_of(app: web.Application) -> tzinfo:
    return app.get(ZONE, UTC)


async def search_recordings(request: web.Request) -> web.Response:
    query: RecordingSearch = request[QUERY]
    wanted = transcript_query(query, zone_of(request.app))

    def work(session: Session) -> list[dict[str, object]]:
        try:
            found = access.search_recordings(session, wanted, limit=query.limit, offset=query.offset)
        except SearchError as exc:
            raise ApiError(400, "invalid_search", str(exc)) from None
        return [hit_json(h) for h in found]

    items = await request.app[DATABASE].run(work)
    return json_ok({"items": items, "limit": query.limit, "offset": query.offset})


# ---- one recording -----------------------------------------------------------------------------
def recording_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise ApiError(404, "not_found", f"recording {raw[:20]} not found")
    return int(raw)


def transcript_json(t: Transcript) -> dict[str, object]:
    return {
        "id": t.id,
        "leg": t.leg,
        "speaker": t.speaker,
        "engine": t.engine,
        "language": t.language,
        "text": t.text,
        "words": t.words,
        "confidence": t.confidence,
        "duration_seconds": t.duration_seconds,
        "created_at": iso(t.created_at),
    }


def recording_json(view: RecordingView, accesses: list[dict[str, object]]) -> dict[str, object]:
    r, call = view.recording, view.call
    return {
        "id": r.id,
        "status": r.status,
        "failure": r.failure,
        "closed_at": iso(r.closed_at),
        "duration_seconds": r.duration_seconds,
        "deleted": r.deleted_at is not None,
        "deleted_at": iso(r.deleted_at),
        "legal_hold": {
            "held": r.legal_hold,
            "by": r.legal_hold_by or None,
            "at": iso(r.legal_hold_at),
            "reason": r.legal_hold_reason or None,
        },
        "call": {
            "system_name": call.system_name,
            "linkedid": call.linkedid,
            "caller_number": None if view.confidential else call.caller_number,
            "service": call.service,
            "queue": call.queue,
            "agent": call.agent,
            "started_at": iso(call.started_at),
            "answered_at": iso(call.answered_at),
            "ended_at": iso(call.ended_at),
        },
        "confidential": view.confidential,
        # The reporter of a confidential ticket stays hidden here for every role (access.py).
        "tickets": [
            {"number": t.number, "status": t.status, "confidential": t.confidential,
             "reporter": reporter(t, show=False)}
            for t in view.tickets
        ],
        "files": [
            {
                "kind": f.kind, "path": f.path, "status": f.status, "failure": f.failure,
                "size_bytes": f.size_bytes, "format": f.format, "sample_rate": f.sample_rate,
                "channels": f.channels, "duration_seconds": f.duration_seconds, "sha256": f.sha256,
                "checked_at": iso(f.checked_at),
                "audio": f"/api/v1/recordings/{r.id}/audio?kind={f.kind}" if f.sha256 else None,
            }
            for f in view.files
        ],
        "transcripts": [transcript_json(t) for t in view.transcripts],
        "transcription_jobs": [
            {"id": j.id, "leg": j.leg, "engine": j.engine, "status": j.status, "attempts": j.attempts,
             "error": j.error or None, "created_at": iso(j.created_at), "finished_at": iso(j.finished_at)}
            for j in view.jobs
        ],
        "accesses": accesses,
    }  # fmt: skip


def load_recording(session: Session, rid: int) -> dict[str, object]:
    view = access.recording_view(session, rid)
    entries = access.accesses(session, rid, limit=MAX_ACCESSES)
    listed: list[dict[str, object]] = [
        {"at": iso(e.at), "actor": e.actor, "action": e.action, "seq": e.seq, "detail": json.loads(e.detail)}
        for e in entries
    ]
    return recording_json(view, listed)


async def get_recording(request: web.Request) -> web.Response:
    rid = recording_id(request)
    return json_ok(await request.app[DATABASE].run(lambda s: load_recording(s, rid)))


# ---- audio -------------------------------------------------------------------------------------
class PlaybackLog:
    """Which playbacks this process logged lately: (user, recording, kind, action) -> when.

    Bounded; forgetting an entry only means the next range request is logged again.
    """

    def __init__(self, window: float = CONTINUATION_WINDOW, limit: int = 10_000) -> None:
        self.window, self.limit = window, limit
        self._seen: OrderedDict[tuple[str, int, str, str], float] = OrderedDict()

    def continues(self, key: tuple[str, int, str, str], now: float) -> bool:
        """True when ``key`` was logged within the window (and keeps it alive)."""
        last = self._seen.get(key)
        if last is None or now - last > self.window:
            return False
        self._seen[key] = now
        self._seen.move_to_end(key)
        return True

    def logged(self, key: tuple[str, int, str, str], now: float) -> None:
        self._seen[key] = now
        self._seen.move_to_end(key)
        while len(self._seen) > self.limit:
            self._seen.popitem(last=False)


PLAYBACKS: web.AppKey[PlaybackLog] = web.AppKey("recording_playbacks", PlaybackLog)


def first_byte(request: web.Request, size: int, mtime: float) -> int | None:
    """The first byte ``FileResponse`` will send for this request; None when it answers 416."""
    if_range = request.if_range
    if if_range is not None and mtime > if_range.timestamp():
        return 0  # the validator failed: the whole file
    try:
        rng = request.http_range
    except ValueError:
        return None
    if rng.start is None:
        return 0
    start = int(rng.start)
    if start < 0:
        return max(0, size + start)
    return start if start < size else None


async def recording_audio(request: web.Request) -> web.StreamResponse:
    who, query = actor(request), request[QUERY]
    rid = recording_id(request)
    db = request.app[DATABASE]
    playable: Playable = await db.run(lambda s: access.playable_file(s, rid, query.kind))
    start = first_byte(request, playable.size, playable.mtime)
    if start is not None:
        action = "download" if query.download else "play"
        key = (who.username, rid, query.kind, action)
        playbacks = request.app[PLAYBACKS]
        if start == 0 or not playbacks.continues(key, time.monotonic()):
            client = request.remote or ""
            await db.run(
                lambda s: access.log_access(
                    s, who.username, playable, download=query.download, client=client, now=utcnow()
                )
            )
            playbacks.logged(key, time.monotonic())
    disposition = "attachment" if query.download else "inline"
    headers = {
        "Content-Type": "audio/wav",
        "Content-Disposition": f'{disposition}; filename="recording-{rid}-{query.kind}.wav"',
    }
    return web.FileResponse(playable.path, chunk_size=CHUNK_SIZE, headers=headers)


# ---- integrity ---------------------------------------------------------------------------------
async def verify_recording(request: web.Request) -> web.Response:
    who, rid, db = actor(request), recording_id(request), request.app[DATABASE]

    def files(session: Session) -> tuple[list[CataloguedFile], VerifyReport]:
        recording = session.get(Recording, rid)
        if recording is None:
            raise NotFound(f"recording {rid} not found")
        if recording.deleted_at is not None:
            raise Gone(f"recording {rid} was deleted by retention on {recording.deleted_at:%Y-%m-%d}")
        return catalogued_files(session, rid)

    found, report = await db.run(files)
    # Hashing reads the files whole: off the loop, with no database session held.
    report = await asyncio.get_running_loop().run_in_executor(None, verify_files, found, report)
    now = utcnow()
    result = {"ok": not report.problems, "checked": report.checked,
              "problems": [f"{p.kind}:{p.file.kind}" for p in report.problems]}  # fmt: skip
    await db.run(lambda s: append(s, who.username, RECORDING_VERIFY, "recording", rid, result, now))
    return json_ok({"recording_id": rid, "verified_at": iso(now), **report.as_dict()})


# ---- legal hold --------------------------------------------------------------------------------
HoldChange = Callable[[Session, int, str, str, datetime], Recording]


def _hold_handler(change: HoldChange, name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Place or lift a legal hold (``change``) with the body's reason; answers the recording."""

    async def handler(request: web.Request) -> web.Response:
        who, rid, body = actor(request), recording_id(request), request[BODY]

        def work(session: Session) -> dict[str, object]:
            change(session, rid, who.username, body.reason, utcnow())
            session.flush()
            return load_recording(session, rid)

        return json_ok(await request.app[DATABASE].run(work))

    handler.__name__ = name  # the OpenAPI operationId
    return handler


place_hold = _hold_handler(place_legal_hold, "place_hold")
release_hold = _hold_handler(lift_legal_hold, "release_hold")


def add_recordings(app: web.Application, zone: tzinfo | None = None) -> None:
    """The state these routes keep on the app (the routes are in the table below)."""
    app[PLAYBACKS] = PlaybackLog()
    if zone is not None:
        app[ZONE] = zone


R = "/api/v1/recordings"
RECORDING_ROUTES: list[Route] = [
    Route("GET", R + "/search", search_recordings, "Search transcripts of recorded calls", "recordings",
          P.RECORDING_SEARCH, query=RecordingSearch),
    Route("GET", R + "/{id}", get_recording, "A recording: call, files, integrity, transcripts, accesses",
          "recordings", P.RECORDING_SEARCH, path_params=("id",)),
    Route("GET", R + "/{id}/audio", recording_audio, "Play or download a recording (range requests; audited)",
          "recordings", P.RECORDING_PLAY, query=AudioQuery, path_params=("id",), produces_audio=True),
    Route("POST", R + "/{id}/verify", verify_recording, "Re-hash a recording's files now (audited)",
          "recordings", P.RECORDING_SEARCH, path_params=("id",), responses=((410, "deleted by retention"),)),
    Route("POST", R + "/{id}/legal-hold", place_hold, "Place a legal hold: keep the files (audited)",
          "recordings", P.RECORDING_HOLD, body=HoldReason, path_params=("id",),
          responses=((409, "already on hold, or deleted by retention"),)),
    Route("POST", R + "/{id}/legal-hold/release", release_hold, "Lift a legal hold (audited)",
          "recordings", P.RECORDING_HOLD, body=HoldReason, path_params=("id",),
          responses=((409, "not on hold"),)),
]  # fmt: skip
