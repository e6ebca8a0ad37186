"""The Google discovery document that describes fleet's API v1 (fleet serves schema/v1.json at
``/fleet/v1/discovery``), so client generators that worked against fleet work against Flotilla.

The machine-readable parts (ids, schemas, resources, methods, paths, parameters) are fleet's. fleet ships
the literal placeholder ``$ENDPOINT`` in ``rootUrl``/``baseUrl`` and tells clients to fill it in; we fill
it in from the request, so a generator pointed at a running fleetd gets a usable base URL. The Unit schema
also lists our ``unschedulableReason`` field.
"""

from __future__ import annotations

from typing import Any

__all__ = ["discovery_document"]

_STATES = ["inactive", "loaded", "launched"]


def _string(**extra: Any) -> dict[str, Any]:
    return {"type": "string", **extra}


def _object(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"id": name, "type": "object", "properties": properties}


def _page(name: str, field: str, item: str) -> dict[str, Any]:
    return _object(name, {field: {"type": "array", "items": {"$ref": item}}, "nextPageToken": _string()})


def _schemas() -> dict[str, Any]:
    return {
        "Machine": _object(
            "Machine",
            {
                "id": _string(),
                "primaryIP": _string(),
                "metadata": {"type": "object", "properties": {}, "additionalProperties": _string()},
            },
        ),
        "MachinePage": _page("MachinePage", "machines", "Machine"),
        "UnitOption": _object("UnitOption", {"section": _string(), "name": _string(), "value": _string()}),
        "Unit": _object(
            "Unit",
            {
                "name": _string(),
                "options": {"type": "array", "items": {"$ref": "UnitOption"}},
                "desiredState": _string(enum=_STATES),
                "currentState": _string(enum=_STATES),
                "machineID": _string(required=True),
                "unschedulableReason": _string(),
            },
        ),
        "UnitPage": _page("UnitPage", "units", "Unit"),
        "UnitState": _object(
            "UnitState",
            {
                "name": _string(),
                "hash": _string(),
                "machineID": _string(),
                "systemdLoadState": _string(),
                "systemdActiveState": _string(),
                "systemdSubState": _string(),
            },
        ),
        "UnitStatePage": _page("UnitStatePage", "states", "UnitState"),
    }


def _method(
    method_id: str,
    description: str,
    http_method: str,
    path: str,
    *,
    query: tuple[str, ...] = (),
    unit_name: bool = False,
    response: str | None = None,
    request: str | None = None,
) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    if unit_name:
        parameters["unitName"] = _string(location="path", required=True)
    for name in query:
        parameters[name] = _string(location="query")
    body: dict[str, Any] = {
        "id": method_id,
        "description": description,
        "httpMethod": http_method,
        "path": path,
        "parameters": parameters,
    }
    if unit_name:
        body["parameterOrder"] = ["unitName"]
    if request:
        body["request"] = {"$ref": request}
    if response:
        body["response"] = {"$ref": response}
    return body


def _resources() -> dict[str, Any]:
    page = ("nextPageToken",)
    return {
        "Machines": {
            "methods": {
                "List": _method("fleet.Machine.List", "A page of Machines.", "GET", "machines",
                                query=page, response="MachinePage"),
            }
        },
        "Units": {
            "methods": {
                "List": _method("fleet.Unit.List", "A page of Units.", "GET", "units",
                                query=page, response="UnitPage"),
                "Get": _method("fleet.Unit.Get", "One Unit.", "GET", "units/{unitName}",
                               unit_name=True, response="Unit"),
                "Delete": _method("fleet.Unit.Delete", "Destroy a Unit.", "DELETE", "units/{unitName}",
                                  unit_name=True),
                "Set": _method("fleet.Unit.Set", "Create a Unit or change its desired state.", "PUT",
                               "units/{unitName}", unit_name=True, request="Unit"),
            }
        },
        "UnitState": {
            "methods": {
                "Get": _method("fleet.UnitState.Get", "The UnitState of one Unit.", "GET",
                               "state/{unitName}", unit_name=True, response="UnitState"),
                "List": _method("fleet.UnitState.List", "A page of UnitStates.", "GET", "state",
                                query=("nextPageToken", "unitName", "machineID"), response="UnitStatePage"),
            }
        },
    }  # fmt: skip


def discovery_document(endpoint: str) -> dict[str, Any]:
    """The discovery document with ``endpoint`` (``http://host:port``, no trailing slash) as its root."""
    return {
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": "fleet:v1",
        "name": "schema",
        "version": "v1",
        "title": "fleet API",
        "description": "",
        "documentationLink": "http://github.com/coreos/fleet",
        "protocol": "rest",
        "icons": {"x16": "", "x32": ""},
        "labels": [],
        "baseUrl": f"{endpoint}/fleet/v1/",
        "basePath": "/fleet/v1/",
        "rootUrl": f"{endpoint}/",
        "servicePath": "fleet/v1/",
        "batchPath": "batch",
        "parameters": {},
        "auth": {},
        "schemas": _schemas(),
        "resources": _resources(),
    }
