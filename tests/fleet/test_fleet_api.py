"""fleet's HTTP API v1 (api/*.go, Documentation/api-v1.md) served by ``flotilla.fleet.api`` over a registry
on a real ``flotilla etcd`` member: units, status codes and fleet's messages, the Unit JSON, pagination
tokens byte for byte, and our unschedulableReason extension. Machines, state, discovery, metrics, the
unix socket and Debian's etcd are in test_fleet_api_cluster.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import struct
import sys
import uuid
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flotilla.client import EtcdClient
from flotilla.fleet.api import create_app
from flotilla.fleet.api_schema import PageToken, PageTokenError, go_json
from flotilla.fleet.model import Machine, UnitState
from flotilla.fleet.registry import Registry
from flotilla.ports import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from processes import start_member  # noqa: E402

VERSION = "0.9.9-test"
V1 = "/fleet/v1"
JSON = "application/json"
SAFETY_TIMEOUT_S = 30  # a hung test fails instead of hanging the suite; not a performance bound
SLEEP = [{"section": "Service", "name": "ExecStart", "value": "/bin/sleep 300"}]
HELLO = [
    {"section": "Unit", "name": "Description", "value": "Hello"},
    {"section": "Service", "name": "ExecStart", "value": "/bin/echo hello"},
]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, SAFETY_TIMEOUT_S))


@pytest.fixture(scope="module")
def member(tmp_path_factory):
    """One Flotilla member for the module; every test works under a prefix of its own."""
    started = start_member("flotilla", tmp_path_factory.mktemp("fleet-api"))
    yield started
    started.kill()


@contextlib.asynccontextmanager
async def fleet_api(endpoint: str, token_limit: int = 100):
    """An HTTP client of the API app on a fresh registry prefix; yields (http, registry)."""
    async with EtcdClient([endpoint]) as client:
        registry = Registry(client, f"/fleet-api-{uuid.uuid4().hex}/")
        app = create_app(registry, token_limit=token_limit, version=VERSION)
        async with TestClient(TestServer(app, host="127.0.0.1", port=free_port())) as http:
            yield http, registry


async def put_unit(http, name: str, body: object, *, prefix: str = V1, content_type: str | None = JSON):
    headers = {"Content-Type": content_type} if content_type else {}
    return await http.put(f"{prefix}/units/{name}", json=body, headers=headers)


async def error_of(response) -> dict:
    assert response.headers["Content-Type"] == JSON
    body = await response.json()
    assert set(body) == {"error"} and body["error"]["code"] == response.status
    return body["error"]


async def add_machine(registry: Registry, machine: Machine) -> int:
    lease = await registry.client.lease_grant(60)
    await registry.register_machine(machine, lease.id)
    return lease.id


# ---------------------------------------------------------------------------------------------- create


def test_put_with_options_creates_the_unit_201_and_get_returns_fleets_unit_json(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, _):
            response = await put_unit(http, "hello.service", {"desiredState": "launched", "options": HELLO})
            assert response.status == 201
            assert response.headers["Server"] == f"fleetd/{VERSION}"
            assert await response.read() == b""
            got = await http.get(f"{V1}/units/hello.service")
            assert got.status == 200
            assert got.headers["Content-Type"] == JSON
            assert got.headers["Server"] == f"fleetd/{VERSION}"
            # Go marshals the generated struct's fields in order; omitempty drops the absent machineID.
            assert await got.text() == (
                '{"currentState":"inactive","desiredState":"launched","name":"hello.service","options":['
                '{"name":"Description","section":"Unit","value":"Hello"},'
                '{"name":"ExecStart","section":"Service","value":"/bin/echo hello"}]}'
            )

    run(body())


def test_put_without_desired_state_creates_an_inactive_unit_and_v1_alpha_is_the_same_api(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            response = await put_unit(http, "a.service", {"options": SLEEP}, prefix="/v1-alpha")
            assert response.status == 201
            unit = (await registry.snapshot()).cluster.unit("a.service")
            assert unit.desired_state == "inactive"
            got = await (await http.get("/v1-alpha/units/a.service")).json()
            assert got["desiredState"] == "inactive" and got["options"] == [
                {"name": "ExecStart", "section": "Service", "value": "/bin/sleep 300"}
            ]

    run(body())


def test_created_unit_is_stored_under_fleets_hash_of_the_options(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            await put_unit(http, "h.service", {"desiredState": "loaded", "options": HELLO})
            unit = (await registry.snapshot()).cluster.unit("h.service")
            # go-systemd's Serialize of the options, which is what fleet hashes and stores.
            assert unit.text == "[Unit]\nDescription=Hello\n\n[Service]\nExecStart=/bin/echo hello\n"
            assert await registry.unit_text(unit.hash) == unit.text

    run(body())


def test_put_of_unknown_unit_without_options_is_409(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, _):
            response = await put_unit(http, "ghost.service", {"desiredState": "launched"})
            assert response.status == 409
            assert await error_of(response) == {
                "code": 409,
                "message": "unit does not exist and options field empty",
            }

    run(body())


def test_put_desired_state_of_existing_unit_is_204_and_without_it_409(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            await put_unit(http, "s.service", {"desiredState": "inactive", "options": SLEEP})
            response = await put_unit(http, "s.service", {"desiredState": "launched"})
            assert response.status == 204
            assert (await registry.snapshot()).cluster.unit("s.service").desired_state == "launched"
            # The same options again only set the state (fleet compares hashes).
            response = await put_unit(http, "s.service", {"desiredState": "loaded", "options": SLEEP})
            assert response.status == 204
            assert (await registry.snapshot()).cluster.unit("s.service").desired_state == "loaded"
            missing = await put_unit(http, "s.service", {"name": "s.service"})
            assert missing.status == 409
            assert (await error_of(missing))["message"] == "must provide DesiredState to update existing unit"

    run(body())


def test_name_in_body_must_match_the_url_400(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, _):
            response = await put_unit(
                http, "a.service", {"name": "b.service", "desiredState": "launched", "options": SLEEP}
            )
            assert response.status == 400
            assert (await error_of(response))["message"] == (
                'name in URL "a.service" differs from unit name in request body "b.service"'
            )
            same = await put_unit(http, "a.service", {"name": "a.service", "options": SLEEP})
            assert same.status == 201

    run(body())


@pytest.mark.parametrize(
    ("xfleet", "message"),
    [
        ([("MachineID", "abc"), ("Global", "true")], "MachineID cannot be used with Global"),
        ([("MachineID", "abc"), ("MachineOf", "db.service")], "MachineID cannot be used with Peers"),
        ([("MachineID", "abc"), ("Conflicts", "x*")], "MachineID cannot be used with Conflicts"),
        ([("Global", "true"), ("Replaces", "old.service")], "Global cannot be used with Replaces"),
        ([("Conflicts", "x*"), ("Replaces", "y*")], "Conflicts cannot be used with Replaces"),
        (
            [("MachineOf", "db.service"), ("Conflicts", "db.*")],
            'unresolvable requirements: peer "db.service" matches conflict "db.*"',
        ),
    ],
)
def test_bad_x_fleet_combinations_are_400_with_fleets_message(member, xfleet, message):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            options = SLEEP + [{"section": "X-Fleet", "name": k, "value": v} for k, v in xfleet]
            response = await put_unit(http, "x.service", {"desiredState": "launched", "options": options})
            assert response.status == 400
            assert (await error_of(response))["message"] == message
            assert (await registry.snapshot()).cluster.units == ()

    run(body())


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/jsonp"])
def test_put_without_application_json_is_415(member, content_type):
    async def body():
        async with fleet_api(member.endpoint) as (http, _):
            response = await http.put(
                f"{V1}/units/a.service",
                data=b'{"desiredState":"launched","options":[]}',
                headers={"Content-Type": content_type} if content_type else {},
                skip_auto_headers=["Content-Type"],  # aiohttp would label raw bytes octet-stream
            )
            assert response.status == 415
            message = (await error_of(response))["message"]
            if content_type is None:
                assert message == "expected 1 Content-Type, got 0"
            else:
                assert message == "only acceptable Content-Type is application/json"
            with_charset = await put_unit(
                http, "a.service", {"options": SLEEP}, content_type="application/json; charset=utf-8"
            )
            assert with_charset.status == 201

    run(body())


@pytest.mark.parametrize(
    ("name", "body", "fragment"),
    [
        ("bad!.service", {"options": SLEEP}, "invalid character '!'"),
        ("noext", {"options": SLEEP}, 'must contain "."'),
        (
            "t@.service",
            {"desiredState": "launched", "options": SLEEP},
            'cannot activate template "t@.service"',
        ),
        ("a.service", {"desiredState": "running", "options": SLEEP}, 'invalid desiredState "running"'),
        ("a.service", {"options": "ExecStart=/bin/true"}, "unable to decode body"),
        (
            "a.service",
            {"options": [{"section": "Service", "name": "ExecStart", "value": 3}]},
            "must be a string",
        ),
        (
            "a.service",
            {"options": [{"section": "Service", "name": "X", "value": "y" * 3000}]},
            "line too long",
        ),
    ],
)
def test_invalid_puts_are_400_and_say_what_is_wrong(member, name, body, fragment):
    async def run_it():
        async with fleet_api(member.endpoint) as (http, registry):
            response = await put_unit(http, name, body)
            assert response.status == 400
            assert fragment in (await error_of(response))["message"]
            assert (await registry.snapshot()).cluster.units == ()

    run(run_it())


def test_undecodable_body_is_400_but_trailing_bytes_after_the_object_are_ignored_as_go_does(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, _):
            headers = {"Content-Type": JSON}
            for raw in (b"", b"{", b"[1]"):
                response = await http.put(f"{V1}/units/a.service", data=raw, headers=headers)
                assert response.status == 400
                assert (await error_of(response))["message"].startswith("unable to decode body: ")
            raw = b'{"Options":[{"Section":"Service","Name":"ExecStart","Value":"/bin/true"}]} trailing'
            response = await http.put(f"{V1}/units/a.service", data=raw, headers=headers)
            assert response.status == 201  # Go matches field names case-insensitively, too
            assert (await (await http.get(f"{V1}/units/a.service")).json())["options"] == [
                {"name": "ExecStart", "section": "Service", "value": "/bin/true"}
            ]

    run(body())


def test_template_may_be_submitted_inactive_but_not_activated(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, _):
            assert (await put_unit(http, "web@.service", {"options": SLEEP})).status == 201
            response = await put_unit(http, "web@.service", {"desiredState": "launched"})
            assert response.status == 400
            assert (await error_of(response))["message"] == 'cannot activate template "web@.service"'
            assert (
                await put_unit(http, "web@1.service", {"desiredState": "launched", "options": SLEEP})
            ).status == 201

    run(body())


# ---------------------------------------------------------------------------------------------- replace


def test_put_with_different_options_replaces_the_unit_keeping_its_desired_state(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            await put_unit(http, "r.service", {"desiredState": "launched", "options": SLEEP})
            machine = Machine("m" * 32, "10.0.0.1")
            await add_machine(registry, machine)
            assert await registry.schedule("r.service", machine.id)
            old_hash = (await registry.snapshot()).cluster.unit("r.service").hash
            response = await put_unit(http, "r.service", {"options": HELLO})
            assert response.status == 201
            snapshot = await registry.snapshot()
            unit = snapshot.cluster.unit("r.service")
            assert unit.hash != old_hash and unit.desired_state == "launched"
            # Destroy and re-create: the old placement is gone, the engine places the new unit afresh.
            assert "r.service" not in snapshot.cluster.targets
            got = await (await http.get(f"{V1}/units/r.service")).json()
            assert [o["name"] for o in got["options"]] == ["Description", "ExecStart"]

    run(body())


def test_replacing_put_takes_the_desired_state_from_the_body(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            await put_unit(http, "r.service", {"desiredState": "launched", "options": SLEEP})
            response = await put_unit(http, "r.service", {"desiredState": "loaded", "options": HELLO})
            assert response.status == 201
            unit = (await registry.snapshot()).cluster.unit("r.service")
            assert unit.desired_state == "loaded" and "Hello" in unit.text

    run(body())


# ---------------------------------------------------------------------------------------------- get, delete


def test_get_and_delete_of_unknown_units_are_404_and_delete_is_204(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            for method in ("GET", "DELETE"):
                response = await http.request(method, f"{V1}/units/nope.service")
                assert response.status == 404
                assert await error_of(response) == {"code": 404, "message": "unit does not exist"}
            await put_unit(http, "d.service", {"options": SLEEP})
            response = await http.delete(f"{V1}/units/d.service")
            assert response.status == 204
            assert (await http.get(f"{V1}/units/d.service")).status == 404
            assert (await registry.snapshot()).cluster.units == ()

    run(body())


def test_targeted_unit_reports_machine_id_and_current_state_from_the_agents_state(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            await put_unit(http, "t.service", {"desiredState": "launched", "options": SLEEP})
            machine = Machine("a" * 32, "10.0.0.2")
            lease = await add_machine(registry, machine)
            await registry.schedule("t.service", machine.id)
            got = await (await http.get(f"{V1}/units/t.service")).json()
            assert (got["machineID"], got["currentState"]) == (machine.id, "inactive")
            unit = (await registry.snapshot()).cluster.unit("t.service")
            state = UnitState("t.service", machine.id, "loaded", "active", "running", unit.hash)
            await registry.publish_state(state, machine, "launched", lease)
            got = await (await http.get(f"{V1}/units/t.service")).json()
            assert (got["machineID"], got["currentState"]) == (machine.id, "launched")
            listed = await (await http.get(f"{V1}/units")).json()
            assert listed["units"] == [got]

    run(body())


def test_global_units_are_reported_as_fleet_does(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, _):
            options = SLEEP + [{"section": "X-Fleet", "name": "Global", "value": "true"}]
            await put_unit(http, "g.service", {"desiredState": "launched", "options": options})
            # The list maps every job through the schedule (no target: "inactive"); a single GET skips it.
            listed = (await (await http.get(f"{V1}/units")).json())["units"][0]
            assert (listed["currentState"], "machineID" in listed) == ("inactive", False)
            single = await (await http.get(f"{V1}/units/g.service")).json()
            assert "currentState" not in single and "machineID" not in single
            assert single["desiredState"] == "launched"

    run(body())


def test_unschedulable_unit_says_why_in_get_and_list(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            await put_unit(http, "u.service", {"desiredState": "launched", "options": SLEEP})
            await put_unit(http, "ok.service", {"desiredState": "launched", "options": SLEEP})
            reason = "no machine has metadata region=mars"
            await registry.report_unschedulable({}, {"u.service": reason})
            got = await (await http.get(f"{V1}/units/u.service")).json()
            assert got["unschedulableReason"] == reason
            listed = {u["name"]: u for u in (await (await http.get(f"{V1}/units")).json())["units"]}
            assert listed["u.service"]["unschedulableReason"] == reason
            assert "unschedulableReason" not in listed["ok.service"]
            await registry.report_unschedulable({"u.service": reason}, {})
            assert "unschedulableReason" not in await (await http.get(f"{V1}/units/u.service")).json()

    run(body())


# ---------------------------------------------------------------------------------------------- pages


def token(limit: int, page: int) -> str:
    return base64.urlsafe_b64encode(struct.pack("<HH", limit, page)).decode()


def test_fleets_token_encoding():
    # fleet's encoding of {Limit: 100, Page: 2}: little-endian uint16s, padded base64url.
    assert token(100, 2) == "ZAACAA=="


def test_units_are_paged_by_name_with_fleets_next_page_token(member):
    async def body():
        async with fleet_api(member.endpoint, token_limit=2) as (http, _):
            for name in ("e", "c", "a", "d", "b"):
                await put_unit(http, f"{name}.service", {"options": SLEEP})
            first = await (await http.get(f"{V1}/units")).json()
            assert [u["name"] for u in first["units"]] == ["a.service", "b.service"]
            assert first["nextPageToken"] == token(2, 2)
            second = await (await http.get(f"{V1}/units", params={"nextPageToken": token(2, 2)})).json()
            assert [u["name"] for u in second["units"]] == ["c.service", "d.service"]
            assert second["nextPageToken"] == token(2, 3)
            last = await (await http.get(f"{V1}/units", params={"nextPageToken": token(2, 3)})).json()
            assert last == {"units": [last["units"][0]]} and last["units"][0]["name"] == "e.service"
            beyond = await http.get(f"{V1}/units", params={"nextPageToken": token(2, 9)})
            assert await beyond.text() == "{}"

    run(body())


def test_a_page_ending_at_the_last_unit_still_has_a_token_whose_page_is_empty(member):
    async def body():
        async with fleet_api(member.endpoint, token_limit=2) as (http, _):
            for name in ("a", "b"):
                await put_unit(http, f"{name}.service", {"options": SLEEP})
            first = await (await http.get(f"{V1}/units")).json()
            assert len(first["units"]) == 2 and first["nextPageToken"] == token(2, 2)
            empty = await http.get(f"{V1}/units", params={"nextPageToken": first["nextPageToken"]})
            assert (empty.status, await empty.text()) == (200, "{}")

    run(body())


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ([("nextPageToken", token(100, 2))], "token limit must be 2"),
        ([("nextPageToken", token(2, 0))], "token page must be greater than zero"),
        ([("nextPageToken", token(2, 2)), ("nextPageToken", token(2, 3))], "too many values for page token"),
        ([("nextPageToken", "ZAACAA")], "is not base64url"),
        ([("nextPageToken", "!!!!")], "is not base64url"),
        ([("nextPageToken", "AgA=")], "is too short"),
    ],
)
@pytest.mark.parametrize("resource", ["units", "state", "machines"])
def test_bad_page_tokens_are_400(member, resource, query, message):
    async def body():
        async with fleet_api(member.endpoint, token_limit=2) as (http, _):
            response = await http.get(f"{V1}/{resource}", params=query)
            assert response.status == 400
            assert message in (await error_of(response))["message"]

    run(body())


def test_empty_lists_are_empty_objects(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, _):
            for resource in ("units", "state", "machines"):
                response = await http.get(f"{V1}/{resource}")
                assert (response.status, await response.text()) == (200, "{}")

    run(body())


# ---------------------------------------------------------------------------------------------- options


def test_a_newline_in_a_value_cannot_smuggle_options_into_the_unit(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            sneaky = [
                {"section": "Service", "name": "ExecStart", "value": "/bin/true\n[X-Fleet]\nGlobal=true"}
            ]
            response = await put_unit(http, "n.service", {"desiredState": "launched", "options": sneaky})
            assert response.status == 400
            assert "cannot be stored as one unit-file line" in (await error_of(response))["message"]
            assert (await registry.snapshot()).cluster.units == ()

    run(body())


def test_options_come_back_grouped_by_section_as_fleet_stores_them(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, _):
            options = [
                {"section": "Unit", "name": "Description", "value": "  spaced  "},
                {"section": "Service", "name": "ExecStart", "value": "/bin/true"},
                {"section": "Unit", "name": "After", "value": "a.service"},
                {"section": "Service", "name": "Environment", "value": ""},
            ]
            assert (await put_unit(http, "o.service", {"options": options})).status == 201
            got = (await (await http.get(f"{V1}/units/o.service")).json())["options"]
            # Serialize groups sections; go-systemd's reader trims blanks; omitempty drops the empty value.
            assert got == [
                {"name": "Description", "section": "Unit", "value": "spaced"},
                {"name": "After", "section": "Unit", "value": "a.service"},
                {"name": "ExecStart", "section": "Service", "value": "/bin/true"},
                {"name": "Environment", "section": "Service"},
            ]

    run(body())


def test_a_body_over_the_size_limit_gets_fleets_error_shape(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, _):
            huge = {"options": [{"section": "Service", "name": "X", "value": "y" * 2000}] * 600}
            response = await put_unit(http, "big.service", huge)
            assert response.status == 413
            assert response.headers["Server"] == f"fleetd/{VERSION}"
            assert (await error_of(response))["code"] == 413

    run(body())


def test_go_json_escapes_what_go_escapes():
    assert go_json({"v": "<a&b>\u2028é"}) == '{"v":"\\u003ca\\u0026b\\u003e\\u2028é"}'.encode()


def test_page_tokens_round_trip_and_refuse_what_go_refuses():
    assert PageToken.decode(token(7, 3)) == PageToken(7, 3)
    assert PageToken(100, 2).encode() == "ZAACAA=="
    assert PageToken.decode("ZAAC\nAA==") == PageToken(100, 2)  # Go skips line breaks
    for bad in ("ZAACAA", "ZAACAA= =", "ZA+CAA==", "ZA/CAA=="):
        with pytest.raises(PageTokenError, match="not base64url"):
            PageToken.decode(bad)
