"""Key-value verbs: ``put``, ``get``, ``del``, ``txn`` and ``compaction`` (ctlv3's put/get/del/txn/
compaction commands): the same argument checks, in the same order, with the same words."""

from __future__ import annotations

import re
import sys

from flotilla.etcd.api import rpc_pb2
from flotilla.etcdctl.v3.cli import Ctl
from flotilla.etcdctl.v3.cmdline import Command, Flag, UsageError, parse_flags, parse_int
from flotilla.etcdctl.v3.errors import (
    EXIT_BAD_ARGS,
    EXIT_BAD_CONNECTION,
    EXIT_BAD_FEATURE,
    EXIT_ERROR,
    EXIT_INVALID_INPUT,
    CtlExit,
    fail,
)
from flotilla.etcdctl.v3.goquote import argify, go_unquote
from flotilla.gotext import go_quote

PUT_LONG = """
Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
"""


def put_command(run=None) -> Command:
    return Command("put [options] <key> <value> (<value> can also be given from stdin)",
                   "Puts the given key into the store", run or _put, long=PUT_LONG, flags=[
        Flag("lease", "string", "0", "lease ID (in hexadecimal) to attach to the key"),
        Flag("prev-kv", "bool", False, "return the previous key-value pair before modification"),
        Flag("ignore-value", "bool", False, "updates the key using its current value"),
        Flag("ignore-lease", "bool", False, "updates the key using its current lease"),
    ])  # fmt: skip


def get_command(run=None) -> Command:
    return Command("get [options] <key> [range_end]", "Gets the key or a range of keys", run or _get, flags=[
        Flag("consistency", "string", "l", "Linearizable(l) or Serializable(s)"),
        Flag("order", "string", "", "Order of results; ASCEND or DESCEND (ASCEND by default)"),
        Flag("sort-by", "string", "", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION"),
        Flag("limit", "int64", 0, "Maximum number of results"),
        Flag("prefix", "bool", False, "Get keys with matching prefix"),
        Flag("from-key", "bool", False, "Get keys that are greater than or equal to the given key using byte "
             "compare"),
        Flag("rev", "int64", 0, "Specify the kv revision"),
        Flag("keys-only", "bool", False, "Get only the keys"),
        Flag("print-value-only", "bool", False, 'Only write values when using the "simple" output format'),
    ])  # fmt: skip


def del_command(run=None) -> Command:
    return Command("del [options] <key> [range_end]",
                   "Removes the specified key or range of keys [key, range_end)", run or _del, flags=[
        Flag("prefix", "bool", False, "delete keys with matching prefix"),
        Flag("prev-kv", "bool", False, "return deleted key-value pairs"),
        Flag("from-key", "bool", False, "delete keys that are greater than or equal to the given key using "
             "byte compare"),
    ])  # fmt: skip


def commands() -> list[Command]:
    return [
        put_command(),
        get_command(),
        del_command(),
        Command("txn [options]", "Txn processes all the requests in one transaction", _txn,
                flags=[Flag("interactive", "bool", False, "Input transaction in interactive mode", "i")]),
        Command("compaction [options] <revision>", "Compacts the event history in etcd", _compaction,
                flags=[Flag("physical", "bool", False,
                            "'true' to wait for compaction to physically remove all old revisions")]),
    ]  # fmt: skip


def _b(text: str) -> bytes:
    # Arguments carry bytes that were not UTF-8 as surrogates: give them back unchanged.
    return text.encode("utf-8", "surrogateescape")


def prefix_end(key: bytes) -> bytes:
    """clientv3.GetPrefixRangeEnd: the smallest key above every key with this prefix (``\\x00``: none)."""
    end = bytearray(key)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"


# --- put ---


def put_request(cmd: Command, args: list[str], stdin=None) -> rpc_pb2.PutRequest:
    """getPutOp."""
    usage = "put command needs 1 argument and input from stdin or 2 arguments"
    if not args:
        fail(EXIT_BAD_ARGS, usage)
    ignore_value = cmd.flag("ignore-value")
    if ignore_value and len(args) > 1:
        fail(EXIT_BAD_ARGS, "put command needs only 1 argument when 'ignore-value' is set")
    value = b""
    if not ignore_value:
        if len(args) > 1:
            value = _b(args[1])
        else:
            value = (stdin or sys.stdin.buffer).read()
            if not value:
                fail(EXIT_BAD_ARGS, usage)
    try:
        lease = parse_int(cmd.flag("lease"), 16)
    except ValueError as e:
        fail(EXIT_BAD_ARGS, f"bad lease ID ({e}), expecting ID in Hex")
    return rpc_pb2.PutRequest(
        key=_b(args[0]), value=value, lease=lease, prev_kv=cmd.flag("prev-kv"),
        ignore_value=ignore_value, ignore_lease=cmd.flag("ignore-lease"),
    )  # fmt: skip


def _put(ctl: Ctl) -> None:
    request = put_request(ctl.cmd, ctl.args)
    client = ctl.client()
    resp = client.call_or_exit(client.kv.Put, request, ctl.command_timeout_s)
    ctl.display.put(resp)


# --- get ---

_ORDERS = {"ASCEND": 1, "DESCEND": 2, "": 0}
_TARGETS = {"CREATE": 2, "KEY": 0, "MODIFY": 3, "VALUE": 4, "VERSION": 1, "": 0}


def range_request(cmd: Command, args: list[str]) -> rpc_pb2.RangeRequest:
    """getGetOp."""
    if not args:
        fail(EXIT_BAD_ARGS, "get command needs one argument as key and an optional argument as range_end")
    prefix, from_key = cmd.flag("prefix"), cmd.flag("from-key")
    if prefix and from_key:
        fail(EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one")
    request = rpc_pb2.RangeRequest()
    consistency = cmd.flag("consistency")
    if consistency == "s":
        request.serializable = True
    elif consistency != "l":
        fail(EXIT_BAD_FEATURE, f'unknown consistency flag "{consistency}"')
    request.key, request.range_end = _key_range(args, prefix, from_key)
    request.limit = cmd.flag("limit")
    if cmd.flag("rev") > 0:
        request.revision = cmd.flag("rev")
    order = _ORDERS.get(cmd.flag("order").upper())
    if order is None:
        fail(EXIT_BAD_FEATURE, f"bad sort order {cmd.flag('order')}")
    target = _TARGETS.get(cmd.flag("sort-by").upper())
    if target is None:
        fail(EXIT_BAD_FEATURE, f"bad sort target {cmd.flag('sort-by')}")
    if target == 0 and order == 1:
        order = 0  # clientv3.WithSort: the server already returns keys in ascending order
    request.sort_order, request.sort_target = order, target
    request.keys_only = cmd.flag("keys-only")
    return request


def _get(ctl: Ctl) -> None:
    request = range_request(ctl.cmd, ctl.args)
    client = ctl.client()
    resp = client.call_or_exit(client.kv.Range, request, ctl.command_timeout_s)
    if ctl.flag("print-value-only"):
        if ctl.display.name != "simple":
            fail(EXIT_BAD_ARGS, "print-value-only is only for `--write-out=simple`")
        ctl.display.value_only = True
    ctl.display.get(resp)


# --- del ---


def delete_request(cmd: Command, args: list[str]) -> rpc_pb2.DeleteRangeRequest:
    """getDelOp."""
    if not args or len(args) > 2:
        fail(EXIT_BAD_ARGS, "del command needs one argument as key and an optional argument as range_end")
    prefix, from_key = cmd.flag("prefix"), cmd.flag("from-key")
    if prefix and from_key:
        fail(EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one")
    request = rpc_pb2.DeleteRangeRequest()
    request.key, request.range_end = _key_range(args, prefix, from_key)
    request.prev_kv = cmd.flag("prev-kv")
    return request


def _key_range(args: list[str], prefix: bool, from_key: bool) -> tuple[bytes, bytes]:
    """get's and del's key and range end: an explicit range end, or ``--prefix``'s or ``--from-key``'s (at
    most one of them); with an empty key either one means the whole keyspace, from ``\\x00``."""
    key, range_end = _b(args[0]), b""
    if len(args) > 1:
        if prefix or from_key:
            fail(
                EXIT_BAD_ARGS,
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            )
        range_end = _b(args[1])
    if prefix:
        key, range_end = (key, prefix_end(key)) if key else (b"\x00", b"\x00")
    if from_key:
        key, range_end = key or b"\x00", b"\x00"
    return key, range_end


def _del(ctl: Ctl) -> None:
    request = delete_request(ctl.cmd, ctl.args)
    client = ctl.client()
    resp = client.call_or_exit(client.kv.DeleteRange, request, ctl.command_timeout_s)
    ctl.display.delete(resp)


# --- txn ---


def _txn(ctl: Ctl) -> None:
    if ctl.args:
        fail(EXIT_BAD_ARGS, "txn command does not accept argument")
    interactive = ctl.flag("interactive")
    client = ctl.client()
    reader = sys.stdin.buffer
    request = rpc_pb2.TxnRequest()

    def prompt(text: str) -> None:
        if interactive:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    prompt("compares:")
    request.compare.extend(_read_lines(reader, parse_compare))
    prompt("success requests (get, put, del):")
    request.success.extend(_read_lines(reader, parse_request_op))
    prompt("failure requests (get, put, del):")
    request.failure.extend(_read_lines(reader, parse_request_op))
    resp = client.call_or_exit(client.kv.Txn, request, None)
    ctl.display.txn(resp)


def _read_lines(reader, parse) -> list:
    items = []
    while True:
        raw = reader.readline()
        if not raw.endswith(b"\n"):
            fail(EXIT_INVALID_INPUT, "EOF")  # bufio.ReadString('\n') at the end of input
        line = raw.decode("utf-8", "surrogateescape").strip()
        if not line:
            return items
        try:
            items.append(parse(line))
        except ValueError as e:
            fail(EXIT_INVALID_INPUT, str(e))


def parse_request_op(line: str) -> rpc_pb2.RequestOp:
    """parseRequestUnion: one line of ``put``/``get``/``del`` with their flags."""
    args = argify(line)
    if len(args) < 2:
        raise ValueError(f"invalid txn compare request: {line}")
    builders = {
        "put": (put_command, lambda cmd, a: rpc_pb2.RequestOp(request_put=put_request(cmd, a))),
        "get": (get_command, lambda cmd, a: rpc_pb2.RequestOp(request_range=range_request(cmd, a))),
        "del": (del_command, lambda cmd, a: rpc_pb2.RequestOp(request_delete_range=delete_request(cmd, a))),
    }
    matches = [name for name in builders if name == args[0]] or [n for n in builders if n.startswith(args[0])]
    if len(matches) != 1:
        raise ValueError(f"invalid txn request: {line}")
    make_command, build = builders[matches[0]]
    cmd = make_command()
    try:
        positional = parse_flags(cmd, args[1:])
    except UsageError:
        raise ValueError(f"invalid txn request: {line}") from None
    return build(cmd, positional)


_RESULTS = {"=": rpc_pb2.Compare.EQUAL, "!=": rpc_pb2.Compare.NOT_EQUAL, ">": rpc_pb2.Compare.GREATER,
            "<": rpc_pb2.Compare.LESS}  # fmt: skip
_QUOTED = r'("(?:[^"\\]|\\.)*"|`[^`]*`)'
_COMPARE = re.compile(r"\s*" + _QUOTED + r"\)\s*(\S+)\s*" + _QUOTED)


def parse_compare(line: str) -> rpc_pb2.Compare:
    """parseCompare: ``<target>("<key>") <op> "<value>"``."""
    target, sep, rest = line.partition("(")
    if not sep:
        raise ValueError(f"malformed comparison: {line}")
    match = _COMPARE.match(rest)
    if match is None:
        raise ValueError(_malformed(line, target, rest))
    try:
        key, op, value = go_unquote(match.group(1)), match.group(2), go_unquote(match.group(3))
    except ValueError as e:
        raise ValueError(f"malformed comparison: {line} ({e})") from None
    cmp = rpc_pb2.Compare(key=_b(key))
    numeric = {"ver": "version", "version": "version", "c": "create_revision", "create": "create_revision",
               "m": "mod_revision", "mod": "mod_revision"}  # fmt: skip
    targets = {"version": rpc_pb2.Compare.VERSION, "create_revision": rpc_pb2.Compare.CREATE,
               "mod_revision": rpc_pb2.Compare.MOD}  # fmt: skip
    if target in numeric:
        try:
            number = parse_int(value)
        except ValueError:
            raise ValueError(f"invalid txn compare request: {line}") from None
        setattr(cmp, numeric[target], number)
        cmp.target = targets[numeric[target]]
    elif target in ("val", "value"):
        cmp.target, cmp.value = rpc_pb2.Compare.VALUE, _b(value)
    elif target == "lease":
        # etcdctl 3.4 hands clientv3.Compare a string for a lease: mustInt64orLeaseID panics.
        _panic("bad value")
    else:
        raise ValueError(f"malformed comparison: {line} (unknown target {target})")
    if op not in _RESULTS:
        _panic("Unknown result op")
    cmp.result = _RESULTS[op]
    return cmp


def _malformed(line: str, target: str, rest: str) -> str:
    # fmt.Sscanf stops at the first failure; etcdctl prints what it had parsed so far.
    first = re.match(r"\s*" + _QUOTED, rest)
    key = go_unquote(first.group(1)) if first else ""
    return f'malformed comparison: {line}; got {target}({go_quote(key)})  ""'


def _panic(message: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"panic: {message}\n\n")
    raise CtlExit(EXIT_BAD_CONNECTION)  # Go's exit status after a panic is 2


# --- compaction ---


def _compaction(ctl: Ctl) -> None:
    if len(ctl.args) != 1:
        fail(EXIT_BAD_ARGS, "compaction command needs 1 argument")
    try:
        revision = parse_int(ctl.args[0])
    except ValueError as e:
        fail(EXIT_ERROR, str(e))
    client = ctl.client()
    request = rpc_pb2.CompactionRequest(revision=revision, physical=ctl.flag("physical"))
    client.call_or_exit(client.kv.Compact, request, ctl.command_timeout_s)
    sys.stdout.write(f"compacted revision {revision}\n")
