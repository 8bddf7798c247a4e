"""Fixtures of the ticket tests: a ticket service on a settable clock and the people who act."""

from __future__ import annotations

import pytest

from callcenter.auth import service as auth
from callcenter.auth.actor import Actor
from callcenter.dispatch.directory import create_agency
from callcenter.dispatch.seed import seed_directory
from callcenter.storage.database import Database
from callcenter.tickets.service import TicketService
from callcenter.tickets.sla import DEFAULT_CALENDAR, load_calendar
from tests.tickets.kit import MONDAY, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY)


@pytest.fixture
def service(clock: Clock) -> TicketService:
    return TicketService(load_calendar(DEFAULT_CALENDAR), clock=clock)


@pytest.fixture
def people(db: Database) -> dict[str, Actor]:
    with db.transaction() as s, s.begin():
        seed_directory(s)
        create_agency(s, "KABUPATEN-X", "Pemkab X", "external", "http://127.0.0.1:9/hook")
        users = {
            "agent": auth.create_user(s, "ani", "password-agent", "agent"),
            "supervisor": auth.create_user(s, "sri", "password-super", "supervisor"),
            "auditor": auth.create_user(s, "adi", "password-audit", "auditor"),
            "pupr": auth.create_user(s, "budi", "password-pupr1", "opd-operator", "PUPR"),
            "dlh": auth.create_user(s, "citra", "password-dlh01", "opd-operator", "DLH"),
            "sms": auth.create_user(s, "sms-gateway", "password-sms01", "integration"),
        }
        return {key: auth.actor_of(user) for key, user in users.items()}
