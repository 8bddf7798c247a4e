"""What an auditor sees of recordings: search hits, one recording, and a file to play, audited.

Only auditors and administrators come here (``RECORDING_SEARCH``, ``RECORDING_PLAY``); the
web layer checks the permission, this module decides what they see:

- **Confidential reports hide the reporter**, here for every role: a call that opened, or is
  linked to, a confidential ticket shows no caller number and no reporter, and a search by caller
  number leaves such calls out, so searching recordings by number never tells who made a
  confidential report. (An auditor who needs the reporter opens the ticket, where
  ``SEE_CONFIDENTIAL`` decides, as for every ticket.)
- **Files come from the catalogue only**: the path of a file to play is the ``recording_files``
  row's, never anything from the request, and only a file that was hashed when catalogued (so
  opened then, after :func:`callcenter.recording.integrity.unsafe_reason` passed) is served.
- **Every playback and download is appended to the audit log** by :func:`log_access`, in its
  own short transaction, with who, which file (kind and SHA-256) and from where.

Blocking (file ``stat``): call these inside ``Database.run``, on its executor thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.audit.log import RECORDING_DOWNLOAD, RECORDING_PLAY, append
from callcenter.audit.models import AuditEntry
from callcenter.calls.records import CallRecord
from callcenter.errors import Conflict, Gone, NotFound
from callcenter.recording.catalogue import files_of
from callcenter.recording.models import Recording, RecordingFile
from callcenter.tickets.models import Ticket, TicketCall
from callcenter.transcription.jobmodels import Transcript, TranscriptionJob
from callcenter.transcription.search import SearchHit, TranscriptQuery, search

OBJECT_KIND = "recording"


def confidential_calls(session: Session, call_ids: Iterable[int | None]) -> set[int]:
    """Those of ``call_ids`` that opened, or are linked to, a confidential ticket."""
    ids = sorted({i for i in call_ids if i is not None})
    if not ids:
        return set()
    origin = select(Ticket.origin_call_id).where(
        Ticket.confidential.is_(True), Ticket.origin_call_id.in_(ids)
    )
    linked = (
        select(TicketCall.call_id)
        .join(Ticket, Ticket.id == TicketCall.ticket_id)
        .where(Ticket.confidential.is_(True), TicketCall.call_id.in_(ids))
    )
    return {i for i in [*session.scalars(origin), *session.scalars(linked)] if i is not None}


# ---- search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditHit:
    """A search hit as an auditor sees it: the caller number blanked when ``confidential``."""

    hit: SearchHit
    confidential: bool


def search_recordings(
    session: Session, query: TranscriptQuery, *, limit: int = 50, offset: int = 0
) -> list[AuditHit]:
    """Transcripts matching ``query`` (newest call first), reporters of confidential calls hidden.

    Raises :class:`callcenter.transcription.search.SearchError` for a query that cannot run.
    """
    if query.caller_number:
        query = replace(query, exclude_confidential=True)
    hits = search(session, query, limit=limit, offset=offset)
    hidden = confidential_calls(session, (h.call_id for h in hits))
    return [
        AuditHit(replace(h, caller_number="") if h.call_id in hidden else h, h.call_id in hidden)
        for h in hits
    ]


# ---- one recording -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingView:
    recording: Recording
    call: CallRecord
    files: list[RecordingFile]
    transcripts: list[Transcript]  # the caller's side first
    # The transcription jobs of its files, caller's side first: why a transcript is missing.
    jobs: list[TranscriptionJob]
    tickets: list[Ticket]  # the ticket the call opened and those it is linked to
    confidential: bool  # hide the caller number and the reporter

    @property
    def caller_number(self) -> str:
        return "" if self.confidential else self.call.caller_number


def recording_view(session: Session, recording_id: int) -> RecordingView:
    recording = session.get(Recording, recording_id)
    if recording is None:
        raise NotFound(f"recording {recording_id} not found")
    call = session.get(CallRecord, recording.call_id)
    assert call is not None  # recordings.call_id is a foreign key
    order = {"caller": 0, "agent": 1}
    transcripts = sorted(
        session.scalars(select(Transcript).where(Transcript.recording_id == recording_id)),
        key=lambda t: (order.get(t.leg, 2), t.id),
    )
    jobs = sorted(
        session.scalars(select(TranscriptionJob).where(TranscriptionJob.recording_id == recording_id)),
        key=lambda j: (order.get(j.leg, 2), j.id),
    )
    linked = select(TicketCall.ticket_id).where(TicketCall.call_id == call.id)
    tickets = list(
        session.scalars(
            select(Ticket)
            .where((Ticket.origin_call_id == call.id) | Ticket.id.in_(linked))
            .order_by(Ticket.id)
        )
    )
    return RecordingView(
        recording=recording,
        call=call,
        files=files_of(session, recording_id),
        transcripts=transcripts,
        jobs=jobs,
        tickets=tickets,
        confidential=any(t.confidential for t in tickets),
    )


# ---- playback ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Playable:
    """A catalogued file that is there to be played, as the catalogue knows it."""

    recording_id: int
    kind: str
    path: Path
    size: int
    mtime: float
    sha256: str


def playable_file(session: Session, recording_id: int, kind: str) -> Playable:
    """The file of ``kind`` to send. Blocking (a ``stat``).

    :class:`NotFound` for an unknown recording, a file never catalogued or missing on disk;
    :class:`Gone` when retention deleted the files; :class:`Conflict` when the file's size is not
    the catalogued one (altered since: ``callcenter recordings verify`` says more).
    """
    recording = session.get(Recording, recording_id)
    if recording is None:
        raise NotFound(f"recording {recording_id} not found")
    if recording.deleted_at is not None:
        raise Gone(
            f"recording {recording_id} was deleted by retention on {recording.deleted_at:%Y-%m-%d}; "
            "its catalogue entry and hashes remain"
        )
    file = session.scalars(
        select(RecordingFile).where(RecordingFile.recording_id == recording_id, RecordingFile.kind == kind)
    ).one_or_none()
    if file is None:
        raise NotFound(f"recording {recording_id} has no {kind} file in the catalogue")
    if not file.sha256:
        raise NotFound(
            f"the {kind} file of recording {recording_id} could not be read when it was catalogued "
            f"({file.failure or 'not hashed'}): there is nothing to play"
        )
    path = Path(file.path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise NotFound(
            f"the {kind} file of recording {recording_id} is missing from disk ({path.name}); "
            "`callcenter recordings verify` reports every missing file"
        ) from None
    except OSError as exc:
        raise NotFound(
            f"the {kind} file of recording {recording_id} cannot be read: {exc.strerror}"
        ) from None
    size = stat.st_size
    if file.size_bytes is not None and size != file.size_bytes:
        raise Conflict(
            f"the {kind} file of recording {recording_id} has {size} bytes, the catalogue says "
            f"{file.size_bytes}: it was altered after recording; run `callcenter recordings verify`"
        )
    return Playable(recording_id, kind, path, size, stat.st_mtime, file.sha256)


def log_access(
    session: Session, actor: str, playable: Playable, *, download: bool, client: str, now: datetime
) -> AuditEntry:
    """Append ``recording.play`` or ``recording.download`` for ``actor``, in the caller's transaction."""
    detail = {"kind": playable.kind, "sha256": playable.sha256, "client": client[:100]}
    action = RECORDING_DOWNLOAD if download else RECORDING_PLAY
    return append(session, actor, action, OBJECT_KIND, playable.recording_id, detail, now)


def accesses(
    session: Session,
    recording_id: int,
    *,
    limit: int = 100,
    actions: Sequence[str] = (RECORDING_PLAY, RECORDING_DOWNLOAD),
) -> list[AuditEntry]:
    """The latest ``limit`` plays and downloads of one recording, oldest first."""
    newest = session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.object_kind == OBJECT_KIND,
            AuditEntry.object_id == str(recording_id),
            AuditEntry.action.in_(list(actions)),
        )
        .order_by(AuditEntry.seq.desc())
        .limit(limit)
    )
    return list(reversed(list(newest)))
