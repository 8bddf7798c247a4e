"""The directory an administrator keeps: agencies (OPD and outside instances), categories and
the routing rules between them. Synchronous; run inside ``Database.run``."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.dispatch.models import EXTERNAL, OPD, Agency, Category, RoutingRule
from callcenter.errors import InvalidInput, NotFound

CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")


def _code(value: str) -> str:
    code = value.strip().upper()
    if not CODE_RE.match(code):
        raise InvalidInput("code", "use 1-32 of A-Z, 0-9, '_' and '-'")
    return code


def list_agencies(session: Session) -> list[Agency]:
    return list(session.scalars(select(Agency).order_by(Agency.code)))


def create_agency(
    session: Session, code: str, name: str, kind: str = OPD, webhook_url: str | None = None
) -> tuple[Agency, str | None]:
    """Returns the agency and, for an outside instance, its new webhook secret (shown once)."""
    code = _code(code)
    if kind not in (OPD, EXTERNAL):
        raise InvalidInput("kind", f"must be '{OPD}' or '{EXTERNAL}'")
    if kind == EXTERNAL and not webhook_url:
        raise InvalidInput("webhook_url", "an outside instance needs a webhook URL")
    if webhook_url and not webhook_url.startswith(("https://", "http://")):
        raise InvalidInput("webhook_url", "must be an http(s) URL")
    if session.scalar(select(Agency.id).where(Agency.code == code)) is not None:
        raise InvalidInput("code", f"agency {code} already exists")
    secret = secrets.token_urlsafe(32) if kind == EXTERNAL else None
    agency = Agency(code=code, name=name.strip(), kind=kind, webhook_url=webhook_url, webhook_secret=secret)
    session.add(agency)
    session.flush()
    return agency, secret


def list_categories(session: Session) -> list[tuple[Category, Agency | None]]:
    rows = session.execute(
        select(Category, Agency)
        .outerjoin(RoutingRule, RoutingRule.category_id == Category.id)
        .outerjoin(Agency, Agency.id == RoutingRule.agency_id)
        .order_by(Category.code)
    )
    return [(c, a) for c, a in rows]


def create_category(
    session: Session, code: str, name_id: str, name_en: str = "", agency_code: str | None = None
) -> Category:
    code = _code(code)
    if session.scalar(select(Category.id).where(Category.code == code)) is not None:
        raise InvalidInput("code", f"category {code} already exists")
    category = Category(code=code, name_id=name_id.strip(), name_en=name_en.strip())
    session.add(category)
    session.flush()
    if agency_code:
        set_route(session, code, agency_code)
    return category


def set_route(session: Session, category_code: str, agency_code: str) -> RoutingRule:
    category = session.scalar(select(Category).where(Category.code == category_code))
    if category is None:
        raise NotFound(f"category {category_code} not found")
    agency = session.scalar(select(Agency).where(Agency.code == agency_code, Agency.kind == OPD))
    if agency is None:
        raise InvalidInput("agency", f"unknown OPD {agency_code!r}")
    rule = session.scalar(select(RoutingRule).where(RoutingRule.category_id == category.id))
    if rule is None:
        rule = RoutingRule(category_id=category.id, agency_id=agency.id)
        session.add(rule)
    else:
        rule.agency_id = agency.id
    session.flush()
    return rule
