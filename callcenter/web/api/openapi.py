"""``/api/v1/openapi.json``, built from the same route table that registers the routes."""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import BaseModel

from callcenter import __version__
from callcenter.web.api.framework import Route

REF = "#/components/schemas/{model}"

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}


def _schema(model: type[BaseModel], components: dict[str, Any], mode: str = "validation") -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(by_alias=True)
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
    }


@functools.cache
def _document(routes: tuple[Route, ...]) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "operationId": route.handler.__name__,
            "summary": route.summary,
            "tags": [route.tag],
            "responses": {
                str(route.ok_status): {
                    "description": "OK",
                    "content": {"text/csv" if route.produces_csv else "application/json": {}},
                },
                "400": _error("malformed request"),
                "422": _error("invalid input"),
            },
        }
        if route.produces_csv:
            operation["responses"][str(route.ok_status)]["content"]["application/json"] = {}
        if route.produces_audio:
            operation["responses"][str(route.ok_status)]["content"] = {"audio/wav": {}}
            operation["responses"]["206"] = {
                "description": "the requested byte range",
                "content": {"audio/wav": {}},
            }
            operation["responses"]["410"] = _error("deleted by retention")
            operation["responses"]["416"] = {"description": "range not satisfiable"}
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
            for name in route.path_params
        ]
        if route.query is not None:
            parameters += _query_parameters(route.query)
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(route.body, components)}},
            }
        if route.auth == "token":
            operation["security"] = [{"bearer": []}, {"session": []}]
            operation["responses"]["401"] = _error("not logged in")
            operation["responses"]["403"] = _error("role not allowed")
        elif route.auth == "signature":
            operation["description"] = (
                "Signed by the sending instance: X-Callcenter-Source, X-Callcenter-Timestamp, "
                "X-Callcenter-Signature (sha256=HMAC of 'timestamp.body' with the shared secret), "
                "Idempotency-Key."
            )
            operation["responses"]["401"] = _error("missing or bad signature")
        for status, description in route.responses:
            operation["responses"][str(status)] = _error(description)
        if route.path_params:
            operation["responses"]["404"] = _error("no such object, or not visible to you")
        if route.method in ("POST", "PUT") and route.path.startswith("/api/v1/tickets/"):
            operation["responses"]["409"] = _error("not allowed in the ticket's current state")
        path = re.sub(r"\{(\w+)\}", r"{\1}", route.path)
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "callcenter API",
            "version": __version__,
            "description": "Tickets, OPD dispatch and reports of the 112 / complaint-hotline command center.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "cc_session"},
            },
        },
    }


def document(routes: list[Route]) -> dict[str, Any]:
    return _document(tuple(routes))
