"""Flotilla's `ETCDCTL_API=2 etcdctl`, in process: Go's flag rules as urfave/cli 1.22 applies them,
Go's text conventions, the help pages, and the verbs against a small in-memory v2 server. The byte-for-byte
comparison with Debian's etcdctl is tests/integration/test_etcdctl_v2_outputs.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from flotilla.etcdctl.v2 import main
from flotilla.etcdctl.v2.commands import COMMANDS, command_help, find
from flotilla.etcdctl.v2.flags import Flag, FlagError, parse, parse_duration, reorder

TTL = Flag("ttl", "int", "key time-to-live in seconds")
SORT = Flag("sort", "bool", "returns result in sorted order")
REC = Flag("recursive, r", "bool", "recursive")
HELP = Flag("help, h", "bool", "show help")


# --- flags: urfave/cli 1.22 moves a verb's flags first, then Go's flag package parses them


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["/foo", "--ttl", "5", "bar"], ["--ttl", "5", "/foo", "bar"]),  # a flag's value moves with it
        (["/x", "--", "-5"], ["--", "/x", "-5"]),  # "--" leads what follows it
        (["/ro", "-r", "--bogus"], ["-r", "--bogus", "/ro"]),  # after a flag, an unknown one moves too
        (["/a", "--ttl=5", "b"], ["--ttl=5", "/a", "b"]),
        (["-", "/a"], ["-", "/a"]),
    ],
)
def test_reorder_moves_flags_before_arguments(args, expected):
    assert reorder([TTL, SORT, REC, HELP], args) == expected


def test_go_flag_forms_and_last_value_wins():
    values, rest = parse([TTL, SORT, REC], ["-ttl", "1", "--ttl=0x10", "-r", "--sort=false", "k", "-x"])
    assert values == {"ttl": 16, "sort": False, "recursive": True}
    assert rest == ["k", "-x"]  # parsing stops at the first argument


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "flag provided but not defined: -bogus"),
        (["--ttl", "x"], 'invalid value "x" for flag -ttl: parse error'),
        (
            ["--ttl", "99999999999999999999"],
            'invalid value "99999999999999999999" for flag -ttl: value out of range',
        ),
        (["--ttl"], "flag needs an argument: -ttl"),
        (["---ttl"], "bad flag syntax: ---ttl"),
        (["--sort=maybe"], 'invalid boolean value "maybe" for -sort: parse error'),
        (["-r", "--recursive"], "Cannot use two forms of the same flag: r recursive"),
    ],
)
def test_flag_errors_use_gos_words(args, message):
    with pytest.raises(FlagError) as caught:
        parse([TTL, SORT, REC], args)
    assert str(caught.value) == message


def test_ints_and_durations_as_go_parses_them():
    values, _ = parse([TTL], ["--ttl", "010"])
    assert values["ttl"] == 8  # a leading 0 is octal in strconv.ParseInt(s, 0, 64)
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("500ms") == 0.5
    assert parse_duration("0") == 0.0
    for bad in ("5", "soon", "", "1.s5"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_command_help_is_urfaves_layout():
    text = command_help(find(COMMANDS, "rm"), "etcdctl rm")
    assert text == (
        "NAME:\n   etcdctl rm - remove a key or a directory\n\n"
        "USAGE:\n   etcdctl rm [command options] <key>\n\n"
        "OPTIONS:\n"
        "   --dir               removes the key if it is an empty directory or a key-value pair\n"
        "   --recursive, -r     removes the key and all child keys(if it is a directory)\n"
        "   --with-value value  previous value\n"
        "   --with-index value  previous index (default: 0)\n"
        "   \n"
    )


# --- the verbs in process, against an in-memory v2 server


class _Store(BaseHTTPRequestHandler):
    """Just enough of the v2 API: members, and one key at a time."""

    keys: dict[str, str] = {}
    index = 3

    def log_message(self, *args) -> None:
        pass

    def _answer(self, status: int, body: dict, index: int | None = None) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Etcd-Index", str(self.index if index is None else index))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/v2/members":
            url = f"http://127.0.0.1:{self.server.server_address[1]}"
            member = {"id": "8e9e05c52164694d", "name": "m1", "peerURLs": [], "clientURLs": [url]}
            self._answer(200, {"members": [member]})
        elif path.removeprefix("/v2/keys") in self.keys:
            key = path.removeprefix("/v2/keys")
            node = {"key": key, "value": self.keys[key], "modifiedIndex": 4, "createdIndex": 4}
            self._answer(200, {"action": "get", "node": node})
        else:
            key = path.removeprefix("/v2/keys")
            body = {"errorCode": 100, "message": "Key not found", "cause": key, "index": self.index}
            self._answer(404, body)

    def do_PUT(self) -> None:
        key = urlsplit(self.path).path.removeprefix("/v2/keys")
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        type(self).index += 1
        self.keys[key] = form["value"][0]
        node = {"key": key, "value": self.keys[key], "modifiedIndex": self.index, "createdIndex": self.index}
        self._answer(201, {"action": "set", "node": node})


@pytest.fixture
def server():
    _Store.keys, _Store.index = {}, 3
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Store)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    out, err = capsys.readouterr()
    return done.value.code, out, err


@pytest.fixture(autouse=True)
def _no_etcdctl_env(monkeypatch):
    for name in ("ETCDCTL_ENDPOINTS", "ETCDCTL_ENDPOINT", "ETCDCTL_PEERS", "ETCDCTL_USERNAME"):
        monkeypatch.delenv(name, raising=False)


def test_set_then_get_in_each_output_format(server, capsys):
    assert run(capsys, "--endpoints", server, "set", "/foo", "bar") == (0, "bar\n", "")
    assert run(capsys, f"--endpoints={server}", "-o", "extended", "get", "/foo") == (
        0,
        "Key: /foo\nCreated-Index: 4\nModified-Index: 4\nTTL: 0\nIndex: 4\n\nbar\n",
        "",
    )
    code, out, _ = run(capsys, "-C", server, "-o", "json", "get", "/foo")
    assert out == (
        '{"action":"get","node":{"key":"/foo","value":"bar","nodes":null,"createdIndex":4,"modifiedIndex":4},'
        '"prevNode":null}\n'
    )


def test_a_missing_key_is_a_server_error_exit_4(server, capsys):
    assert run(capsys, "--endpoints", server, "get", "/nope") == (
        4,
        "",
        "Error:  100: Key not found (/nope) [3]\n",
    )


def test_endpoints_come_from_etcdctl_endpoints(server, capsys, monkeypatch):
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", server)
    assert run(capsys, "set", "/k", "v")[0] == 0


def test_debug_prints_the_sync_and_curl_lines(server, capsys):
    code, out, err = run(capsys, "--debug", "--endpoints", server, "set", "/k", "a b&c")
    port = server.rsplit(":", 1)[1]
    assert (code, out) == (0, "a b&c\n")
    assert err == (
        f"start to sync cluster using endpoints({server})\n"
        f"cURL Command: curl -X GET {server}/v2/members\n"
        f"got endpoints({server}) after sync\n"
        f"Cluster-Endpoints: {server}\n"
        f'cURL Command: curl -X PUT http://127.0.0.1:{port}/v2/keys/k -d "value=a+b%26c"\n'
    )


def test_an_unreachable_cluster_is_a_connection_error_exit_2(capsys):
    dead = "http://127.0.0.1:1"
    refused = "dial tcp 127.0.0.1:1: connect: connection refused"
    assert run(capsys, "--endpoints", dead, "get", "/k") == (
        2,
        "",
        f"Error:  client: etcd cluster is unavailable or misconfigured; error #0: {refused}\n\n"
        f"error #0: {refused}\n\n",
    )
    # without the sync, a delete is sent once: its error comes alone, as the server error it is
    assert run(capsys, "--no-sync", "--endpoints", dead, "rm", "/k") == (4, "", f"Error:  {refused}\n")


def test_usage_errors_print_help_and_exit_1(capsys):
    code, out, err = run(capsys, "set", "--ttl", "x", "/a", "b")
    assert code == 1
    assert out.startswith(
        'Incorrect Usage: invalid value "x" for flag -ttl: parse error\n\nNAME:\n   etcdctl set'
    )
    assert err == 'invalid value "x" for flag -ttl: parse error\n'
    assert run(capsys, "nope") == (3, "", "No help topic for 'nope'\n")
    assert run(capsys, "--version") == (0, "etcdctl version: 3.4.23\nAPI version: 2\n", "")
