"""Transcript search on SQLite (term index) and PostgreSQL (tsvector + GIN): the same answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.calls.records import CallRecord
from callcenter.recording.models import Recording
from callcenter.storage.database import Database
from callcenter.tickets.models import Ticket, TicketCall
from callcenter.transcription import jobs
from callcenter.transcription.jobmodels import Transcript, TranscriptTerm
from callcenter.transcription.recognizer import Recognition, Word
from callcenter.transcription.search import (
    SearchError,
    TranscriptQuery,
    index_transcript,
    parse_query,
    search,
    terms,
    transcripts_for_call,
    transcripts_for_ticket,
)
from tests.transcription.test_jobs import db, shared_database_url

__all__ = ["db", "shared_database_url"]  # fixtures shared with test_jobs (one database per module)

DAY = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
FULLWIDTH_PASAR = "\uff30\uff41\uff53\uff41\uff52"  # NFKC: "Pasar"


def say(text: str) -> Recognition:
    words = tuple(Word(w, 0.4 * i, 0.4 * i + 0.3, 0.8) for i, w in enumerate(text.split()))
    return Recognition(text=text, words=words, engine="vosk", language="id", confidence=0.8)


def transcribed(session: Session, call: CallRecord, recording: Recording | None, leg: str, text: str) -> int:
    path = f"/rec/{call.linkedid}-{leg}.wav"
    jobs.enqueue(
        session,
        path=path,
        leg=leg,
        engine="vosk",
        call_id=call.id,
        recording_id=recording.id if recording else None,
        now=DAY,
    )
    held = jobs.claim(session, "w", DAY)
    assert held is not None
    return jobs.complete(session, held, say(text), DAY).id


def ticket(session: Session, number: str, seq: int, origin: CallRecord | None) -> Ticket:
    row = Ticket(
        number=number,
        year=2026,
        seq=seq,
        channel="phone",
        status="menunggu",
        summary="kebakaran pasar",
        verify_by=DAY + timedelta(days=3),
        origin_call_id=origin.id if origin else None,
    )
    session.add(row)
    session.flush()
    return row


@pytest.fixture
def data(db: Database) -> dict[str, int]:
    """Three calls, two tickets (one call linked to both), five transcripts."""
    with db.transaction() as session, session.begin():
        c1 = CallRecord(
            system_name="local",
            linkedid="c1",
            caller_number="081211112222",
            agent="agent1",
            queue="q112",
            service="112",
            started_at=DAY,
        )
        c2 = CallRecord(
            system_name="local",
            linkedid="c2",
            caller_number="081233334444",
            agent="agent2",
            queue="hotline",
            service="hotline",
            started_at=DAY + timedelta(days=2),
        )
        c3 = CallRecord(system_name="local", linkedid="c3", caller_number="081211112222", agent="agent1",
                        queue="q112", service="112", started_at=DAY + timedelta(days=3))  # fmt: skip
        session.add_all([c1, c2, c3])
        session.flush()
        r1 = Recording(call_id=c1.id, path="/rec/2026/11/20/c1", closed_at=DAY)
        session.add(r1)
        session.flush()
        t1 = ticket(session, "2026-000001", 1, c1)
        t2 = ticket(session, "2026-000002", 2, c2)
        session.add(TicketCall(ticket_id=t1.id, call_id=c2.id))  # a later call about the same fire
        ids = {
            "c1": c1.id,
            "c2": c2.id,
            "c3": c3.id,
            "t1": t1.id,
            "t2": t2.id,
            "c1-caller": transcribed(
                session, c1, r1, "caller", "Tolong, ada kebakaran di pasar dekat jalan utama."
            ),
            "c1-agent": transcribed(
                session, c1, r1, "agent", "Baik, petugas pemadam kebakaran segera ke lokasi."
            ),
            "c2-caller": transcribed(
                session, c2, None, "caller", "Saya mau tanya status laporan kebakaran kemarin"
            ),
            "c3-caller": transcribed(session, c3, None, "caller", "경찰서에 연락해 주세요 KEBAKARAN"),
            "c3-agent": transcribed(session, c3, None, "agent", f"{FULLWIDTH_PASAR} mana, bu?"),
        }
    return ids


def find(db: Database, **query: object) -> list[int]:
    with db.transaction() as session, session.begin():
        return [hit.transcript_id for hit in search(session, TranscriptQuery(**query))]  # type: ignore[arg-type]


def test_words_are_found_in_any_case_and_width(db: Database, data: dict[str, int]) -> None:
    # Newest call first; within a call, the later transcript first.
    assert find(db, words="kebakaran") == [
        data["c3-caller"],
        data["c2-caller"],
        data["c1-agent"],
        data["c1-caller"],
    ]
    assert find(db, words="KEBAKARAN") == find(db, words="kebakaran")
    assert find(db, words="pasar") == [data["c3-agent"], data["c1-caller"]]  # full-width "pasar" too
    assert find(db, words="경찰서에") == [data["c3-caller"]]
    assert find(db, words="ambulans") == []


def test_all_words_must_be_in_the_same_transcript(db: Database, data: dict[str, int]) -> None:
    assert find(db, words="kebakaran pasar") == [data["c1-caller"]]
    # c3's caller said "kebakaran" and its agent "pasar": two transcripts, no hit.
    assert find(db, words="pemadam, kebakaran!") == [data["c1-agent"]]


def test_prefixes(db: Database, data: dict[str, int]) -> None:
    assert find(db, words="kebakar*") == find(db, words="kebakaran")
    assert find(db, words="kebakar") == []
    assert find(db, words="pema* lokasi") == [data["c1-agent"]]
    assert find(db, words="경찰*") == [data["c3-caller"]]
    with pytest.raises(SearchError, match="at least 2"):
        find(db, words="k*")


def test_filters(db: Database, data: dict[str, int]) -> None:
    assert find(db, words="kebakaran", caller_number="081211112222") == [
        data["c3-caller"],
        data["c1-agent"],
        data["c1-caller"],
    ]
    assert find(db, agent="agent2") == [data["c2-caller"]]
    assert find(db, queue="hotline") == [data["c2-caller"]]
    assert find(db, words="kebakaran", leg="agent") == [data["c1-agent"]]
    assert find(db, since=DAY + timedelta(days=1), until=DAY + timedelta(days=3)) == [data["c2-caller"]]
    assert find(db, since=DAY + timedelta(days=3)) == [data["c3-agent"], data["c3-caller"]]
    # A ticket finds the call that opened it and the calls linked to it later.
    assert find(db, ticket_number="2026-000001") == [data["c2-caller"], data["c1-agent"], data["c1-caller"]]
    assert find(db, ticket_number="2026-000002") == [data["c2-caller"]]
    assert find(db, ticket_number="2026-000009") == []
    assert find(db, words="pemadam", ticket_number="2026-000002") == []


def test_hits_name_the_call_recording_tickets_and_show_a_snippet(db: Database, data: dict[str, int]) -> None:
    with db.transaction() as session, session.begin():
        (hit,) = search(session, TranscriptQuery(words="pasar", queue="q112", leg="caller"))
        (later,) = search(session, TranscriptQuery(words="status"))
    assert (hit.transcript_id, hit.call_id, hit.leg, hit.speaker) == (
        data["c1-caller"],
        data["c1"],
        "caller",
        "penelepon",
    )
    assert (hit.recording_path, hit.caller_number, hit.agent, hit.queue) == (
        "/rec/2026/11/20/c1",
        "081211112222",
        "agent1",
        "q112",
    )
    assert hit.call_started_at == DAY
    assert hit.ticket_numbers == ("2026-000001",)
    assert later.ticket_numbers == ("2026-000001", "2026-000002")
    assert later.recording_path is None
    assert hit.snippet == "Tolong, ada kebakaran di pasar dekat jalan utama"
    assert [hit.snippet[a:b] for a, b in hit.highlights] == ["pasar"]


def test_long_transcripts_give_a_window_around_the_first_match(db: Database, data: dict[str, int]) -> None:
    text = (
        " ".join(f"kata{i}" for i in range(30))
        + " kebakaran besar "
        + " ".join(f"lain{i}" for i in range(30))
    )
    with db.transaction() as session, session.begin():
        call = session.get(CallRecord, data["c2"])
        assert call is not None
        long_id = transcribed(session, call, None, "agent", text)
        hits = search(session, TranscriptQuery(words="besar keba*"))
    (hit,) = hits
    assert hit.transcript_id == long_id
    assert hit.snippet.startswith("… kata22 ") and hit.snippet.endswith(" lain14 …")
    assert [hit.snippet[a:b] for a, b in hit.highlights] == ["kebakaran", "besar"]


def test_query_text_is_only_ever_words(db: Database, data: dict[str, int]) -> None:
    for query in ["'; DROP TABLE transcripts; --", "kebakaran & !pasar | x:*", "a) OR 1=1 --", "\\ % _ ' \""]:
        with db.transaction() as session, session.begin():
            search(session, TranscriptQuery(words=query))
    assert find(db, words="kebakaran & !pasar") == [data["c1-caller"]]  # the operators are not operators
    assert len(find(db, words="kebakaran")) == 4
    assert parse_query("Kebakaran kebakaran KEBAKAR*") == parse_query("kebakaran kebakar*")
    with pytest.raises(SearchError, match="at most 16"):
        find(db, words=" ".join(f"w{i}" for i in range(17)))
    with db.transaction() as session, session.begin(), pytest.raises(SearchError):
        search(session, TranscriptQuery(), limit=0)


def test_without_words_the_snippet_is_the_beginning(db: Database, data: dict[str, int]) -> None:
    with db.transaction() as session, session.begin():
        hits = search(session, TranscriptQuery(caller_number="081233334444"))
    assert [(h.transcript_id, h.snippet, h.highlights) for h in hits] == [
        (data["c2-caller"], "Saya mau tanya status laporan kebakaran kemarin", ())
    ]


def untranscribed(db: Database, data: dict[str, int]) -> dict[str, int]:
    """Three more recorded calls, none transcribed: one queued, one failed, one never queued."""
    with db.transaction() as session, session.begin():
        ids: dict[str, int] = {}
        for n, (name, day) in enumerate([("failed", 5), ("queued", 4), ("none", 6)]):
            call = CallRecord(system_name="local", linkedid=f"u{n}", caller_number="081255556666",
                              agent="agent3", queue="hotline", service="hotline",
                              started_at=DAY + timedelta(days=day))  # fmt: skip
            session.add(call)
            session.flush()
            recording = Recording(call_id=call.id, path=f"/rec/u{n}", closed_at=call.started_at)
            session.add(recording)
            session.flush()
            ids[name], ids[f"{name}-call"] = recording.id, call.id
            if name == "none":
                continue
            for leg in ("caller", "agent"):
                jobs.enqueue(session, path=f"/rec/u{n}-{leg}.wav", leg=leg, engine="vosk",
                             call_id=call.id, recording_id=recording.id, now=DAY)  # fmt: skip
            if name == "failed":
                for _ in ("caller", "agent"):
                    held = jobs.claim(session, "w", DAY)
                    assert held is not None
                    jobs.fail(session, held, "not a WAV file", DAY)
        ticket(session, "2026-000003", 3, session.get(CallRecord, ids["failed-call"])).confidential = True
    return ids


def test_a_search_without_words_finds_recordings_not_yet_transcribed(
    db: Database, data: dict[str, int]
) -> None:
    more = untranscribed(db, data)

    def hits(**query: object) -> list[tuple[int | None, int | None, str]]:
        with db.transaction() as session, session.begin():
            found = search(session, TranscriptQuery(**query))  # type: ignore[arg-type]
        return [(h.transcript_id, h.recording_id, h.transcription) for h in found]

    # By the call's facts: one hit per untranscribed recording, saying how far transcription got.
    assert hits(agent="agent3") == [
        (None, more["none"], "not_queued"),
        (None, more["failed"], "failed"),
        (None, more["queued"], "queued"),
    ]
    assert hits(ticket_number="2026-000003") == [(None, more["failed"], "failed")]
    # The reporter of a confidential report is not found by number, transcribed or not.
    assert hits(caller_number="081255556666", exclude_confidential=True) == [
        (None, more["none"], "not_queued"),
        (None, more["queued"], "queued"),
    ]
    assert hits(since=DAY + timedelta(days=5), until=DAY + timedelta(days=6)) == [
        (None, more["failed"], "failed")
    ]
    # Newest call first, transcripts and untranscribed recordings together.
    assert [t for t, _, _ in hits(queue="hotline")] == [None, None, None, data["c2-caller"]]
    with db.transaction() as session, session.begin():
        (hit,) = search(session, TranscriptQuery(ticket_number="2026-000003"))
    assert (hit.call_id, hit.recording_path, hit.caller_number, hit.ticket_numbers) == (
        more["failed-call"],
        "/rec/u0",
        "081255556666",
        ("2026-000003",),
    )
    assert (hit.leg, hit.speaker, hit.snippet, hit.highlights) == ("", "", "", ())
    # A recording is not a transcript: words, a side or an engine ask for transcripts only.
    assert find(db, words="kebakaran", agent="agent3") == []
    assert find(db, agent="agent3", leg="caller") == []
    assert find(db, agent="agent3", engine="vosk") == []
    # A transcribed recording is found through its transcripts, not a second time as a recording.
    assert find(db, caller_number="081211112222") == [
        data["c3-agent"],
        data["c3-caller"],
        data["c1-agent"],
        data["c1-caller"],
    ]


def test_paging(db: Database, data: dict[str, int]) -> None:
    with db.transaction() as session, session.begin():
        pages = [
            [h.transcript_id for h in search(session, TranscriptQuery(words="kebakaran"), limit=3, offset=o)]
            for o in (0, 3)
        ]
    assert pages == [[data["c3-caller"], data["c2-caller"], data["c1-agent"]], [data["c1-caller"]]]


def test_transcripts_of_a_call_and_of_a_ticket(db: Database, data: dict[str, int]) -> None:
    with db.transaction() as session, session.begin():
        of_call = [t.id for t in transcripts_for_call(session, data["c3"])]
        of_ticket = [(t.call_id, t.speaker) for t in transcripts_for_ticket(session, data["t1"])]
    assert of_call == [data["c3-caller"], data["c3-agent"]]
    assert of_ticket == [(data["c1"], "penelepon"), (data["c1"], "petugas"), (data["c2"], "penelepon")]


def test_reindexing_replaces_the_entry(db: Database, data: dict[str, int]) -> None:
    with db.transaction() as session, session.begin():
        transcript = session.get(Transcript, data["c1-caller"])
        assert transcript is not None
        transcript.text = "laporan banjir"
        index_transcript(session, transcript)
        index_transcript(session, transcript)
    assert find(db, words="banjir") == [data["c1-caller"]]
    assert find(db, words="pasar") == [data["c3-agent"]]
    if db.url.get_backend_name() == "sqlite":
        with db.transaction() as session, session.begin():
            count = session.scalar(
                select(func.count()).where(TranscriptTerm.transcript_id == data["c1-caller"])
            )
        assert count == 2


def test_terms_are_normalised_words() -> None:
    assert terms("Tolong!! ada_kebakaran, di PASAR pasar 112 " + FULLWIDTH_PASAR) == [
        "tolong",
        "ada",
        "kebakaran",
        "di",
        "pasar",
        "112",
    ]
    assert terms("경찰서에 연락해") == ["경찰서에", "연락해"]
    assert terms("") == []
