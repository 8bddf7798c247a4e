"""Failed logins: a client that keeps guessing is refused for a while; nobody else is locked out."""

from __future__ import annotations

import logging

import pytest

from callcenter.auth.throttle import LoginThrottle
from tests.web.test_api import Api, api

__all__ = ["api"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_for_one_name_from_one_address_close_it_for_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_user=5, per_client=30, window=900, clock=clock)
    for _ in range(5):
        assert throttle.retry_after("10.0.0.1", "budi") is None
        throttle.failed("10.0.0.1", "budi")
        clock.now += 10
    # The first failure (at 1000) leaves the window at 1900; it is now 1050.
    assert throttle.retry_after("10.0.0.1", "budi") == 850
    assert throttle.retry_after("10.0.0.1", " BUDI ") == 850  # the name as the login stores it
    # The same name from another address, and another name from this one, are not held back.
    assert throttle.retry_after("10.0.0.2", "budi") is None
    assert throttle.retry_after("10.0.0.1", "ani") is None
    clock.now = 1900.5
    assert throttle.retry_after("10.0.0.1", "budi") is None  # one failure left the window


def test_many_names_from_one_address_close_the_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_user=5, per_client=30, window=900, clock=clock)
    for n in range(30):
        throttle.failed("10.0.0.9", f"user{n}")
        clock.now += 1
    assert throttle.retry_after("10.0.0.9", "someone-new") == 870
    assert throttle.retry_after("10.0.0.8", "someone-new") is None


def test_a_success_clears_that_name_and_memory_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_user=3, per_client=100, window=900, max_tracked=10, clock=clock)
    for _ in range(2):
        throttle.failed("10.0.0.1", "budi")
    throttle.succeeded("10.0.0.1", "budi")
    throttle.failed("10.0.0.1", "budi")
    throttle.failed("10.0.0.1", "budi")
    assert throttle.retry_after("10.0.0.1", "budi") is None  # two since the success, limit three
    for n in range(50):
        throttle.failed(f"10.1.0.{n}", "x")
    assert len(throttle._failures) <= 10


async def test_the_login_endpoint_answers_429_with_retry_after(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = {"username": "budi", "password": "wrong\nfailed login for 'admin'"}
    with caplog.at_level(logging.WARNING, logger="callcenter.web.api.routes"):
        for _ in range(5):
            async with api.client.post("/api/v1/session", json=wrong) as response:
                assert response.status == 401
    assert caplog.text.count("failed login for 'budi' from 127.0.0.1") == 5
    assert "wrong" not in caplog.text  # never the password
    # Now even the right password is not tried.
    right = {"username": "budi", "password": "password-budi"}
    async with api.client.post("/api/v1/session", json=right) as response:
        assert response.status == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 900
        body = await response.json()
    assert body["error"]["code"] == "too_many_attempts"
    assert "try again in" in body["error"]["message"]
    # Another user from the same address logs in as usual.
    async with api.client.post(
        "/api/v1/session", json={"username": "ani", "password": "password-ani"}
    ) as response:
        assert response.status == 200
    _, doc = await api.call("GET", "/api/v1/openapi.json")
    assert set(doc["paths"]["/api/v1/session"]["post"]["responses"]) >= {"200", "401", "429"}  # type: ignore[index]
