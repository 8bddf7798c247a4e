"""Rendering the pages: the Jinja2 environment, the language of a request and local times."""

from __future__ import annotations

from datetime import datetime, tzinfo
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from callcenter.web import i18n

DEFAULT_TIMEZONE = "Asia/Jakarta"
LANG_COOKIE_AGE = 365 * 24 * 3600
STATIC_PREFIX = "/static/pages"

JINJA: web.AppKey[jinja2.Environment] = web.AppKey("pages_jinja", jinja2.Environment)
TIMEZONE: web.AppKey[tzinfo] = web.AppKey("pages_timezone", tzinfo)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("callcenter.web.pages", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = STATIC_PREFIX
    return env


def zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def parse_time(value: object) -> datetime | None:
    """An ISO time from the API's JSON shape, or None."""
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value)


class Page:
    """What every template gets: the language, ``t`` for its words, and local times."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.asked = i18n.normalize(request.query.get("lang"))
        self.lang = i18n.choose(
            request.query.get("lang"),
            request.cookies.get(i18n.LANG_COOKIE),
            request.headers.get("Accept-Language"),
        )
        self.tz = request.app[TIMEZONE]

    def t(self, key: str) -> str:
        return i18n.t(key, self.lang)

    def label(self, prefix: str, value: object) -> str:
        return i18n.label(prefix, value if isinstance(value, str) else None, self.lang)

    def local(self, value: object) -> str:
        """``2024-05-01 14:30 WIB`` in the command center's time zone; a dash when empty."""
        when = value if isinstance(value, datetime) else parse_time(value)
        if when is None:
            return self.t("app.none")
        local = when.astimezone(self.tz)
        return f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".rstrip()

    def lang_url(self, lang: str) -> str:
        """This page in another language (the other query parameters are kept)."""
        query = [(k, v) for k, v in self.request.query.items() if k != "lang"]
        query.append(("lang", lang))
        return f"{quote(self.request.path)}?{urlencode(query)}"

    def languages(self) -> list[dict[str, object]]:
        return [
            {
                "code": code,
                "name": i18n.LANG_NAMES[code],
                "url": self.lang_url(code),
                "current": code == self.lang,
            }
            for code in i18n.LANGS
        ]

    def finish(self, response: web.StreamResponse) -> web.StreamResponse:
        """Remember a language picked with ``?lang=`` in the cookie."""
        if self.asked is not None and self.request.cookies.get(i18n.LANG_COOKIE) != self.asked:
            response.set_cookie(
                i18n.LANG_COOKIE, self.asked, max_age=LANG_COOKIE_AGE, path="/", samesite="Lax",
                httponly=True, secure=self.request.secure,
            )  # fmt: skip
        return response

    def render(self, template: str, status: int = 200, **context: object) -> web.StreamResponse:
        env = self.request.app[JINJA]
        html = env.get_template(template).render(page=self, lang=self.lang, t=self.t, **context)
        response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
        response.headers["Content-Language"] = self.lang
        return self.finish(response)

    def redirect(self, location: str) -> web.StreamResponse:
        response = web.Response(status=302, headers={"Location": location})
        return self.finish(response)
