"""The recording intake: the AMI consumer hands closed recordings over and goes on; one task
catalogues them in order, survives a failure, and is drained before the engine stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callcenter.recording.closed import RecordingClosed
from callcenter.recording.intake import RecordingIntake


def closed(n: int) -> RecordingClosed:
    return RecordingClosed("pbx", f"1700000000.{n}", f"1700000000.{n}", Path(f"/rec/{n}"), "0812")


async def test_submitting_does_not_wait_for_cataloguing_and_order_is_kept() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    done: list[str] = []

    async def handle(c: RecordingClosed) -> None:
        started.set()
        await release.wait()  # a slow disk: the first recording holds the task
        done.append(c.linkedid)

    intake = RecordingIntake(handle)
    task = asyncio.create_task(intake.run())
    try:
        for n in range(3):
            intake.submit(closed(n))  # returns at once, whatever the handler is doing
        await asyncio.wait_for(started.wait(), 5)
        assert (done, intake.backlog) == ([], 3)
        release.set()
        assert await intake.drain(5)
        assert done == ["1700000000.0", "1700000000.1", "1700000000.2"]
        assert (intake.backlog, intake.catalogued_total) == (0, 3)
    finally:
        task.cancel()


async def test_a_failure_is_logged_and_the_next_recording_is_taken(caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    async def handle(c: RecordingClosed) -> None:
        if c.linkedid.endswith(".1"):
            raise OSError("disk on fire")
        done.append(c.linkedid)

    intake = RecordingIntake(handle)
    task = asyncio.create_task(intake.run())
    try:
        for n in range(3):
            intake.submit(closed(n))
        assert await intake.drain(5)
    finally:
        task.cancel()
    assert done == ["1700000000.0", "1700000000.2"]
    assert intake.catalogued_total == 2
    assert "call 1700000000.1: recording /rec/1 not catalogued" in caplog.text
    assert "disk on fire" in caplog.text


async def test_drain_gives_up_after_its_timeout_and_says_how_many_are_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handle(c: RecordingClosed) -> None:
        await asyncio.Event().wait()  # never finishes

    intake = RecordingIntake(handle)
    task = asyncio.create_task(intake.run())
    try:
        intake.submit(closed(0))
        intake.submit(closed(1))
        assert not await intake.drain(0.2)
    finally:
        task.cancel()
    assert "stopping with 2 closed recording(s) not catalogued" in caplog.text
    # Nothing handed over: drain returns at once.
    assert await RecordingIntake(handle).drain(0.01)


async def test_a_recording_waiting_already_is_not_queued_twice() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    done: list[str] = []

    async def handle(c: RecordingClosed) -> None:
        started.set()
        await release.wait()
        done.append(c.linkedid)

    intake = RecordingIntake(handle)
    task = asyncio.create_task(intake.run())
    try:
        assert intake.submit(closed(0))
        await asyncio.wait_for(started.wait(), 5)
        assert not intake.submit(closed(0))  # in progress: a replay of the same Hangup
        assert intake.submit(closed(1))
        assert not intake.submit(closed(1))  # queued
        assert intake.backlog == 2
        release.set()
        assert await intake.drain(5)
        assert intake.submit(closed(0))  # done: a later sighting is the catalogue's to ignore
        assert await intake.drain(5)
    finally:
        task.cancel()
    assert done == ["1700000000.0", "1700000000.1", "1700000000.0"]
