"""Property test over the OpenAPI document: generated requests for every operation never get a 5xx.

schemathesis generates valid and invalid bodies, queries and path parameters from
/api/v1/openapi.json and sends them, as an administrator (who may reach every operation), to the
real engine web app served over HTTP on a real database.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings

from callcenter.auth import service as auth
from callcenter.calls.live import LiveState
from callcenter.calls.stations import AgentStations
from callcenter.dispatch.seed import seed_directory
from callcenter.events import EventBus
from callcenter.storage.database import Database
from callcenter.storage.migrate import upgrade
from callcenter.tickets.service import TicketService
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar
from callcenter.web.api.agents import LiveDeps
from callcenter.web.api.routes import ROUTES
from callcenter.web.app import ApiDeps, create_web_app
from callcenter.web.live import LiveHub
from tests.web.fakes import FakeAmi

EXAMPLES = 30


async def _healthy() -> dict[str, object]:
    return {"status": "ok"}


class ServedApp:
    """The web app on its own event loop in a thread, so the synchronous schemathesis calls it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self._stop: asyncio.Event | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        bus, state = EventBus(), LiveState()
        live = LiveDeps(state, AgentStations(FakeAmi()), LiveHub(bus, self.db, state))
        app = create_web_app(
            _healthy, ApiDeps(self.db, TicketService(load_calendar(DEFAULT_CALENDAR)), bus, live=live)
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self.ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> None:
        self.thread.start()
        assert self.ready.wait(10), "web app did not start"

    def stop(self) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    path: Path = tmp_path_factory.mktemp("schemathesis") / "cc.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    db = Database(url)
    db.open()
    with db.transaction() as s, s.begin():
        seed_directory(s)
        admin = auth.create_user(s, "root", "password-root", "admin")
        token = auth.create_token(s, admin, "schemathesis")
    app = ServedApp(db)
    app.start()
    try:
        yield f"http://127.0.0.1:{app.port}", token
    finally:
        app.stop()
        db.close()


OPERATIONS = [f"{r.method} {r.path}" for r in ROUTES]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_server_errors(served: tuple[str, str], operation: str) -> None:
    base_url, token = served
    document: dict[str, Any] = requests.get(f"{base_url}/api/v1/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    method, path = operation.split(" ", 1)
    api_operation = schema[path][method]
    headers = {"Authorization": f"Bearer {token}"}

    @given(case=api_operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=10)
        assert response.status_code < 500, (
            f"{operation}: {response.status_code} {response.text[:300]} for {case.body!r} {case.query!r}"
        )

    check()
