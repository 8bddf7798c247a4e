"""The ``callcenter`` command.

Errors an operator can fix (a bad setting, a port in use, a missing tool) print one line
starting with ``callcenter: error:`` and exit non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from callcenter import __version__
from callcenter.asterisk.process import AsteriskError, AsteriskProcess
from callcenter.asterisk.provision import ProvisionError, locate
from callcenter.asterisk.render import InstanceDirs, render
from callcenter.audit.log import head as audit_head
from callcenter.audit.log import verify as audit_verify
from callcenter.auth import service as auth
from callcenter.auth.models import User
from callcenter.credentials import load_or_create, sip_accounts
from callcenter.dispatch.seed import seed_directory
from callcenter.errors import InvalidInput
from callcenter.ivr.flow import LANGUAGES
from callcenter.ivr.graph import GraphError, render_svg, to_dot
from callcenter.ivr.loader import FlowError, display_path, flow_files, load_flows
from callcenter.ivr.prompts import ensure_prompts, flow_prompts
from callcenter.logs import setup_logging
from callcenter.recording.catalogue import catalogued_files
from callcenter.recording.integrity import verify_files
from callcenter.settings import ConfigError, Settings, load_settings
from callcenter.storage.database import Database
from callcenter.storage.migrate import current, upgrade

log = logging.getLogger("callcenter")

OPERATOR_ERRORS = (ConfigError, ProvisionError, AsteriskError, InvalidInput, SQLAlchemyError, FlowError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter", description=__doc__)
    parser.add_argument("--version", action="version", version=f"callcenter {__version__}")
    parser.add_argument("-c", "--config", help="settings file (TOML); default ./callcenter.toml if present")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("serve", help="run the engine (AMI client, FastAGI server, web server)")
    workers = sub.add_parser(
        "workers",
        help="run only transcription workers against the configured database (a transcription node)",
    )
    workers.add_argument(
        "--count", type=_positive, metavar="N", help="worker processes (default: transcription_workers)"
    )
    sub.add_parser("run", help="start Asterisk and the engine together; Ctrl-C stops both")

    ast = sub.add_parser("asterisk", help="provision and control the local Asterisk 22")
    ast_sub = ast.add_subparsers(dest="action", required=True)
    ast_sub.add_parser("install", help="only obtain Asterisk 22 (host binary or Debian sid root)")
    ast_sub.add_parser("up", help="provision, configure and start Asterisk (idempotent)")
    ast_sub.add_parser("down", help="stop Asterisk cleanly")
    ast_sub.add_parser(
        "render", help="only write the configuration and prompts (for an Asterisk run elsewhere)"
    )
    status = ast_sub.add_parser("status", help="is Asterisk running and fully booted")
    status.add_argument("--json", action="store_true")
    accounts = ast_sub.add_parser("accounts", help="SIP accounts of the local profile")
    accounts.add_argument("--json", action="store_true")

    db = sub.add_parser("db", help="the database")
    db_sub = db.add_subparsers(dest="action", required=True)
    db_sub.add_parser("upgrade", help="apply migrations (also done when the engine starts)")
    db_sub.add_parser("seed", help="add the typical OPDs and complaint categories that are missing")

    users = sub.add_parser("users", help="users of the web console and API")
    users_sub = users.add_subparsers(dest="action", required=True)
    add = users_sub.add_parser("add", help="add a user; the password is read from stdin")
    add.add_argument("name")
    add.add_argument(
        "--role", required=True, help="agent, supervisor, auditor, admin, opd-operator, integration"
    )
    add.add_argument("--agency", help="the OPD of an opd-operator (its code)")
    add.add_argument("--display-name", default="")
    add.add_argument("--station", default="", help="an agent's SIP station, e.g. agent1")
    add.add_argument(
        "--skills", default="", help="queues the agent answers, comma-separated, e.g. q112,hotline"
    )
    token = users_sub.add_parser("token", help="create an API token for a user (printed once)")
    token.add_argument("name")
    token.add_argument("--label", default="cli", help="what the token is for")

    prompts = sub.add_parser("prompts", help="IVR prompts")
    prompts_sub = prompts.add_subparsers(dest="action", required=True)
    prompts_sub.add_parser("build", help="generate missing prompts from the flows' texts (espeak-ng)")

    flows = sub.add_parser("flows", help="IVR flows (ivr_flows/*.yaml): check them, draw them")
    flows_sub = flows.add_subparsers(dest="action", required=True)
    check = flows_sub.add_parser("check", help="check flow files; prints every problem with its line")
    check.add_argument(
        "paths", nargs="*", metavar="PATH", help="flow files or folders (default: the flows_dir setting)"
    )
    graph = flows_sub.add_parser("graph", help="draw a flow of flows_dir as SVG (needs Graphviz)")
    graph.add_argument("flow", metavar="FLOW", help="the flow's name, e.g. hotline")
    graph.add_argument("-o", "--output", required=True, metavar="OUT.svg", help="the SVG file to write")
    graph.add_argument("--lang", choices=LANGUAGES, help="language of the prompt texts shown")

    recordings = sub.add_parser("recordings", help="call recordings")
    recordings_sub = recordings.add_subparsers(dest="action", required=True)
    rec_verify = recordings_sub.add_parser(
        "verify", help="re-hash every catalogued recording file; exit 1 on a mismatch or a missing file"
    )
    rec_verify.add_argument("--json", action="store_true")

    audit = sub.add_parser("audit", help="the tamper-evident audit log")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    audit_verify = audit_sub.add_parser(
        "verify", help="check the audit log's hash chain; exit 1 on an altered, missing or moved entry"
    )
    audit_verify.add_argument("--json", action="store_true")

    transcribe = sub.add_parser(
        "transcribe",
        help="transcribe audio files: transcripts on stdout, progress and a summary on stderr; "
        "exit 1 if any file failed",
    )
    transcribe.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, .ulaw, .gsm, MP3...)")
    transcribe.add_argument(
        "--engine", choices=("vosk", "whisper"), help="default: the transcribe_engine setting"
    )
    transcribe.add_argument(
        "--model",
        metavar="DIR",
        help="model folder (default: the vosk_model_dir/whisper_model_dir setting, else the packaged model)",
    )
    transcribe.add_argument(
        "--language", help="language code, e.g. id (default: the transcribe_language setting)"
    )
    transcribe.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="worker processes (default: one per CPU, at most one per file)",
    )
    transcribe.add_argument(
        "--json", action="store_true", help="one JSON object per file and line, with timed words"
    )

    phone = sub.add_parser("phone", help="terminal softphone for an agent station")
    phone.add_argument("--station", help="an account of the local profile, e.g. agent1")
    phone.add_argument("--username")
    phone.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    phone.add_argument("--host", help="SIP server (default: the local profile's)")
    phone.add_argument("--port", type=int)
    phone.add_argument("--auto-answer", action="store_true")
    phone.add_argument("--record-dir", help="record every call into this folder")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 64, not {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        setup_logging(settings.log_level)
        handler = COMMANDS[args.command]
        return handler(settings, args)
    except OPERATOR_ERRORS as exc:
        # A flow file can have several problems: each is its own line (file:line: ...).
        lines = str(exc).splitlines() or [type(exc).__name__]
        for line in lines if isinstance(exc, FlowError) else lines[:1]:
            print(f"callcenter: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def cmd_serve(settings: Settings, _args: argparse.Namespace) -> int:
    from callcenter.app import serve

    asyncio.run(serve(settings))
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from callcenter.app import serve

    process = _asterisk_up(settings)
    try:
        _print_accounts(settings, as_json=False)
        web = f"http://{settings.http_host}:{settings.http_port}"
        print(f"Web: {web}/healthz   API: {web}/api/v1/openapi.json   OPD queue: {web}/opd")
        print(f"Agent console: {web}/console   Wallboard: {web}/wallboard")
        print("Ctrl-C stops everything.")
        sys.stdout.flush()
        asyncio.run(serve(settings))
    finally:
        process.down()
    return 0


def _build_prompts(settings: Settings, owner: tuple[int, int] | None) -> list[Path]:
    """Prompts of the flows in flows_dir; broken flows are reported, not fatal, here."""
    try:
        flows = load_flows([settings.flows_dir])
    except FlowError as exc:
        log.error("IVR flows have problems; prompts not built:\n%s", exc)
        return []
    return ensure_prompts(InstanceDirs(settings.asterisk_dir).sounds, flow_prompts(flows.values()), owner)


def _asterisk_up(settings: Settings) -> AsteriskProcess:
    install = locate(settings)
    process = AsteriskProcess(settings, install)
    _build_prompts(settings, install.uid_gid)
    status = process.up()
    log.info("Asterisk up: %s, pid %s", status.version, status.pid)
    return process


def cmd_asterisk(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "accounts":
        _print_accounts(settings, as_json=args.json)
        return 0
    if args.action == "install":
        print(f"Asterisk 22: {locate(settings).description}")
        return 0
    if args.action == "render":
        # No Asterisk here (a container deployment): write config and prompts for the one that
        # runs beside us, readable by the user we run as.
        dirs = InstanceDirs(settings.asterisk_dir)
        written = render(settings, load_or_create(settings), dirs)
        _build_prompts(settings, None)
        print(f"wrote {len(written)} configuration files to {dirs.etc}")
        return 0
    if args.action == "up":
        process = _asterisk_up(settings)
        print(f"Asterisk running (pid {process.pid()}); instance {process.dirs.root}")
        return 0
    process = AsteriskProcess(settings, locate(settings, build=False))
    if args.action == "down":
        print("Asterisk stopped" if process.down() else "Asterisk was not running")
        return 0
    status = process.status()
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
    else:
        state = "running" if status.running else "stopped"
        booted = ", fully booted" if status.booted else ""
        print(f"Asterisk {state}{booted}; {status.version or ''} ({status.install})".strip())
    return 0 if status.running else 3


def _print_accounts(settings: Settings, as_json: bool) -> None:
    accounts = sip_accounts(settings, load_or_create(settings))
    if as_json:
        print(json.dumps([a.as_dict() for a in accounts], indent=2))
        return
    print(f"SIP accounts (server {settings.sip_host}:{settings.sip_port}, UDP):")
    for account in accounts:
        print(f"  {account.role:8} {account.username:12} password {account.password}")
    print(
        f"Citizen lines may dial {settings.emergency_number} (emergency) "
        f"and {settings.hotline_number} (hotline)."
    )


def cmd_phone(settings: Settings, args: argparse.Namespace) -> int:
    from callcenter.sip.softphone import run_softphone

    if args.station:
        accounts = {a.username: a for a in sip_accounts(settings, load_or_create(settings))}
        if args.station not in accounts:
            raise ConfigError(f"no station {args.station!r} in the local profile ({', '.join(accounts)})")
        username, password = args.station, accounts[args.station].password
    elif args.username and args.password_stdin:
        username, password = args.username, sys.stdin.readline().rstrip("\n")
    else:
        raise ConfigError("give --station NAME, or --username NAME with --password-stdin")
    code: int = asyncio.run(
        run_softphone(
            username=username,
            password=password,
            host=args.host or settings.sip_host,
            port=args.port or settings.sip_port,
            auto_answer=args.auto_answer,
            record_dir=Path(args.record_dir) if args.record_dir else None,
        )
    )
    return code


def _database(settings: Settings) -> Database:
    database = Database(settings.resolved_database_url)
    database.open()  # creates the SQLite folder
    upgrade(settings.resolved_database_url)
    return database


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    database = _database(settings)
    try:
        if args.action == "seed":
            with database.transaction() as session, session.begin():
                agencies, categories = seed_directory(session)
            print(f"added {agencies} agencies and {categories} categories")
        else:
            print(f"database {database.safe_url} is at revision {current(settings.resolved_database_url)}")
    finally:
        database.close()
    return 0


def cmd_users(settings: Settings, args: argparse.Namespace) -> int:
    database = _database(settings)
    try:
        with database.transaction() as session, session.begin():
            if args.action == "add":
                password = sys.stdin.readline().rstrip("\r\n")
                skills = [q.strip() for q in args.skills.split(",") if q.strip()]
                user = auth.create_user(
                    session, args.name, password, args.role, args.agency, args.display_name,
                    station=args.station, skills=skills,
                )  # fmt: skip
                print(f"user {user.username} ({user.role}) added")
            else:
                found = session.scalar(select(User).where(User.username == args.name.lower()))
                if found is None:
                    raise InvalidInput("name", f"no user {args.name!r}")
                print(auth.create_token(session, found, args.label))
    finally:
        database.close()
    return 0


def cmd_prompts(settings: Settings, args: argparse.Namespace) -> int:
    flows = load_flows([settings.flows_dir])  # problems are an error here: exit 2 with them
    sounds = InstanceDirs(settings.asterisk_dir).sounds
    try:
        owner = locate(settings, build=False).uid_gid
    except ProvisionError:
        owner = None  # no local Asterisk (yet): files stay ours
    written = ensure_prompts(sounds, flow_prompts(flows.values()), owner)
    print(f"{len(written)} prompt(s) generated in {sounds / 'callcenter'}")
    return 0


def cmd_flows(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "check":
        return _check_flows(settings, [Path(p) for p in args.paths])
    return _graph_flow(settings, args.flow, Path(args.output), args.lang)


def _check_flows(settings: Settings, paths: list[Path]) -> int:
    """Every problem is printed (by main, one line each, exit 2); else one ok line."""
    paths = paths or [settings.flows_dir]
    if not flow_files(paths):
        raise ConfigError(f"no flow files (*.yaml) in {', '.join(display_path(p) for p in paths)}")
    flows = load_flows(paths)
    count = f"{len(flows)} flow" + ("" if len(flows) == 1 else "s")
    print(f"ok: {count} ({', '.join(sorted(flows))})")
    return 0


def _graph_flow(settings: Settings, name: str, out: Path, lang: str | None) -> int:
    flows = load_flows([settings.flows_dir])
    if name not in flows:
        where = display_path(settings.flows_dir)
        raise ConfigError(f"no flow {name!r} in {where} (flows: {', '.join(sorted(flows)) or 'none'})")
    try:
        render_svg(to_dot(flows[name], lang), out)
    except GraphError as exc:
        print(f"callcenter: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: flow {name}, {len(flows[name].nodes)} nodes")
    return 0


def cmd_recordings(settings: Settings, args: argparse.Namespace) -> int:
    """Problems one per line and a summary (or one JSON document); exit 1 if any problem."""
    database = _database(settings)
    try:
        # Only the list is read in the transaction; hashing hours of audio holds no database lock.
        with database.transaction() as session, session.begin():
            files, report = catalogued_files(session)
    finally:
        database.close()
    report = verify_files(files, report)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for problem in report.problems:
            print(problem.line())
        print(report.summary())
    return 1 if report.problems else 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    """Problems one per line and a summary with the chain's head (or JSON); exit 1 if any."""
    database = _database(settings)
    try:
        with database.transaction() as session, session.begin():
            problems = audit_verify(session)
            last = audit_head(session)
    finally:
        database.close()
    if args.json:
        document = {
            "ok": not problems,
            "entries": last.entries,
            "head": {"seq": last.seq, "hash": last.hash},
            "problems": [p.as_dict() for p in problems],
        }
        print(json.dumps(document, indent=2))
    else:
        for problem in problems:
            print(problem.line())
        verdict = f"FAILED: {len(problems)} problem(s)" if problems else "ok: the chain is intact"
        print(f"{verdict}; {last.entries} entries, head {last.seq} {last.hash}")
    return 1 if problems else 0


def cmd_workers(settings: Settings, args: argparse.Namespace) -> int:
    """Transcription workers and nothing else, until SIGINT/SIGTERM: a node that takes jobs
    from the shared database (FOR UPDATE SKIP LOCKED on PostgreSQL) next to the engine's own."""
    from callcenter.transcription.worker import run_workers

    count = args.count if args.count is not None else settings.transcription_workers
    if count < 1:
        raise ConfigError("no workers to run: give --count N or set transcription_workers")
    asyncio.run(run_workers(settings, count))
    return 0


def cmd_transcribe(settings: Settings, args: argparse.Namespace) -> int:
    """Transcripts on stdout, progress and a summary on stderr (docs/SPEECH.md); exit 1 if any
    file failed, 2 if the engine or model cannot be used."""
    from callcenter.transcription import TranscriptionError
    from callcenter.transcription.batch import run
    from callcenter.transcription.worker import WorkerConfig

    changes = {"transcribe_engine": args.engine, "transcribe_language": args.language}
    try:
        settings = settings.replace(**{k: v for k, v in changes.items() if v is not None})
    except ConfigError:
        if args.language is None:
            raise
        raise ConfigError(f"--language must be a language code like 'id', not {args.language!r}") from None
    config = WorkerConfig.from_settings(settings)
    if args.model is not None:
        config = dataclasses.replace(config, model_path=str(Path(args.model).expanduser()))
    try:
        return run(
            args.files, config, workers=args.workers, as_json=args.json, out=sys.stdout, err=sys.stderr
        )
    except TranscriptionError as exc:
        print(
            f"callcenter: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            file=sys.stderr,
        )
        return 2


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "flows": cmd_flows,
    "prompts": cmd_prompts,
    "db": cmd_db,
    "users": cmd_users,
    "serve": cmd_serve,
    "run": cmd_run,
    "asterisk": cmd_asterisk,
    "phone": cmd_phone,
    "recordings": cmd_recordings,
    "audit": cmd_audit,
    "transcribe": cmd_transcribe,
    "workers": cmd_workers,
}


if __name__ == "__main__":
    sys.exit(main())
