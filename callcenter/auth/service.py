"""Users, logins, API tokens and web sessions. Synchronous; run inside ``Database.run``."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from callcenter.auth.actor import Actor
from callcenter.auth.models import ApiToken, User, WebSession
from callcenter.auth.passwords import (
    check_strength,
    dummy_hash,
    hash_password,
    token_digest,
    verify_password,
)
from callcenter.auth.roles import Role
from callcenter.calls.stations import SERVICE_QUEUES, STATION_RE
from callcenter.dispatch.models import OPD, Agency
from callcenter.errors import InvalidInput
from callcenter.storage.base import utcnow

SESSION_LIFETIME = timedelta(hours=12)
TOKEN_PREFIX = "cc_"  # noqa: S105 - a prefix, not a secret
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


def actor_of(user: User) -> Actor:
    return Actor(user_id=user.id, username=user.username, role=Role(user.role), agency_id=user.agency_id)


def integration_actor(source: str) -> Actor:
    """A peer instance authenticated by its signature rather than by a user account."""
    return Actor(user_id=None, username=f"instance:{source}", role=Role.INTEGRATION)


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    agency_code: str | None = None,
    display_name: str = "",
    station: str = "",
    skills: Sequence[str] = (),
) -> User:
    username = username.strip().lower()
    if not username or len(username) > 64 or not set(username) <= USERNAME_CHARS:
        raise InvalidInput("username", "use 1-64 of a-z, 0-9, '.', '_', '-'")
    try:
        parsed = Role(role)
    except ValueError:
        raise InvalidInput("role", f"must be one of {', '.join(r.value for r in Role)}") from None
    try:
        check_strength(password)
    except ValueError as exc:
        raise InvalidInput("password", str(exc)) from None
    agency_id = None
    if parsed is Role.OPD_OPERATOR:
        if not agency_code:
            raise InvalidInput("agency", "an OPD operator must belong to an agency")
        agency = session.scalar(select(Agency).where(Agency.code == agency_code, Agency.kind == OPD))
        if agency is None:
            raise InvalidInput("agency", f"unknown OPD {agency_code!r}")
        agency_id = agency.id
    elif agency_code:
        raise InvalidInput("agency", "only OPD operators belong to an agency")
    if station and not STATION_RE.match(station):
        raise InvalidInput("station", "a station is a SIP endpoint name: 1-40 of a-z, 0-9, '_', '-'")
    unknown = [q for q in skills if q not in SERVICE_QUEUES]
    if unknown:
        raise InvalidInput("skills", f"unknown queues {unknown}; known: {', '.join(SERVICE_QUEUES)}")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise InvalidInput("username", f"user {username!r} already exists")
    user = User(
        username=username,
        display_name=display_name or username,
        role=parsed.value,
        agency_id=agency_id,
        password_hash=hash_password(password),
        station=station,
        skills=list(dict.fromkeys(skills)),
    )
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None or not user.active:
        verify_password(password, dummy_hash())  # same cost as a real check
        return None
    return user if verify_password(password, user.password_hash) else None


def create_token(session: Session, user: User, name: str) -> str:
    """A new API token for ``user``; the plain token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name[:100], token_hash=token_digest(token)))
    return token


def actor_for_token(session: Session, token: str) -> Actor | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.execute(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == token_digest(token), ApiToken.revoked.is_(False), User.active.is_(True))
    ).scalar_one_or_none()
    return actor_of(row) if row else None


def open_session(session: Session, user: User, clock: Callable[[], datetime] = utcnow) -> str:
    token = secrets.token_urlsafe(32)
    now = clock()
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    session.add(
        WebSession(token_hash=token_digest(token), user_id=user.id, expires_at=now + SESSION_LIFETIME)
    )
    return token


def actor_for_session(session: Session, token: str, clock: Callable[[], datetime] = utcnow) -> Actor | None:
    if len(token) > 200:
        return None
    user = session.execute(
        select(User)
        .join(WebSession, WebSession.user_id == User.id)
        .where(
            WebSession.token_hash == token_digest(token),
            WebSession.expires_at > clock(),
            User.active.is_(True),
        )
    ).scalar_one_or_none()
    return actor_of(user) if user else None


def close_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == token_digest(token)))
