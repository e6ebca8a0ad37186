"""fleet's HTTP API v1, the rest of it: machines and PATCH of their metadata, unit states and their filters,
the discovery document, routing (fleet's 404/405 and messages), metrics, store failures, the unix socket
of ``serve_api``, and the same calls with Debian's etcd 3.4 as the store (DESIGN decision 2)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from flotilla.client import EtcdClient
from flotilla.fleet.api import create_app, serve_api
from flotilla.fleet.config import ConfigError, FleetConfig, load_config
from flotilla.fleet.daemon import api_ssl_context
from flotilla.fleet.model import Machine, UnitState
from flotilla.fleet.registry import Registry
from flotilla.ports import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from processes import real_etcd_available, self_signed_certificate, start_member  # noqa: E402
from test_fleet_api import (  # noqa: E402
    JSON,
    SLEEP,
    V1,
    VERSION,
    add_machine,
    error_of,
    fleet_api,
    put_unit,
    run,
    token,
)

M1, M2 = "1" * 32, "2" * 32


@pytest.fixture(scope="module")
def member(tmp_path_factory):
    started = start_member("flotilla", tmp_path_factory.mktemp("fleet-api-cluster"))
    yield started
    started.kill()


# ---------------------------------------------------------------------------------------------- machines


def test_machines_lists_registered_machines_by_id_in_fleets_json(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            await add_machine(registry, Machine(M2, "10.0.0.2"))
            await add_machine(registry, Machine(M1, "10.0.0.1", {"zone": "b", "region": "eu"}))
            response = await http.get(f"{V1}/machines")
            assert response.status == 200 and response.headers["Server"] == f"fleetd/{VERSION}"
            assert await response.text() == (
                '{"machines":[{"id":"'
                + M1
                + '","metadata":{"region":"eu","zone":"b"},"primaryIP":"10.0.0.1"},'
                '{"id":"' + M2 + '","primaryIP":"10.0.0.2"}]}'
            )

    run(body())


def test_patch_machines_adds_replaces_and_removes_metadata_204(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            await add_machine(registry, Machine(M1, "10.0.0.1", {"zone": "a"}))
            patch = [
                {"op": "add", "path": f"/{M1}/metadata/disk", "value": {"value": "ssd"}},  # fleet's code
                {"op": "add", "path": f"/{M1}/metadata/rack", "value": "r1"},  # fleet's docs
                {"op": "replace", "path": f"/{M1}/metadata/zone", "value": {"value": "c"}},
                {"op": "add", "path": f"/{M2}/metadata/later", "value": "yes"},  # not registered yet
            ]
            response = await http.patch(f"{V1}/machines", json=patch)
            assert response.status == 204
            machines = (await (await http.get(f"{V1}/machines")).json())["machines"]
            assert machines == [
                {"id": M1, "metadata": {"disk": "ssd", "rack": "r1", "zone": "c"}, "primaryIP": "10.0.0.1"}
            ]
            response = await http.patch(
                f"{V1}/machines", json=[{"op": "remove", "path": f"/{M1}/metadata/rack"}]
            )
            assert response.status == 204
            await add_machine(registry, Machine(M2, "10.0.0.2"))
            machines = (await (await http.get(f"{V1}/machines")).json())["machines"]
            assert [m["metadata"] for m in machines] == [{"disk": "ssd", "zone": "c"}, {"later": "yes"}]

    run(body())


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (
            {"op": "move", "path": f"/{M1}/metadata/k", "value": "v"},
            "invalid op: expect add, remove, or replace",
        ),
        ({"op": "add", "path": f"/{M1}/k", "value": "v"}, "machine metadata path invalid"),
        ({"op": "add", "path": f"/{M1}/metadata/bad key", "value": "v"}, "machine metadata path invalid"),
        ({"op": "add", "path": f"/{M1}/metadata/k"}, "invalid value: add and replace require a value"),
        (
            {"op": "replace", "path": f"/{M1}/metadata/k", "value": {"value": ""}},
            "invalid value: add and replace require a value",
        ),
    ],
)
def test_bad_patch_is_400_and_applies_none_of_its_operations(member, op, message):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            await add_machine(registry, Machine(M1, "10.0.0.1"))
            good = {"op": "add", "path": f"/{M1}/metadata/first", "value": "1"}
            response = await http.patch(f"{V1}/machines", json=[good, op])
            assert response.status == 400
            assert (await error_of(response))["message"] == message
            assert "metadata" not in (await (await http.get(f"{V1}/machines")).json())["machines"][0]

    run(body())


def test_machines_are_paged(member):
    async def body():
        async with fleet_api(member.endpoint, token_limit=1) as (http, registry):
            await add_machine(registry, Machine(M2))
            await add_machine(registry, Machine(M1))
            first = await (await http.get(f"{V1}/machines")).json()
            assert first == {"machines": [{"id": M1}], "nextPageToken": token(1, 2)}
            second = await (await http.get(f"{V1}/machines", params={"nextPageToken": token(1, 2)})).json()
            assert second == {"machines": [{"id": M2}], "nextPageToken": token(1, 3)}

    run(body())


# ---------------------------------------------------------------------------------------------- state


async def publish_states(registry: Registry) -> None:
    machines = [Machine(M2, "10.0.0.2"), Machine(M1, "10.0.0.1")]
    leases = [await add_machine(registry, m) for m in machines]
    for name in ("b.service", "a.service"):
        for machine, lease in zip(machines, leases, strict=True):
            state = UnitState(name, machine.id, "loaded", "active", "running", "f" * 40)
            await registry.publish_state(state, machine, "launched", lease)


def test_state_lists_unit_states_by_name_then_machine_and_filters(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, registry):
            await publish_states(registry)
            states = (await (await http.get(f"{V1}/state")).json())["states"]
            assert [(s["name"], s["machineID"]) for s in states] == [
                ("a.service", M1), ("a.service", M2), ("b.service", M1), ("b.service", M2),
            ]  # fmt: skip
            assert states[0] == {
                "hash": "f" * 40,
                "machineID": M1,
                "name": "a.service",
                "systemdActiveState": "active",
                "systemdLoadState": "loaded",
                "systemdSubState": "running",
            }
            by_machine = await (await http.get(f"{V1}/state", params={"machineID": M2})).json()
            assert [(s["name"], s["machineID"]) for s in by_machine["states"]] == [
                ("a.service", M2), ("b.service", M2),
            ]  # fmt: skip
            both = await (
                await http.get(f"{V1}/state", params={"machineID": M2, "unitName": "b.service"})
            ).json()
            assert [(s["name"], s["machineID"]) for s in both["states"]] == [("b.service", M2)]
            none = await http.get(f"{V1}/state", params={"unitName": "zzz.service"})
            assert await none.text() == "{}"

    run(body())


def test_state_of_one_unit_and_404(member):
    async def body():
        async with fleet_api(member.endpoint, token_limit=3) as (http, registry):
            await publish_states(registry)
            one = await (await http.get(f"{V1}/state/b.service")).json()
            assert (one["name"], one["machineID"]) == ("b.service", M1)
            missing = await http.get(f"{V1}/state/zzz.service")
            assert missing.status == 404
            assert await error_of(missing) == {"code": 404, "message": "unit state does not exist"}
            page = await (await http.get(f"{V1}/state")).json()
            assert len(page["states"]) == 3 and page["nextPageToken"] == token(3, 2)

    run(body())


# ---------------------------------------------------------------------------------------------- discovery


def test_discovery_document_describes_the_api_with_the_requests_base_url(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, _):
            for prefix in (V1, "/v1-alpha"):
                response = await http.get(f"{prefix}/discovery")
                assert response.status == 200 and response.headers["Content-Type"] == JSON
                document = await response.json()
                host = f"127.0.0.1:{http.port}"
                assert document["baseUrl"] == f"http://{host}/fleet/v1/"
                assert document["rootUrl"] == f"http://{host}/"
                assert (document["kind"], document["id"], document["servicePath"]) == (
                    "discovery#restDescription", "fleet:v1", "fleet/v1/",
                )  # fmt: skip
                units = document["resources"]["Units"]["methods"]
                assert {m: (units[m]["httpMethod"], units[m]["path"]) for m in units} == {
                    "List": ("GET", "units"),
                    "Get": ("GET", "units/{unitName}"),
                    "Delete": ("DELETE", "units/{unitName}"),
                    "Set": ("PUT", "units/{unitName}"),
                }
                assert set(document["schemas"]) == {
                    "Machine", "MachinePage", "UnitOption", "Unit", "UnitPage", "UnitState", "UnitStatePage",
                }  # fmt: skip
                assert document["schemas"]["Unit"]["properties"]["desiredState"]["enum"] == [
                    "inactive", "loaded", "launched",
                ]  # fmt: skip
            response = await http.post(f"{V1}/discovery")
            assert response.status == 400
            assert (await error_of(response))["message"] == "only HTTP GET supported against this resource"

    run(body())


# ---------------------------------------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("method", "path", "code", "message"),
    [
        ("POST", f"{V1}/units", 405, "only GET supported against this resource"),
        ("PATCH", f"{V1}/units/a.service", 405, "only GET, PUT and DELETE supported against this resource"),
        ("POST", f"{V1}/machines", 405, "only GET and PATCH supported against this resource"),
        ("PUT", f"{V1}/state", 405, "only GET supported against this resource"),
        ("DELETE", f"{V1}/state/a.service", 405, "only GET supported against this resource"),
        ("GET", V1, 405, ""),
        ("GET", "/v1-alpha", 405, ""),
        ("GET", "/", 405, ""),
        ("GET", "/nope", 404, ""),
        ("GET", f"{V1}/", 404, ""),
        ("GET", f"{V1}/units/", 404, ""),
        ("GET", f"{V1}/units/a/b", 404, ""),
        ("GET", f"{V1}/machines/{M1}", 404, ""),
        ("GET", f"{V1}/discovery/", 404, ""),
    ],
)
def test_routing_errors_match_fleets(member, method, path, code, message):
    async def body():
        async with fleet_api(member.endpoint) as (http, _):
            response = await http.request(method, path)
            assert response.status == code
            assert response.headers["Server"] == f"fleetd/{VERSION}"
            assert await error_of(response) == {"code": code, "message": message}

    run(body())


def test_metrics_count_requests_by_method_and_code(member):
    async def body():
        async with fleet_api(member.endpoint) as (http, _):
            await put_unit(http, "m.service", {"options": SLEEP})
            await http.get(f"{V1}/units/none.service")
            response = await http.get("/metrics")
            assert response.status == 200 and response.headers["Server"] == f"fleetd/{VERSION}"
            text = await response.text()
            assert 'fleet_api_requests_total{code="201",method="PUT"} 1.0' in text
            assert 'fleet_api_requests_total{code="404",method="GET"} 1.0' in text

    run(body())


def test_unreachable_store_is_503_with_what_to_do():
    async def body():
        # Nothing listens on this port: every registry read fails after the client's short deadline.
        async with EtcdClient([f"http://127.0.0.1:{free_port()}"], timeout_s=1.0) as client:
            app = create_app(Registry(client, "/fleet-api-dead/"), version=VERSION)
            async with TestClient(TestServer(app, host="127.0.0.1", port=free_port())) as http:
                response = await http.get(f"{V1}/units")
                assert response.status == 503
                error = await error_of(response)
                assert error["message"].startswith("fleet server unable to communicate with etcd: ")

    run(body())


def test_create_app_refuses_a_token_limit_that_does_not_fit_the_token(member):
    with pytest.raises(ValueError, match="token_limit 70000 must be 1..65535"):
        create_app(Registry(None), token_limit=70000, version=VERSION)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- serving


def test_serve_api_on_a_private_unix_socket_and_tcp(member, tmp_path):
    socket_path = str(tmp_path / "fleet.sock")
    port = free_port()

    async def body():
        async with EtcdClient([member.endpoint]) as client:
            app = create_app(Registry(client, f"/fleet-api-{uuid.uuid4().hex}/"), version=VERSION)
            async with serve_api(app, unix_path=socket_path, tcp=f"127.0.0.1:{port}") as server:
                assert server.unix_path == socket_path and server.tcp_address == ("127.0.0.1", port)
                assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o600
                connector = aiohttp.UnixConnector(path=socket_path)
                async with aiohttp.ClientSession(connector=connector) as session:
                    async with session.put(
                        f"http://fleet{V1}/units/sock.service", json={"options": SLEEP}
                    ) as response:
                        assert response.status == 201
                    async with session.get(f"http://fleet{V1}/units") as response:
                        assert response.headers["Server"] == f"fleetd/{VERSION}"
                        assert [u["name"] for u in (await response.json())["units"]] == ["sock.service"]
                async with aiohttp.ClientSession() as session:
                    async with session.get(f"http://127.0.0.1:{port}{V1}/discovery") as response:
                        assert (await response.json())["baseUrl"] == f"http://127.0.0.1:{port}/fleet/v1/"
            assert not os.path.exists(socket_path)

    run(body())


def test_serve_api_replaces_a_stale_socket_but_not_another_file(member, tmp_path):
    async def body():
        async with EtcdClient([member.endpoint]) as client:
            app = create_app(Registry(client, "/fleet-api-stale/"), version=VERSION)
            stale = tmp_path / "stale.sock"
            with socket.socket(socket.AF_UNIX) as leftover:
                leftover.bind(str(stale))  # a socket file a dead fleetd left behind
            async with serve_api(app, unix_path=str(stale), tcp=None):
                assert stat.S_ISSOCK(os.stat(stale).st_mode)
            regular = tmp_path / "not-a-socket"
            regular.write_text("keep me")
            with pytest.raises(FileExistsError, match="is not a socket"):
                async with serve_api(
                    create_app(Registry(client), version=VERSION), unix_path=str(regular), tcp=None
                ):
                    pass
            assert regular.read_text() == "keep me"

    run(body())


# ---------------------------------------------------------------------------------------------- real etcd


async def api_walkthrough(endpoint: str) -> None:
    """The calls fleetctl makes, end to end, on whatever store ``endpoint`` is."""
    async with fleet_api(endpoint) as (http, registry):
        lease = await add_machine(registry, Machine(M1, "10.0.0.1", {"zone": "a"}))
        assert (await put_unit(http, "w.service", {"desiredState": "loaded", "options": SLEEP})).status == 201
        assert (await put_unit(http, "w.service", {"desiredState": "launched"})).status == 204
        assert (await put_unit(http, "nope.service", {"desiredState": "launched"})).status == 409
        await registry.schedule("w.service", M1)
        unit = (await registry.snapshot()).cluster.unit("w.service")
        state = UnitState("w.service", M1, "loaded", "active", "running", unit.hash)
        await registry.publish_state(state, Machine(M1, "10.0.0.1"), "launched", lease)
        got = await (await http.get(f"{V1}/units/w.service")).json()
        assert (got["desiredState"], got["currentState"], got["machineID"]) == ("launched", "launched", M1)
        states = (await (await http.get(f"{V1}/state", params={"machineID": M1})).json())["states"]
        assert [(s["name"], s["hash"]) for s in states] == [("w.service", unit.hash)]
        patch = [{"op": "add", "path": f"/{M1}/metadata/disk", "value": {"value": "ssd"}}]
        assert (await http.patch(f"{V1}/machines", json=patch)).status == 204
        machines = (await (await http.get(f"{V1}/machines")).json())["machines"]
        assert machines == [{"id": M1, "metadata": {"disk": "ssd", "zone": "a"}, "primaryIP": "10.0.0.1"}]
        await registry.report_unschedulable({}, {"w.service": "why not"})
        listed = (await (await http.get(f"{V1}/units")).json())["units"]
        assert [(u["name"], u["unschedulableReason"]) for u in listed] == [("w.service", "why not")]
        assert (await http.delete(f"{V1}/units/w.service")).status == 204
        assert (await http.get(f"{V1}/units/w.service")).status == 404


@pytest.mark.parametrize("kind", ["flotilla", "etcd"])
def test_the_same_calls_on_flotilla_and_on_debians_etcd(member, kind, tmp_path):
    if kind == "flotilla":
        run(api_walkthrough(member.endpoint))
        return
    if not real_etcd_available():
        pytest.skip("Debian's etcd (/usr/bin/etcd) is not installed")
    with contextlib.ExitStack() as stack:
        etcd = start_member("etcd", tmp_path)
        stack.callback(etcd.kill)
        run(api_walkthrough(etcd.endpoint))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_tcp_listener_serves_tls_and_requires_client_certificates_when_told(member, tmp_path):
    """fleetd's api_certfile/api_keyfile/api_cafile; the real fleetctl speaks to it with its TLS flags."""
    cert, key = self_signed_certificate(tmp_path, "api")
    port = free_port()
    config = FleetConfig(
        api_listen=f"127.0.0.1:{port}", api_certfile=str(cert), api_keyfile=str(key), api_cafile=str(cert)
    )
    fleetctl = [str(Path(sys.executable).parent / "fleetctl"), f"--endpoint=https://127.0.0.1:{port}"]

    async def body():
        async with EtcdClient([member.endpoint]) as client:
            registry = Registry(client, f"/fleet-api-{uuid.uuid4().hex}/")
            await add_machine(registry, Machine(M1, "10.0.0.1"))
            app = create_app(registry, version=VERSION)
            async with serve_api(app, unix_path=None, tcp=config.api_listen, tcp_ssl=api_ssl_context(config)):
                tls = [f"--ca-file={cert}", f"--cert-file={cert}", f"--key-file={key}"]
                listed = await _run(*fleetctl, *tls, "list-machines", "--no-legend")
                assert listed.returncode == 0, listed.stderr
                assert listed.stdout.split() == [M1[:8] + "...", "10.0.0.1", "-"]
                refused = await _run(*fleetctl, f"--ca-file={cert}", "list-machines")  # no client certificate
                assert refused.returncode != 0 and refused.stdout == ""
                async with aiohttp.ClientSession() as session:  # plain HTTP is not served there
                    with pytest.raises(aiohttp.ClientError):
                        await session.get(f"http://127.0.0.1:{port}{V1}/machines")

    run(body())


async def _run(*argv: str) -> subprocess.CompletedProcess:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "FLEETCTL_ENDPOINT": ""}
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return subprocess.CompletedProcess(argv, process.returncode, out.decode(), err.decode())


def test_api_tls_settings_must_come_together():
    for flags, message in (
        ({"api_certfile": "c", "api_keyfile": "k"}, "set api_listen too"),
        ({"api_listen": "127.0.0.1:1", "api_certfile": "c"}, "give both, or neither"),
        ({"api_listen": "127.0.0.1:1", "api_cafile": "ca"}, "needs TLS"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config(config_file=None, env={}, flags=flags)
    config = load_config(config_file=None, env={"FLEET_RESTART_GRACE": "1m"}, flags={})
    assert config.restart_grace == 60.0
    broken = FleetConfig(api_listen="127.0.0.1:1", api_certfile="/nonexistent.crt", api_keyfile="/x.key")
    with pytest.raises(ConfigError, match="cannot use the API's TLS files"):
        api_ssl_context(broken)
