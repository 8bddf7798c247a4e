"""Searching transcripts by words and by what is known of the call.

Words are normalised the same way when a transcript is stored and when it is searched: Unicode
NFKC, case-folded, split into runs of letters and digits (any script: Bahasa Indonesia, Korean,
English). A query is a list of such words, all of which must occur (AND); a word ending in ``*``
matches as a prefix (``kebakar*`` finds "kebakaran"). Nothing of the query is ever put into SQL
text: the words are bound parameters, and on PostgreSQL the ``tsquery`` is built from the
normalised words only (letters and digits, so no query syntax can be injected).

Per backend:

- PostgreSQL: ``transcripts.search_vector`` = ``to_tsvector('simple', <normalised words>)``,
  GIN-indexed; a query is ``search_vector @@ to_tsquery('simple', 'w1 & w2:*')``.
- SQLite: ``transcript_terms`` (term, transcript) is the inverted index; a word is an indexed
  equality, a prefix an indexed range (``term >= 'kebakar' AND term < 'kebakas'``).

Filters come from the call (``calls``): date range (the call's start, or the transcript's time
when it has no call), caller number, agent, queue, and ticket number (the ticket the call opened,
``tickets.origin_call_id``, or one the call was linked to, ``ticket_calls``). Each hit names the
call, the recording and carries a snippet of the transcript around the first matching word; the
snippet is plain text with the matches' character spans, for the page to escape and mark.

A search without words is a search of the recordings: besides the transcripts it finds the
recordings that have none (transcription queued, failed, or never started because the recording
itself failed), so a call can be found by its facts before, or without, its transcript.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Integer,
    SQLColumnExpression,
    and_,
    cast,
    delete,
    exists,
    func,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from callcenter.calls.records import CallRecord
from callcenter.recording.models import Recording
from callcenter.tickets.models import Ticket, TicketCall
from callcenter.transcription.jobmodels import (
    FAILED,
    PENDING,
    RUNNING,
    TERM_LENGTH,
    Transcript,
    TranscriptionJob,
    TranscriptTerm,
)

# Letters and digits of any script; "_" and punctuation separate words.
_WORD = re.compile(r"[^\W_]+")
MAX_QUERY_WORDS = 16
MAX_LIMIT = 200
# A prefix shorter than this would match too much to be useful.
MIN_PREFIX = 2
SNIPPET_BEFORE = 8
SNIPPET_AFTER = 16

# Where a hit's transcription stands (SearchHit.transcription).
TRANSCRIBED = "transcribed"
QUEUED = "queued"
FAILED_STATE = "failed"
NOT_QUEUED = "not_queued"
TRANSCRIPTION_STATES = (TRANSCRIBED, QUEUED, FAILED_STATE, NOT_QUEUED)


class SearchError(ValueError):
    """A query that cannot be run (too many words, a prefix too short, a bad page)."""


def normalise(word: str) -> str:
    return unicodedata.normalize("NFKC", word).casefold()[:TERM_LENGTH]


def words_of(text: str) -> list[str]:
    """The normalised words of ``text``, in order (repeats kept)."""
    return [normalise(w) for w in _WORD.findall(unicodedata.normalize("NFKC", text))]


def terms(text: str) -> list[str]:
    """The distinct normalised words of ``text``, in order of first occurrence."""
    return list(dict.fromkeys(words_of(text)))


def index_transcript(session: Session, transcript: Transcript) -> None:
    """(Re)build the search index entry of a stored transcript, in the caller's transaction."""
    if transcript.id is None:
        session.flush()
    found = terms(transcript.text)
    if session.get_bind().dialect.name == "postgresql":
        transcript.search_vector = func.to_tsvector("simple", " ".join(found))
        session.flush()
        return
    session.execute(delete(TranscriptTerm).where(TranscriptTerm.transcript_id == transcript.id))
    if found:
        session.add_all(TranscriptTerm(term=term, transcript_id=transcript.id) for term in found)
    session.flush()


# --- queries -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryWord:
    text: str
    prefix: bool = False


def parse_query(query: str) -> tuple[QueryWord, ...]:
    """The words of a search box entry; ``word*`` is a prefix. Raises :class:`SearchError`."""
    found: dict[QueryWord, None] = {}
    text = unicodedata.normalize("NFKC", query)
    for match in _WORD.finditer(text):
        prefix = match.end() < len(text) and text[match.end()] == "*"
        word = QueryWord(normalise(match.group()), prefix)
        if prefix and len(word.text) < MIN_PREFIX:
            raise SearchError(f"a prefix search needs at least {MIN_PREFIX} letters: {word.text!r}*")
        found[word] = None
    if len(found) > MAX_QUERY_WORDS:
        raise SearchError(f"at most {MAX_QUERY_WORDS} words per search")
    return tuple(found)


@dataclass(frozen=True)
class TranscriptQuery:
    """What an auditor asks for; every field is optional (no words: by filters alone)."""

    words: str = ""
    since: datetime | None = None  # call start, inclusive
    until: datetime | None = None  # call start, exclusive
    caller_number: str = ""
    agent: str = ""
    queue: str = ""
    ticket_number: str = ""
    leg: str = ""  # caller | agent
    engine: str = ""
    # Leave out calls of confidential reports (tickets.confidential): a search by caller number
    # must not tell who made a confidential report (see recording/access.py).
    exclude_confidential: bool = False


@dataclass(frozen=True)
class SearchHit:
    # None for a recording with no transcript yet (a search without words finds those too).
    transcript_id: int | None
    call_id: int | None
    recording_id: int | None
    recording_path: str | None
    leg: str
    speaker: str
    engine: str
    language: str
    call_started_at: datetime | None
    caller_number: str
    agent: str
    queue: str
    ticket_numbers: tuple[str, ...]
    snippet: str
    # Character spans of the matched words inside ``snippet``.
    highlights: tuple[tuple[int, int], ...] = field(default=())
    # TRANSCRIBED for a transcript; for a recording without one: QUEUED, FAILED_STATE or NOT_QUEUED.
    transcription: str = TRANSCRIBED


def search(session: Session, query: TranscriptQuery, *, limit: int = 50, offset: int = 0) -> list[SearchHit]:
    """Transcripts matching ``query``, newest call first.

    Without words (a search by what is known of the call) recordings that have no transcript yet
    (queued, failed, or never transcribed) are hits too, one per recording, with no snippet and
    with ``transcription`` saying why: an auditor looking for a call by date, number, agent,
    queue or ticket must find it whether or not the speech engine got to it.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchError(f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise SearchError("offset must not be negative")
    words = parse_query(query.words)
    postgres = session.get_bind().dialect.name == "postgresql"

    when = func.coalesce(CallRecord.started_at, Transcript.created_at)
    transcribed = (
        select(
            Transcript.id.label("transcript_id"),
            Transcript.recording_id.label("recording_id"),
            when.label("at"),
        )
        .outerjoin(CallRecord, CallRecord.id == Transcript.call_id)
        .where(*_call_filters(query, when, Transcript.call_id))
    )
    if words:
        transcribed = transcribed.where(_words_match(words, postgres))
    if query.leg:
        transcribed = transcribed.where(Transcript.leg == query.leg)
    if query.engine:
        transcribed = transcribed.where(Transcript.engine == query.engine)
    found = transcribed.subquery()
    if not (words or query.leg or query.engine):
        untranscribed = (
            select(
                cast(null(), Integer).label("transcript_id"),
                Recording.id.label("recording_id"),
                CallRecord.started_at.label("at"),
            )
            .join(CallRecord, CallRecord.id == Recording.call_id)
            .where(
                ~exists().where(Transcript.recording_id == Recording.id),
                *_call_filters(query, CallRecord.started_at, Recording.call_id),
            )
        )
        found = union_all(transcribed, untranscribed).subquery()
    page = session.execute(
        select(found.c.transcript_id, found.c.recording_id)
        .order_by(
            found.c.at.desc(),
            func.coalesce(found.c.transcript_id, 0).desc(),
            func.coalesce(found.c.recording_id, 0).desc(),
        )
        .limit(limit)
        .offset(offset)
    ).all()
    return _hits(session, [(t, r) for t, r in page], words)


def _call_filters(
    query: TranscriptQuery, when: SQLColumnExpression[datetime], call_id: SQLColumnExpression[int | None]
) -> list[ColumnElement[bool]]:
    """What the query asks of the call (``calls`` joined), for a row whose call is ``call_id``."""
    conditions: list[ColumnElement[bool]] = []
    if query.since is not None:
        conditions.append(when >= query.since)
    if query.until is not None:
        conditions.append(when < query.until)
    if query.caller_number:
        conditions.append(CallRecord.caller_number == query.caller_number)
    if query.agent:
        conditions.append(CallRecord.agent == query.agent)
    if query.queue:
        conditions.append(CallRecord.queue == query.queue)
    if query.ticket_number:
        conditions.append(_has_ticket(query.ticket_number, call_id))
    if query.exclude_confidential:
        conditions.append(~_confidential_call(call_id))
    return conditions


def _hits(
    session: Session, page: Sequence[tuple[int | None, int | None]], words: Sequence[QueryWord]
) -> list[SearchHit]:
    """The hits of a page of (transcript, recording) ids, in the page's order."""
    transcript_ids = [t for t, _ in page if t is not None]
    transcripts = {
        t.id: t for t in session.scalars(select(Transcript).where(Transcript.id.in_(transcript_ids)))
    } if transcript_ids else {}  # fmt: skip
    recording_ids = {r for _, r in page if r is not None}
    recordings = {
        r.id: r for r in session.scalars(select(Recording).where(Recording.id.in_(recording_ids)))
    } if recording_ids else {}  # fmt: skip
    call_ids = {t.call_id for t in transcripts.values()} | {r.call_id for r in recordings.values()}
    call_ids.discard(None)
    calls = {
        c.id: c for c in session.scalars(select(CallRecord).where(CallRecord.id.in_(call_ids)))
    } if call_ids else {}  # fmt: skip
    tickets = ticket_numbers(session, list(calls))
    pending = transcription_state(session, [r for t, r in page if t is None and r is not None])
    hits = []
    for transcript_id, recording_id in page:
        transcript = transcripts.get(transcript_id) if transcript_id is not None else None
        recording = recordings.get(recording_id) if recording_id is not None else None
        call_id = transcript.call_id if transcript is not None else (recording.call_id if recording else None)
        call = calls.get(call_id) if call_id is not None else None
        snippet, spans = make_snippet(transcript.text, words) if transcript is not None else ("", ())
        hits.append(
            SearchHit(
                transcript_id=transcript_id,
                call_id=call_id,
                recording_id=recording_id,
                recording_path=recording.path if recording is not None else None,
                leg=transcript.leg if transcript is not None else "",
                speaker=transcript.speaker if transcript is not None else "",
                engine=transcript.engine if transcript is not None else "",
                language=transcript.language if transcript is not None else "",
                call_started_at=call.started_at if call is not None else None,
                caller_number=call.caller_number if call is not None else "",
                agent=call.agent if call is not None else "",
                queue=call.queue if call is not None else "",
                ticket_numbers=tickets.get(call_id, ()) if call_id is not None else (),
                snippet=snippet,
                highlights=spans,
                transcription=TRANSCRIBED
                if transcript is not None
                else pending.get(recording_id or 0, NOT_QUEUED),
            )
        )
    return hits


def transcription_state(session: Session, recording_ids: Sequence[int]) -> dict[int, str]:
    """Where the transcription of each recording stands, judged from its jobs.

    ``queued`` while a job waits or runs, else ``failed`` if one failed for good; recordings with
    no job at all (a failed recording, transcription switched off) are left out: ``not_queued``.
    """
    if not recording_ids:
        return {}
    seen: dict[int, set[str]] = {}
    rows = session.execute(
        select(TranscriptionJob.recording_id, TranscriptionJob.status).where(
            TranscriptionJob.recording_id.in_(sorted(set(recording_ids)))
        )
    ).all()
    for recording_id, status in rows:
        if recording_id is not None:
            seen.setdefault(recording_id, set()).add(status)
    return {
        rid: QUEUED if statuses & {PENDING, RUNNING} else FAILED_STATE if FAILED in statuses else NOT_QUEUED
        for rid, statuses in seen.items()
    }


def _words_match(words: Sequence[QueryWord], postgres: bool) -> ColumnElement[bool]:
    if postgres:
        tsquery = " & ".join(f"{w.text}:*" if w.prefix else w.text for w in words)
        return Transcript.search_vector.op("@@")(func.to_tsquery("simple", tsquery))
    clauses = []
    for word in words:
        if word.prefix:
            upper = word.text[:-1] + chr(ord(word.text[-1]) + 1)
            term_matches = and_(TranscriptTerm.term >= word.text, TranscriptTerm.term < upper)
        else:
            term_matches = TranscriptTerm.term == word.text
        clauses.append(exists().where(TranscriptTerm.transcript_id == Transcript.id, term_matches))
    return and_(*clauses)


def _has_ticket(number: str, call_id: SQLColumnExpression[int | None]) -> ColumnElement[bool]:
    origin = exists().where(Ticket.number == number, Ticket.origin_call_id == call_id)
    linked = exists().where(
        Ticket.number == number,
        TicketCall.ticket_id == Ticket.id,
        TicketCall.call_id == call_id,
    )
    return or_(origin, linked)


def _confidential_call(call_id: SQLColumnExpression[int | None]) -> ColumnElement[bool]:
    """The call opened, or is linked to, a confidential ticket."""
    origin = exists().where(Ticket.confidential.is_(True), Ticket.origin_call_id == call_id)
    linked = exists().where(
        Ticket.confidential.is_(True),
        TicketCall.ticket_id == Ticket.id,
        TicketCall.call_id == call_id,
    )
    return or_(origin, linked)


def ticket_numbers(session: Session, call_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """Ticket numbers per call: the ticket each call opened and those it was linked to."""
    if not call_ids:
        return {}
    ids = sorted(set(call_ids))
    found: dict[int, dict[str, None]] = {}
    origin = select(Ticket.origin_call_id, Ticket.number).where(Ticket.origin_call_id.in_(ids))
    linked = (
        select(TicketCall.call_id, Ticket.number)
        .join(Ticket, Ticket.id == TicketCall.ticket_id)
        .where(TicketCall.call_id.in_(ids))
    )
    for call_id, number in [*session.execute(origin).all(), *session.execute(linked).all()]:
        if call_id is not None:
            found.setdefault(call_id, {})[number] = None
    return {call_id: tuple(sorted(numbers)) for call_id, numbers in found.items()}


def make_snippet(
    text: str, words: Sequence[QueryWord], *, before: int = SNIPPET_BEFORE, after: int = SNIPPET_AFTER
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """A few words of ``text`` around the first word that matches, and the matches' spans.

    Without query words (a search by filters alone) it is the transcript's beginning.
    """
    tokens = list(_WORD.finditer(text))
    if not tokens:
        return "", ()

    def matches(token: re.Match[str]) -> bool:
        norm = normalise(token.group())
        return any(norm.startswith(w.text) if w.prefix else norm == w.text for w in words)

    first = next((i for i, token in enumerate(tokens) if matches(token)), None) if words else None
    start_index = 0 if first is None else max(0, first - before)
    end_index = min(len(tokens), (0 if first is None else first) + after + 1)
    begin, finish = tokens[start_index].start(), tokens[end_index - 1].end()
    lead = "… " if start_index > 0 else ""
    tail = " …" if end_index < len(tokens) else ""
    snippet = lead + text[begin:finish] + tail
    spans = tuple(
        (len(lead) + token.start() - begin, len(lead) + token.end() - begin)
        for token in tokens[start_index:end_index]
        if words and matches(token)
    )
    return snippet, spans


# --- transcripts of a call or a ticket ----------------------------------------------------------


def transcripts_for_call(session: Session, call_id: int) -> list[Transcript]:
    """The call's transcripts, caller's side first."""
    rows = session.scalars(select(Transcript).where(Transcript.call_id == call_id)).all()
    return sorted(rows, key=_leg_order)


def transcripts_for_ticket(session: Session, ticket_id: int) -> list[Transcript]:
    """Transcripts of the call that opened the ticket and of every call linked to it."""
    origin = select(Ticket.origin_call_id).where(Ticket.id == ticket_id, Ticket.origin_call_id.is_not(None))
    linked = select(TicketCall.call_id).where(TicketCall.ticket_id == ticket_id)
    rows = session.scalars(
        select(Transcript)
        .where(or_(Transcript.call_id.in_(origin), Transcript.call_id.in_(linked)))
        .order_by(Transcript.call_id, Transcript.id)
    ).all()
    return sorted(rows, key=lambda t: (t.call_id or 0, *_leg_order(t)))


def _leg_order(transcript: Transcript) -> tuple[int, int]:
    order = {"caller": 0, "agent": 1}
    return (order.get(transcript.leg, 2), transcript.id)
