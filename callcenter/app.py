"""The one place that builds the engine and wires its parts together.

Nothing else creates long-lived collaborators: the AMI connection, the FastAGI server, the
database and the web server are made here, passed to whoever needs them, started in order and
stopped in reverse order. Every background task is owned by :class:`Engine` and awaited on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web
from panoramisk.message import Message
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from callcenter.agi.server import FastAgiServer
from callcenter.ami.connection import AmiConnection, AmiError, EventHandler
from callcenter.ami.events import PARSERS
from callcenter.asterisk.render import InstanceDirs
from callcenter.calls.callbacks import ABANDONED, CALLBACK_QUEUES, CallbackListed, add_callback
from callcenter.calls.calllog import CallLog
from callcenter.calls.live import CallerLeft, LiveState, Resynced
from callcenter.calls.monitor import LiveMonitor
from callcenter.calls.stations import AgentStations
from callcenter.credentials import ami_secret
from callcenter.dispatch.webhook import WebhookSender
from callcenter.errors import Conflict, InvalidInput
from callcenter.events import EventBus
from callcenter.ivr.interpreter import FlowRunner
from callcenter.ivr.registry import FlowRegistry
from callcenter.recording.catalogue import Catalogued, catalogue
from callcenter.recording.closed import RecordingClosed, recording_closed
from callcenter.recording.intake import RecordingIntake
from callcenter.recording.integrity import RecordingCheck, RecordingFailed, check_recording
from callcenter.recording.models import AGENT, CALLER
from callcenter.recording.recovery import RecordingRecovery
from callcenter.recording.retention import RetentionJob, RetentionPolicy
from callcenter.settings import ConfigError, Settings
from callcenter.storage.base import utcnow
from callcenter.storage.database import Database
from callcenter.storage.migrate import upgrade
from callcenter.tickets.events import TicketChanged
from callcenter.tickets.service import TicketService
from callcenter.tickets.sla import DEFAULT_CALENDAR, SlaPolicy, load_calendar
from callcenter.tickets.writer import TicketWriter
from callcenter.transcription import jobs as transcription_jobs
from callcenter.transcription.choice import recognize_choice
from callcenter.transcription.events import TranscriptionFailed, TranscriptionQueued, TranscriptReady
from callcenter.transcription.recognizer import TranscriptionError
from callcenter.transcription.worker import TranscriptionPool, WorkerConfig, WorkerEvent
from callcenter.web.api.agents import LiveDeps
from callcenter.web.app import ApiDeps, create_web_app
from callcenter.web.live import LiveHub

log = logging.getLogger(__name__)

# How long a stopping engine waits for closed recordings still to be catalogued.
RECORDINGS_DRAIN_SECONDS = 30.0


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bus = EventBus()
        self.database = Database(settings.resolved_database_url)
        calendar = load_calendar(settings.holidays_file or DEFAULT_CALENDAR, settings.timezone)
        self.tickets = TicketService(
            calendar, SlaPolicy(verify_days=settings.verify_days, follow_up_days=settings.follow_up_days)
        )
        dirs = InstanceDirs(settings.asterisk_dir)
        self.flows = FlowRegistry(settings.flows_dir)
        self.ivr = FlowRunner(
            self.flows.current,
            dirs.sounds,
            system_name=settings.system_name,
            database=self.database,
            tickets=self.tickets,
            calendar=calendar,
            spool_dir=dirs.spool,
            recognize=self._recognize,
        )
        self._speech_pool: ProcessPoolExecutor | None = None
        # The flows are the route table (agi://host:port/<flow>); it is swapped on reload, so
        # every session goes through the runner, which sends unknown routes to the call-takers.
        self.agi = FastAgiServer(
            settings.agi_host,
            settings.agi_port,
            {},
            unknown_route=self.ivr.handle,
            idle_timeout=settings.agi_idle_timeout,
            bus=self.bus,
        )
        self.live = LiveState()
        self.monitor = LiveMonitor(self.live, self.bus)
        # One AMI connection per Asterisk server; the first is the one this engine's agents,
        # callbacks and supervisors act through, the others are watched.
        self.ami = self._ami(settings.system_name, settings.ami_host, settings.ami_port)
        self.amis = [self.ami] + [self._ami(*server) for server in settings.other_ami_servers]
        self.stations = AgentStations(self.ami)
        self.hub = LiveHub(self.bus, self.database, self.live)
        self.call_log = CallLog(self.database, self.bus)
        self.webhooks = WebhookSender(self.database, source=settings.system_name, bus=self.bus)
        self.ticket_writer = TicketWriter(self.database, self.tickets)
        # Recordings closed by a Hangup, catalogued and queued for transcription in order.
        self.recordings = RecordingIntake(self._catalogue_closed)
        # ... and those whose Hangup it never saw (closed while the engine was down), from disk.
        self.recovery = RecordingRecovery(
            self.database,
            settings.recordings_dir,
            settings.system_name,
            self.recordings.submit,
            interval=settings.recording_recovery_interval,
            days=settings.recording_recovery_days,
        )
        # Worker processes that transcribe closed recordings (none: this node only enqueues and
        # workers elsewhere, sharing the database, do the work).
        self.transcription = TranscriptionPool(
            WorkerConfig.from_settings(settings),
            settings.transcription_workers,
            self.database,
            on_event=self._on_transcription,
        )
        self.web = create_web_app(
            self.health,
            ApiDeps(
                self.database, self.tickets, self.bus, self.webhooks, self.ticket_writer,
                LiveDeps(self.live, self.stations, self.hub, ZoneInfo(settings.timezone)),
            ),
        )  # fmt: skip
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.http_port = settings.http_port

    async def start(self) -> None:
        log.info("starting engine (settings from %s)", self.settings.source)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.database.open)
        try:
            await loop.run_in_executor(None, upgrade, self.settings.resolved_database_url)
        except SQLAlchemyError as exc:
            # The engine still answers calls; /healthz and the API report the database.
            log.error("database migration failed: %s", str(exc).splitlines()[0])
        await self.database.check_async()
        await loop.run_in_executor(None, lambda: self.flows.load(initial=True))
        # After the migration (workers claim from the job table), before calls can end.
        await self.transcription.start()
        await _listen("FastAGI", self.settings.agi_host, self.settings.agi_port, self.agi.start())
        for ami in self.amis:
            self._tasks.append(asyncio.create_task(ami.run(), name=f"ami-{ami.system_name}"))
        self._tasks.append(asyncio.create_task(self.webhooks.run(), name="webhooks"))
        self._tasks.append(asyncio.create_task(self._watch_overdue(), name="overdue"))
        self._tasks.append(asyncio.create_task(self.flows.watch(), name="flows"))
        self._tasks.append(asyncio.create_task(self.hub.run(), name="live-hub"))
        self._tasks.append(asyncio.create_task(self.call_log.run(), name="call-log"))
        self._tasks.append(asyncio.create_task(self.recordings.run(), name="recordings"))
        if self.settings.recording_recovery_interval > 0:
            self._tasks.append(asyncio.create_task(self.recovery.run(), name="recording-recovery"))
        retention = RetentionJob(
            self.database,
            RetentionPolicy.from_settings(self.settings),
            self.settings.recordings_dir,
            self.settings.retention_check_interval,
        )
        self._tasks.append(asyncio.create_task(retention.run(), name="retention"))
        self._runner = web.AppRunner(self.web, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await _listen("HTTP", self.settings.http_host, self.settings.http_port, site.start())
        addresses = self._runner.addresses
        if addresses:
            self.http_port = int(addresses[0][1])
        log.info("web server on http://%s:%s", self.settings.http_host, self.http_port)

    async def stop(self) -> None:
        log.info("stopping engine")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # Recordings whose Hangup already arrived are catalogued before the database closes.
        await self.recordings.drain(RECORDINGS_DRAIN_SECONDS)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.webhooks.close()
        await self.ticket_writer.close()
        if self._speech_pool is not None:
            self._speech_pool.shutdown(wait=False, cancel_futures=True)
        await self.agi.stop()
        # Workers finish the leg they are on (or are killed at the timeout, their job released);
        # jobs still pending stay in the database for the next start.
        await self.transcription.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.database.close)
        log.info("engine stopped")

    def _ami(self, system_name: str, host: str, port: int) -> AmiConnection:
        async def on_event(message: Message) -> None:
            await self._on_ami_event(system_name, message)

        # Every event the live state understands goes through on_event, in arrival order.
        handlers: dict[str, EventHandler] = dict.fromkeys(PARSERS, on_event)
        return AmiConnection(
            system_name=system_name,
            host=host,
            port=port,
            username=self.settings.ami_username,
            secret=ami_secret(self.settings),
            handlers=handlers,
            ping_interval=self.settings.ami_ping_interval,
            max_backoff=self.settings.ami_max_backoff,
            on_booted=self.monitor.resync,
        )

    async def _on_ami_event(self, system_name: str, message: Message) -> None:
        changes = self.monitor.handle(system_name, message)
        for change in changes:
            if isinstance(change, Resynced) and change.system_name == self.ami.system_name:
                await self._restore_agents(change.system_name)
            elif isinstance(change, CallerLeft) and change.abandoned and change.queue in CALLBACK_QUEUES:
                await self._list_callback(change)
        if str(message.get("Event", "")) == "Hangup":
            closed = recording_closed(system_name, message)
            if closed is not None:
                # Catalogued by its own task: hashing files must not hold up the next events.
                self.recordings.submit(closed)

    async def _restore_agents(self, system_name: str) -> None:
        """After a resync: agents the engine logged in but Asterisk forgot (it restarted)."""
        members = {a.interface: set(a.memberships) for a in self.live.agents(system_name)}
        try:
            restored = await self.stations.restore(members)
        except (AmiError, Conflict) as exc:
            log.error("AMI %s: agents not restored to their queues: %s", system_name, exc)
            return
        if restored:
            log.info("AMI %s: agents restored to their queues: %s", system_name, ", ".join(restored))

    async def _list_callback(self, left: CallerLeft) -> None:
        """An emergency caller hung up before an agent answered: someone must call back."""

        def work(session: Session) -> tuple[int, str, bool]:
            callback, created = add_callback(
                session, left.system_name, left.linkedid, ABANDONED, utcnow(),
                number=left.caller_number, queue=left.queue,
            )  # fmt: skip
            return callback.id, callback.number, created

        try:
            callback_id, number, created = await self.database.run(work)
        except InvalidInput:
            log.warning("call %s abandoned in %s with no number to call back", left.linkedid, left.queue)
            return
        except SQLAlchemyError as exc:
            log.error("call %s abandoned in %s; callback not listed: %s", left.linkedid, left.queue, exc)
            return
        if created:
            log.info(
                "call %s abandoned in %s after %.0f s: callback listed", left.linkedid, left.queue, left.wait
            )
            self.bus.publish(CallbackListed(callback_id, left.system_name, left.linkedid, number, left.queue))

    async def _catalogue_closed(self, closed: RecordingClosed) -> None:
        log.info("call %s ended; recording closed: %s", closed.linkedid, closed.mixed)
        # Hashing and header checks read whole files: on an executor thread, never on the loop,
        # and before the transaction so no database lock waits on the disk.
        loop = asyncio.get_running_loop()
        check = await loop.run_in_executor(None, check_recording, closed, self.settings.recordings_dir)
        recording_id: int | None = None
        announce = not check.ok
        queued: TranscriptionQueued | None = None
        try:
            done, queued = await self.database.run(lambda s: self._catalogue(s, closed, check))
            recording_id = done.recording_id
            announce = not check.ok and done.created  # a replayed Hangup was announced already
        except SQLAlchemyError as exc:
            log.error("call %s: recording not catalogued: %s", closed.linkedid, exc)
        if announce:
            log.error("call %s: recording %s failed: %s", closed.linkedid, closed.base, check.failure)
            failed = RecordingFailed(
                system_name=closed.system_name,
                linkedid=closed.linkedid,
                uniqueid=closed.uniqueid,
                base=closed.base,
                recording_id=recording_id,
                reason=check.failure,
            )
            self.bus.publish(failed)
        self.bus.publish(closed)
        if queued is not None:
            self.transcription.wake(len(queued.job_ids))
            self.bus.publish(queued)

    def _catalogue(
        self, session: Session, closed: RecordingClosed, check: RecordingCheck
    ) -> tuple[Catalogued, TranscriptionQueued | None]:
        """The recording's row and, in the same transaction, a transcription job per good leg:
        a recording is never catalogued without its jobs, nor the jobs queued twice."""
        done = catalogue(session, closed, check)
        if not done.created:
            return done, None
        legs = {f.kind: f.path.absolute() for f in check.files if f.kind in (CALLER, AGENT) and f.ok}
        if not legs:
            return done, None
        try:
            made = transcription_jobs.enqueue_legs(
                session,
                legs,
                engine=self.settings.transcribe_engine,
                recording_id=done.recording_id,
                call_id=done.call_id,
                language=self.settings.transcribe_language,
                now=utcnow(),
            )
        except transcription_jobs.JobError as exc:
            # Checked before anything is written (a path too long for the job table): the
            # recording is still catalogued; only its transcription is missing, and said so.
            log.error(
                "call %s: recording %s not queued for transcription: %s", closed.linkedid, closed.base, exc
            )
            return done, None
        return done, TranscriptionQueued(done.recording_id, done.call_id, tuple(job.id for job in made))

    def _on_transcription(self, event: WorkerEvent) -> None:
        """A worker's report (on the loop): transcripts and failures go on the bus."""
        if event.job_id is None:
            if event.kind == "fatal":
                log.error("transcription worker %s cannot work: %s", event.worker_id, event.detail)
            return
        if event.kind == "done":
            self.bus.publish(TranscriptReady(event.job_id, int(event.detail)))
        elif event.kind in ("failed", "retry"):
            log.warning("transcription job %s %s: %s", event.job_id, event.kind, event.detail)
            self.bus.publish(TranscriptionFailed(event.job_id, event.detail, final=event.kind == "failed"))

    async def _recognize(self, audio: Path, grammar: list[str], engine: str) -> str | None:
        """Which grammar word the caller said, decoded in a worker process (never on the loop)."""
        loop = asyncio.get_running_loop()
        if self._speech_pool is None:
            self._speech_pool = ProcessPoolExecutor(
                max_workers=self.settings.speech_workers, mp_context=multiprocessing.get_context("spawn")
            )
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._speech_pool, recognize_choice, engine, str(audio), grammar),
                self.settings.speech_timeout,
            )
        except (TranscriptionError, TimeoutError, BrokenProcessPool, OSError) as exc:
            log.warning("speech not recognised (%s): %s", engine, exc or type(exc).__name__)
            return None
        finally:
            # The caller's words are in the call recording already; this snippet is not kept.
            await loop.run_in_executor(None, lambda: audio.unlink(missing_ok=True))

    async def _watch_overdue(self) -> None:
        """Flag and escalate tickets past a deadline, once a minute (or as configured)."""
        while True:
            try:
                numbers = await self.database.run(self.tickets.flag_overdue)
            except SQLAlchemyError as exc:
                log.warning("overdue check failed: %s", str(exc).splitlines()[0])
                numbers = []
            for number in numbers:
                log.info("ticket %s is overdue; escalated", number)
                self.bus.publish(TicketChanged(number=number, kind="escalated"))
            await asyncio.sleep(self.settings.overdue_check_interval)

    async def health(self) -> dict[str, object]:
        await self.database.check_async()
        ami = self.ami.status
        fastagi = {
            "listening": self.agi.listening,
            "address": f"{self.settings.agi_host}:{self.agi.bound_port}",
            "active_sessions": self.agi.active_sessions,
            "sessions_total": self.agi.sessions_total,
        }
        ok = ami.state.value == "connected" and self.agi.listening and self.database.ready
        transcription: dict[str, object] = {
            "engine": self.settings.transcribe_engine,
            "workers": self.settings.transcription_workers,
            "workers_alive": sum(p.is_alive() for p in self.transcription.processes()),
        }
        if self.database.ready:
            try:
                transcription["jobs"] = await self.database.run(transcription_jobs.counts)
            except SQLAlchemyError as exc:
                transcription["error"] = str(exc).splitlines()[0]
        return {
            "status": "ok" if ok else "degraded",
            "ivr": {"flows": sorted(self.flows.current()), "error": self.flows.last_error or None},
            "ami": ami.as_dict(),
            # Watched servers: reported, but only the engine's own server decides "ok".
            "ami_others": [other.status.as_dict() for other in self.amis[1:]],
            "fastagi": fastagi,
            "database": self.database.health(),
            "recordings": {
                "backlog": self.recordings.backlog,
                "catalogued": self.recordings.catalogued_total,
                # Found on disk without their Hangup having been seen (recording/recovery.py).
                "recovered": self.recovery.recovered_total,
            },
            # Not part of "ok": calls are answered and recorded without transcription.
            "transcription": transcription,
        }


async def _listen(what: str, host: str, port: int, starting: object) -> None:
    try:
        await starting  # type: ignore[misc]
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ConfigError(f"{what} cannot listen on {host}:{port}: {reason}") from None


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the engine until ``stop`` is set or SIGINT/SIGTERM arrives."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    engine = Engine(settings)
    try:
        await engine.start()
        await stop.wait()
    finally:
        await engine.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
