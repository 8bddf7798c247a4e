"""A ticket made while a real 112 call is up is linked to that call and, after hang-up, its recording."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from callcenter.agi.server import IvrCommandSent
from callcenter.app import Engine
from callcenter.auth import service as auth
from callcenter.credentials import SipAccount
from callcenter.recording.closed import RecordingClosed
from callcenter.settings import Settings
from callcenter.sip import AgentPhone, CitizenPhone

pytestmark = pytest.mark.e2e


async def test_ticket_created_during_a_call(
    engine: Engine, accounts: dict[str, SipAccount], pbx_settings: Settings, tmp_path: Path
) -> None:
    def make_agent(session: object) -> str:
        user = auth.create_user(session, "ani", "password-ani-1", "agent")  # type: ignore[arg-type]
        return auth.create_token(session, user, "e2e")  # type: ignore[arg-type]

    token = await engine.database.run(make_agent)  # type: ignore[arg-type]
    base = f"http://{pbx_settings.http_host}:{engine.http_port}/api/v1"
    headers = {"Authorization": f"Bearer {token}"}
    citizen_account, agent_account = accounts["citizen2"], accounts["agent3"]
    async with engine.bus.subscribe() as events, aiohttp.ClientSession(headers=headers) as http, \
            AgentPhone(username=agent_account.username, password=agent_account.password,
                       port=agent_account.port) as agent, \
            CitizenPhone(username=citizen_account.username, password=citizen_account.password,
                         port=citizen_account.port) as citizen:  # fmt: skip
        await agent.wait_registered(10)
        await citizen.dial(pbx_settings.emergency_number, timeout=15)
        menu = await events.wait_for(IvrCommandSent, 15, lambda e: e.command.startswith("GET DATA"))
        await citizen.send_dtmf("1")
        await agent.wait_ringing(30)
        await agent.answer()
        # The caller's channel is the first of the call: its Uniqueid is the call's Linkedid.
        ticket = {
            "summary": "Pencurian di rumah warga",
            "channel": "112",
            "call": {
                "system_name": pbx_settings.system_name,
                "linkedid": menu.uniqueid,
                "caller_number": citizen_account.number,
            },
        }
        async with http.post(f"{base}/tickets", json=ticket) as response:
            assert response.status == 201, await response.text()
            number = (await response.json())["number"]
        # The agent's screen sends it again (a retry, a second click): still one ticket.
        async with http.post(f"{base}/tickets", json=ticket) as response:
            assert response.status == 200 and (await response.json())["number"] == number
        await citizen.hangup()
        await agent.wait_disconnected(10)
        closed = await events.wait_for(RecordingClosed, 15, lambda e: e.linkedid == menu.uniqueid)
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.get(f"{base}/tickets/{number}") as response,
    ):
        detail = await response.json()
    assert [(c["linkedid"], c["recorded"]) for c in detail["calls"]] == [(closed.linkedid, True)]
    assert detail["reporter"]["number"] == citizen_account.number
    by_number = {"caller_number": citizen_account.number}
    async with aiohttp.ClientSession(headers=headers) as http, \
            http.get(f"{base}/tickets", params=by_number) as response:  # fmt: skip
        assert [t["number"] for t in (await response.json())["items"]] == [number]
