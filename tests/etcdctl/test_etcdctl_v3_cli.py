"""Flotilla's etcdctl (API 3) without a server: etcdctl 3.4's parsing, formatting and exit codes.

The expected texts were taken from Debian's etcdctl 3.4.23; tests/integration/test_etcdctl_v3_ours.py
compares the two tools against live members.
"""

from __future__ import annotations

import struct

import pytest

from flotilla.etcd.api import kv_pb2, rpc_pb2
from flotilla.etcdctl.v3 import main
from flotilla.etcdctl.v3.cmdline import parse_int
from flotilla.etcdctl.v3.gojson import to_go
from flotilla.etcdctl.v3.goquote import argify, go_unquote
from flotilla.etcdctl.v3.kv import parse_compare, parse_request_op, prefix_end
from flotilla.etcdctl.v3.snapshot import Crc32c
from flotilla.etcdctl.v3.textfmt import humanize_bytes, render_table, tabwrite
from flotilla.etcdctl.v3.watch import parse_watch_args
from flotilla.gotext import go_json


def run(capsys, monkeypatch, *argv: str, env: dict | None = None) -> tuple[int, str, str]:
    for key in list(__import__("os").environ):
        if key.startswith("ETCDCTL_"):
            monkeypatch.delenv(key)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as stopped:
        main(list(argv))
    captured = capsys.readouterr()
    return stopped.value.code, captured.out, captured.err


# --- exit codes and error text (ctlv3/command/error.go) ---


@pytest.mark.parametrize(
    ("argv", "code", "error"),
    [
        (["get"], 128, "Error: get command needs one argument as key and an optional argument as "
         "range_end\n"),
        (["put"], 128, "Error: put command needs 1 argument and input from stdin or 2 arguments\n"),
        (["del", "a", "b", "c"], 128, "Error: del command needs one argument as key and an optional argument "
         "as range_end\n"),
        (["get", "a", "--order", "x"], 4, "Error: bad sort order x\n"),
        (["get", "a", "--consistency", "x"], 4, 'Error: unknown consistency flag "x"\n'),
        (["-w", "yaml", "version"], 0, ""),
        (["lease", "grant", "x"], 128, 'Error: bad TTL (strconv.ParseInt: parsing "x": invalid syntax)\n'),
        (["lease", "revoke", "zz"], 128, 'Error: bad lease ID arg (strconv.ParseInt: parsing "zz": invalid '
         'syntax), expecting ID in Hex\n'),
        (["member", "remove"], 128, "Error: member ID is not provided\n"),
        (["move-leader", "zz"], 128, 'Error: strconv.ParseUint: parsing "zz": invalid syntax\n'),
        (["compaction", "x"], 1, 'Error: strconv.ParseInt: parsing "x": invalid syntax\n'),
        (["watch"], 128, "Error: bad number of arguments\n"),
        (["watch", "a", "--"], 128, "Error: bad number of arguments (found separator --, but no commands)\n"),
        (["check", "perf", "--load", "q"], 4, "Error: unknown load option q\n"),
        (["snapshot", "status"], 128, "Error: snapshot status requires exactly one argument\n"),
        (["txn", "a"], 128, "Error: txn command does not accept argument\n"),
    ],
)  # fmt: skip
def test_argument_errors(capsys, monkeypatch, argv, code, error):
    got_code, _out, err = run(capsys, monkeypatch, *argv)
    assert (got_code, err) == (code, error)


def test_unknown_command_suggests_like_cobra(capsys, monkeypatch):
    code, _out, err = run(capsys, monkeypatch, "m")
    suggestions = "\n\nDid you mean this?\n\tmove-leader\n\tmember\n\tmake-mirror\n\tmigrate\n"
    message = f'unknown command "m" for "etcdctl"{suggestions}'
    assert code == 1
    assert err == f"Error: {message}\nRun 'etcdctl --help' for usage.\nError: {message}\n"


def test_flag_error_prints_usage_and_the_error_twice(capsys, monkeypatch):
    code, out, err = run(capsys, monkeypatch, "get", "--limit", "x", "a")
    text = 'invalid argument "x" for "--limit" flag: strconv.ParseInt: parsing "x": invalid syntax'
    assert code == 1
    assert err == f"Error: {text}\n\nError: {text}\n"
    assert out.startswith("NAME:\n\tget - Gets the key or a range of keys\n\nUSAGE:\n\tetcdctl get [options]")
    assert '      --consistency="l"\t\t\tLinearizable(l) or Serializable(s)\n' in out


def test_help_is_the_usage_text(capsys, monkeypatch):
    code, out, _err = run(capsys, monkeypatch, "lease", "grant", "-h")
    assert code == 0
    assert out.startswith(
        "NAME:\n\tlease grant - Creates leases\n\nUSAGE:\n\tetcdctl lease grant <ttl> [flags]\n"
    )
    assert "OPTIONS:\n  -h, --help[=false]\thelp for grant\n\nGLOBAL OPTIONS:\n" in out
    assert '  -w, --write-out="simple"\t\t\tset the output format' in out


def test_version(capsys, monkeypatch):
    assert run(capsys, monkeypatch, "version") == (0, "etcdctl version: 3.4.23\nAPI version: 3.4\n", "")


def test_environment_shadowed_by_a_flag_is_fatal(capsys, monkeypatch):
    code, _out, err = run(capsys, monkeypatch, "--endpoints=127.0.0.1:1", "get", "a",
                          env={"ETCDCTL_ENDPOINTS": "127.0.0.1:2"})  # fmt: skip
    assert code == 1
    shadowed = (
        ' C | pkg/flags: conflicting environment variable "ETCDCTL_ENDPOINTS" is shadowed by '
        "corresponding command-line flag (either unset environment variable or disable flag)\n"
    )
    assert err.endswith(shadowed)


def test_unsupported_output_format(capsys, monkeypatch):
    assert run(capsys, monkeypatch, "-w", "yaml", "get", "a") == (4, "", "Error: unsupported output format\n")


# --- formatting ---


def test_go_formats():
    assert humanize_bytes(24576) == "25 kB"
    assert humanize_bytes(2_100_000) == "2.1 MB"
    assert humanize_bytes(7) == "7 B"
    with pytest.raises(ValueError, match="value out of range"):
        parse_int("8000000000000000", 16)


def test_table_like_tablewriter():
    table = render_table(["endpoint", "hash"], [["127.0.0.1:23791", "2654462887"]])
    assert table == (
        "+-----------------+------------+\n"
        "|    ENDPOINT     |    HASH    |\n"
        "+-----------------+------------+\n"
        "| 127.0.0.1:23791 | 2654462887 |\n"
        "+-----------------+------------+\n"
    )


def test_tabwriter_pads_columns_with_tabs():
    assert tabwrite("  -h, --help[=false]\thelp\n      --keys[=false]\tkeys\n") == (
        "  -h, --help[=false]\thelp\n      --keys[=false]\tkeys\n"
    )
    assert tabwrite("a\tb\nlonger-than-eight\tc\n") == "a\t\t\tb\nlonger-than-eight\tc\n"


def test_json_is_gos_encoding_of_the_gogo_structs():
    resp = rpc_pb2.TxnResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=1, revision=9, raft_term=2), succeeded=True,
        responses=[rpc_pb2.ResponseOp(response_range=rpc_pb2.RangeResponse(
            header=rpc_pb2.ResponseHeader(revision=9),
            kvs=[kv_pb2.KeyValue(key=b"a", create_revision=5, mod_revision=9, version=3, value=b"3")],
            count=1))],
    )  # fmt: skip
    assert go_json(to_go(resp)) == (
        '{"header":{"cluster_id":1,"revision":9,"raft_term":2},"succeeded":true,"responses":[{"Response":'
        '{"ResponseRange":{"header":{"revision":9},"kvs":[{"key":"YQ==","create_revision":5,"mod_revision":9,'
        '"version":3,"value":"Mw=="}],"count":1}}}]}'
    )
    member = rpc_pb2.MemberListResponse(members=[rpc_pb2.Member(ID=7, name="m1", peerURLs=["http://x"])])
    assert go_json(to_go(member)) == '{"members":[{"ID":7,"name":"m1","peerURLs":["http://x"]}]}'


# --- txn and watch input ---


def test_txn_compare_lines():
    cmp = parse_compare('value("t") = "1"')
    assert (cmp.target, cmp.key, cmp.value, cmp.result) == (rpc_pb2.Compare.VALUE, b"t", b"1", 0)
    cmp = parse_compare('mod("t") > "4"')
    assert (cmp.target, cmp.mod_revision, cmp.result) == (rpc_pb2.Compare.MOD, 4, rpc_pb2.Compare.GREATER)
    with pytest.raises(ValueError, match="unknown target foo"):
        parse_compare('foo("t") = "1"')
    with pytest.raises(ValueError, match="invalid txn compare request"):
        parse_compare('ver("t") = "x"')


def test_txn_request_lines():
    op = parse_request_op("put t 2 --prev-kv")
    assert (op.request_put.key, op.request_put.value, op.request_put.prev_kv) == (b"t", b"2", True)
    op = parse_request_op("get a --prefix")
    assert (op.request_range.key, op.request_range.range_end) == (b"a", b"b")
    with pytest.raises(ValueError, match="invalid txn request: bogus t"):
        parse_request_op("bogus t")


def test_argify_keeps_etcdctl_quirks():
    assert argify('put "a b" c') == ["put", "a b", "c"]
    # single quotes are cut at len(words)-1, as etcdctl 3.4 does
    assert argify("put a 'hello'") == ["put", "a", "h"]
    assert go_unquote('"\\x41\\n"') == "A\n"


def test_watch_arguments_and_exec_command():
    assert parse_watch_args(["watch", "foo", "--", "echo", "hi"], ["foo", "echo", "hi"], "", "") == (
        ["foo"], ["echo", "hi"])  # fmt: skip
    assert parse_watch_args(["watch", "a", "b"], ["a", "b"], "", "") == (["a", "b"], [])
    with pytest.raises(ValueError, match="conflicting environment key"):
        parse_watch_args(["watch", "foo"], ["foo"], "bar", "")


def test_prefix_end():
    assert prefix_end(b"a") == b"b"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff") == b"\x00"


# --- snapshot status ---


def test_crc32c_matches_the_castagnoli_check_value():
    digest = Crc32c()
    digest.update(b"123456789")
    assert digest.value == 0xE3069283


def test_snapshot_status_of_a_bbolt_file(tmp_path, capsys, monkeypatch):
    path = tmp_path / "db"
    path.write_bytes(_tiny_bolt())
    code, out, err = run(capsys, monkeypatch, "snapshot", "status", str(path), "-w", "json")
    digest = Crc32c()
    for piece in (b"key", struct.pack(">QBQ", 3, ord("_"), 0), b"v"):
        digest.update(piece)
    assert (code, err) == (0, "")
    assert out == f'{{"hash":{digest.value},"revision":3,"totalKey":1,"totalSize":{4 * 4096}}}\n'


def _tiny_bolt() -> bytes:
    """A bbolt file by hand: two metas, a root leaf holding bucket ``key`` inline with one pair."""
    page = 4096

    def meta(index: int, txid: int) -> bytes:
        body = struct.pack("<IIIIQQQQQ", 0xED0CDAED, 2, page, 0, 3, 0, 2, 4, txid)
        checksum = 0xCBF29CE484222325
        for byte in body:
            checksum = ((checksum ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        head = struct.pack("<QHHI", index, 0x04, 0, 0)
        return (head + body + struct.pack("<Q", checksum)).ljust(page, b"\0")

    key = struct.pack(">QBQ", 3, ord("_"), 0)
    inner = struct.pack("<QHHI", 0, 0x02, 1, 0) + struct.pack("<IIII", 0, 16, len(key), 1) + key + b"v"
    bucket = struct.pack("<QQ", 0, 0) + inner
    root = struct.pack("<QHHI", 3, 0x02, 1, 0) + struct.pack("<IIII", 1, 16, 3, len(bucket)) + b"key" + bucket
    freelist = struct.pack("<QHHI", 2, 0x10, 0, 0).ljust(page, b"\0")
    return meta(0, 1) + meta(1, 0) + freelist + root.ljust(page, b"\0")
