"""The running engine forwards a ticket to another instance: signed, delivered once, logged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from callcenter.app import Engine
from callcenter.auth import service as auth
from callcenter.dispatch import webhook
from callcenter.dispatch.directory import create_agency
from callcenter.dispatch.models import WebhookDelivery
from callcenter.settings import load_settings
from callcenter.storage.base import utcnow
from tests.e2e.conftest import free_port


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, asyncio.Queue[tuple[dict[str, str], bytes]]]]:
    received: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        received.put_nowait((dict(request.headers), await request.read()))
        return web.json_response({"accepted": True}, status=201)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", received
    finally:
        await runner.cleanup()


async def test_forwarded_ticket_reaches_the_other_instance(
    tmp_path: Path, receiver: tuple[str, asyncio.Queue[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = receiver
    settings = load_settings(
        environ={
            "CALLCENTER_HTTP_PORT": str(free_port()),
            "CALLCENTER_AGI_PORT": str(free_port()),
            "CALLCENTER_AMI_PORT": str(free_port()),  # nobody there: the engine runs without Asterisk
            "CALLCENTER_SYSTEM_NAME": "prov-a",
            "CALLCENTER_TRANSCRIPTION_WORKERS": "0",
        },
        base_dir=tmp_path,
    )
    engine = Engine(settings)
    await engine.start()
    try:

        def prepare(session: object) -> tuple[str, str]:
            _, secret = create_agency(session, "KAB-B", "Pemkab B", "external", url)  # type: ignore[arg-type]
            user = auth.create_user(session, "ani", "password-ani-1", "agent")  # type: ignore[arg-type]
            return auth.create_token(session, user, "t"), secret or ""  # type: ignore[arg-type]

        token, secret = await engine.database.run(prepare)  # type: ignore[arg-type]
        base = f"http://127.0.0.1:{engine.http_port}/api/v1"
        async with (
            engine.bus.subscribe() as events,
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        ):
            body = {"summary": "Jalan provinsi? Bukan, jalan kabupaten", "channel": "hotline"}
            async with http.post(f"{base}/tickets", json=body) as response:
                number = (await response.json())["number"]
            async with http.post(f"{base}/tickets/{number}/forward", json={"agency": "KAB-B"}) as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["forwarded_to"] == "KAB-B"
            attempt = await events.wait_for(webhook.DeliveryAttempted, 10)
        assert attempt.delivered and attempt.status_code == 201
        headers, raw = await asyncio.wait_for(received.get(), 10)
        assert webhook.verify(
            secret, headers[webhook.TIMESTAMP_HEADER], raw, headers[webhook.SIGNATURE_HEADER], utcnow()
        )
        assert headers[webhook.SOURCE_HEADER] == "prov-a"
        assert json.loads(raw)["source_ticket"] == number

        def deliveries(session: object) -> list[tuple[str, int | None]]:
            rows = session.scalars(select(WebhookDelivery))  # type: ignore[attr-defined]
            return [(d.status, d.last_status_code) for d in rows]

        assert await engine.database.run(deliveries) == [("delivered", 201)]  # type: ignore[arg-type]
        assert received.empty()
    finally:
        await engine.stop()
