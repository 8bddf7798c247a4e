"""The auditor's pages: search recordings (``/audit/recordings``) and play one beside its
transcripts (``/audit/recordings/{id}``).

The pages read through the same functions and JSON shapes as the REST API
(:mod:`callcenter.web.api.recordings`), so confidential reporters are hidden the same way. The
player's ``src`` is the audited audio endpoint, same origin with the session cookie; it has
``preload="none"``, so opening the page does not fetch audio (and is not a playback): only
pressing play (or a transcript line) does. Transcripts are untrusted text: the templates
autoescape, and the snippet's highlights are built from plain-text pieces, never from HTML.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.orm import Session

from callcenter.audit import log as audit_log
from callcenter.auth.actor import Actor
from callcenter.auth.roles import Permission
from callcenter.errors import InvalidInput, NotFound
from callcenter.recording import access
from callcenter.recording.access import AuditHit
from callcenter.transcription.search import SearchError
from callcenter.web.api.auditlog import EntryQuery, chain_json, entry_json
from callcenter.web.api.framework import DATABASE
from callcenter.web.api.recordings import RecordingSearch, load_recording, transcript_query
from callcenter.web.pages.handlers import Names, User, current_actor, error_page, login_url, page_user
from callcenter.web.pages.render import Page

FIELDS = ("q", "since", "until", "caller", "agent", "queue", "ticket", "leg", "offset")
PAGE_SIZE = 50
RECORDING_ID = re.compile(r"[0-9]{1,12}")
# A transcript line ends at a pause this long, after a sentence, or at this many words.
LINE_PAUSE = 1.0
LINE_WORDS = 16
_SENTENCE_END = (".", "?", "!")


@dataclass(frozen=True)
class Piece:
    text: str
    marked: bool


def pieces(snippet: str, spans: Sequence[Sequence[int]]) -> list[Piece]:
    """The snippet cut at the highlight spans, for the template to escape and wrap in <mark>."""
    out: list[Piece] = []
    position = 0
    for start, end in sorted((int(s), int(e)) for s, e in spans):
        start, end = max(start, position), min(end, len(snippet))
        if start >= end:
            continue
        if start > position:
            out.append(Piece(snippet[position:start], False))
        out.append(Piece(snippet[start:end], True))
        position = end
    if position < len(snippet):
        out.append(Piece(snippet[position:], False))
    return out


@dataclass(frozen=True)
class Line:
    start: float | None
    end: float | None
    text: str

    @property
    def clock(self) -> str:
        if self.start is None:
            return ""
        minutes, seconds = divmod(self.start, 60)
        return f"{int(minutes)}:{seconds:04.1f}"


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def lines(text: str, words: object) -> list[Line]:
    """A transcript cut into lines that can be clicked to seek: at pauses, sentences, length."""
    timed = [w for w in words if isinstance(w, dict)] if isinstance(words, list) else []
    if not timed:
        return [Line(None, None, text)] if text else []
    out: list[Line] = []
    current: list[dict[str, Any]] = []

    def close() -> None:
        if current:
            said = " ".join(str(w.get("word", "")) for w in current).strip()
            out.append(Line(_seconds(current[0].get("start")), _seconds(current[-1].get("end")), said))
            current.clear()

    for word in timed:
        if current:
            last = current[-1]
            gap_from, gap_to = _seconds(last.get("end")), _seconds(word.get("start"))
            paused = gap_from is not None and gap_to is not None and gap_to - gap_from >= LINE_PAUSE
            if paused or len(current) >= LINE_WORDS or str(last.get("word", "")).endswith(_SENTENCE_END):
                close()
        current.append(word)
    close()
    return out


async def _auditor(
    request: web.Request, page: Page, permission: Permission = Permission.RECORDING_SEARCH
) -> tuple[Actor, User] | web.StreamResponse:
    """The auditor and the page's user, or the response to send instead (log in; 403)."""
    who = await current_actor(request)
    if who is None:
        return page.redirect(login_url(request))
    names = await request.app[DATABASE].run(Names.load)
    user = page_user(page, who, None, names)
    if not who.can(permission):
        return error_page(page, 403, "audit", user)
    return who, user


def _hit_row(found: AuditHit) -> dict[str, object]:
    hit = found.hit
    return {
        "recording_id": hit.recording_id,
        "started_at": hit.call_started_at,
        "caller_number": hit.caller_number,
        "confidential": found.confidential,
        "agent": hit.agent,
        "queue": hit.queue,
        "tickets": hit.ticket_numbers,
        "speaker": hit.speaker,
        "leg": hit.leg,
        "pieces": pieces(hit.snippet, hit.highlights),
        "transcription": hit.transcription,
    }


async def recordings_page(request: web.Request) -> web.StreamResponse:
    page = Page(request)
    found = await _auditor(request, page)
    if isinstance(found, web.StreamResponse):
        return found
    _, user = found
    form = {name: request.query.get(name, "").strip() for name in FIELDS}
    error = ""
    rows: list[dict[str, object]] = []
    more = False
    offset = 0
    try:
        search = RecordingSearch.model_validate(
            {**{k: v for k, v in form.items() if v}, "limit": PAGE_SIZE + 1}
        )
        offset = search.offset
        wanted = transcript_query(search, page.tz)
        hits = await request.app[DATABASE].run(
            lambda s: access.search_recordings(s, wanted, limit=PAGE_SIZE + 1, offset=offset)
        )
        more = len(hits) > PAGE_SIZE
        rows = [_hit_row(h) for h in hits[:PAGE_SIZE]]
    except ValidationError as exc:
        error = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
    except (InvalidInput, SearchError) as exc:
        error = str(exc)
    kept = [(k, v) for k, v in form.items() if v and k != "offset"]
    return page.render(
        "recordings.html", user=user, form=form, rows=rows, error=error, searched=any(v for _, v in kept),
        next_query=[*kept, ("offset", str(offset + PAGE_SIZE))] if more else None,
        previous_query=[*kept, ("offset", str(max(0, offset - PAGE_SIZE)))] if offset else None,
    )  # fmt: skip


async def recording_page(request: web.Request) -> web.StreamResponse:
    page = Page(request)
    found = await _auditor(request, page)
    if isinstance(found, web.StreamResponse):
        return found
    who, user = found
    raw = request.match_info["id"]
    if not RECORDING_ID.fullmatch(raw):
        return error_page(page, 404, "recording_not_found", user)
    try:
        recording: dict[str, Any] = await request.app[DATABASE].run(lambda s: load_recording(s, int(raw)))
    except NotFound:
        return error_page(page, 404, "recording_not_found", user)
    transcripts = [{**t, "lines": lines(str(t["text"]), t["words"])} for t in recording["transcripts"]]
    by_leg = {leg: [t for t in transcripts if t["leg"] == leg] for leg in ("caller", "agent")}
    others = [t for t in transcripts if t["leg"] not in by_leg]
    # A leg without a transcript says why: its job is queued, running or failed (with the reason).
    jobs_by_leg = {leg: [j for j in recording["transcription_jobs"] if j["leg"] == leg] for leg in by_leg}
    playable = [f for f in recording["files"] if f["audio"]]
    return page.render(
        "recording.html", user=user, recording=recording, by_leg=by_leg, others=others,
        jobs_by_leg=jobs_by_leg, playable=playable if who.can(Permission.RECORDING_PLAY) else [],
        can_hold=who.can(Permission.RECORDING_HOLD),
    )  # fmt: skip


LOG_FIELDS = ("actor", "action", "object_kind", "object_id", "offset")


async def audit_log_page(request: web.Request) -> web.StreamResponse:
    """The audit log, newest first, filtered like the API; ``?verify=1`` checks the chain now."""
    page = Page(request)
    found = await _auditor(request, page, Permission.AUDIT_READ)
    if isinstance(found, web.StreamResponse):
        return found
    _, user = found
    form = {name: request.query.get(name, "").strip() for name in LOG_FIELDS}
    error, more, offset = "", False, 0
    rows: list[dict[str, object]] = []
    chain: dict[str, Any] | None = None
    try:
        query = EntryQuery.model_validate({**{k: v for k, v in form.items() if v}, "limit": PAGE_SIZE + 1})
        offset = query.offset

        def work(session: Session) -> tuple[list[dict[str, object]], dict[str, Any] | None]:
            found = audit_log.entries(session, query.wanted(), limit=PAGE_SIZE + 1, offset=query.offset)
            checked = chain_json(session) if request.query.get("verify") == "1" else None
            return [entry_json(e) for e in found], checked

        rows, chain = await request.app[DATABASE].run(work)
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
    except ValidationError as exc:
        error = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
    kept = [(k, v) for k, v in form.items() if v and k != "offset"]
    return page.render(
        "audit_log.html", user=user, form=form, rows=rows, error=error, chain=chain,
        verify_query=[*kept, ("verify", "1")],
        next_query=[*kept, ("offset", str(offset + PAGE_SIZE))] if more else None,
        previous_query=[*kept, ("offset", str(max(0, offset - PAGE_SIZE)))] if offset else None,
    )  # fmt: skip
