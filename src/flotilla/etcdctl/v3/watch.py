"""``watch`` (ctlv3/command/watch_command.go): one-shot, ``-- exec`` commands and interactive mode.

Events are printed as they arrive; a watch the server cancels ends etcdctl with ``Error: watch is
canceled by the server`` (exit 5), as etcdctl 3.4 does.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading

import grpc

from flotilla.etcd.api import rpc_pb2
from flotilla.etcdctl.v3.cli import Ctl
from flotilla.etcdctl.v3.client import RequestQueue
from flotilla.etcdctl.v3.cmdline import Command, Flag, UsageError, parse_flags
from flotilla.etcdctl.v3.errors import (
    EXIT_BAD_ARGS,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_INVALID_INPUT,
    CtlExit,
    fail,
)
from flotilla.etcdctl.v3.goquote import argify
from flotilla.etcdctl.v3.kv import prefix_end
from flotilla.etcdctl.v3.printers import WatchBatch
from flotilla.gotext import go_quote

BAD_ARGS_NUM = "bad number of arguments"
BAD_ARGS_CONFLICT_ENV = "bad number of arguments (found conflicting environment key)"
BAD_ARGS_SEPARATOR = "bad number of arguments (found separator --, but no commands)"
BAD_ARGS_INTERACTIVE = "args[0] must be 'watch' for interactive calls"
_KNOWN_CANCEL = {
    "etcdserver: mvcc: required revision has been compacted",
    "etcdserver: mvcc: required revision is a future revision",
    "etcdserver: no leader",
}


def watch_command() -> Command:
    return Command("watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
                   "Watches events stream on keys or prefixes", _watch, flags=[
        Flag("interactive", "bool", False, "Interactive mode", "i"),
        Flag("prefix", "bool", False, "Watch on a prefix if prefix is set"),
        Flag("rev", "int64", 0, "Revision to start watching"),
        Flag("prev-kv", "bool", False, "get the previous key-value pair before the event happens"),
    ])  # fmt: skip


def commands() -> list[Command]:
    return [watch_command()]


def parse_watch_args(raw: list[str], command_args: list[str], env_key: str, env_range: str):
    """parseWatchArgs (non-interactive): split the key/range words from the ``-- command``."""
    for i, word in enumerate(raw):
        if word == "watch":
            raw = raw[i + 1 :]
            break
    watch_args = list(command_args)
    exec_exist = "--" in raw
    exec_idx = raw.index("--") if exec_exist else max(len(raw) - 1, 0)
    if exec_exist and exec_idx == len(raw) - 1:
        raise ValueError(BAD_ARGS_SEPARATOR)
    if not exec_exist and len(raw) < 1 and not env_key:
        raise ValueError(BAD_ARGS_NUM)
    if exec_exist and env_key:
        ridx = len(raw) - 1
        for widx in range(len(watch_args) - 1, -1, -1):
            if watch_args[widx] == raw[ridx]:
                ridx -= 1
                continue
            if ridx == exec_idx:
                raise ValueError(BAD_ARGS_CONFLICT_ENV)
    if not exec_exist and watch_args and env_key:
        raise ValueError(BAD_ARGS_CONFLICT_ENV)
    exec_args: list[str] = []
    if exec_exist:
        exec_args = raw[exec_idx + 1 :]
    if env_key:
        watch_args = [env_key, *([env_range] if env_range else []), *watch_args]
    if not exec_exist:
        return watch_args, []
    end = len(watch_args) - 1
    while end >= 0 and watch_args[end] != exec_args[0]:
        end -= 1
    return watch_args[: max(end, 0)], exec_args


def create_request(options: dict, args: list[str]) -> rpc_pb2.WatchRequest:
    """getWatchChan's options as a WatchCreateRequest."""
    if len(args) < 1:
        raise ValueError(BAD_ARGS_NUM)
    key = args[0].encode("utf-8", "surrogateescape")
    create = rpc_pb2.WatchCreateRequest(key=key, start_revision=options["rev"], prev_kv=options["prev-kv"])
    if len(args) == 2:
        if options["prefix"]:
            raise ValueError("`range_end` and `--prefix` are mutually exclusive")
        create.range_end = args[1].encode("utf-8", "surrogateescape")
    if options["prefix"]:
        if not key:
            create.key, create.range_end = b"\x00", b"\x00"
        else:
            create.range_end = prefix_end(key)
    return rpc_pb2.WatchRequest(create_request=create)


def _options(cmd: Command) -> dict:
    return {name: cmd.flag(name) for name in ("rev", "prefix", "prev-kv")}


class _Stream:
    """One Watch stream carrying every watch of this etcdctl (clientv3 shares one per context)."""

    def __init__(self, client) -> None:
        self.client = client
        self.requests = RequestQueue()
        metadata = [*client.metadata, ("hasleader", "true")]  # clientv3.WithRequireLeader
        self.responses = client.watch.Watch(iter(self.requests), wait_for_ready=True, metadata=metadata)

    def send(self, request) -> None:
        self.requests.put(request)

    def close(self) -> None:
        self.requests.end()
        self.responses.cancel()


def _cancel_error(resp) -> str:
    # clientv3 WatchResponse.Err()
    if resp.compact_revision:
        return "etcdserver: mvcc: required revision has been compacted"
    if resp.cancel_reason:
        if resp.cancel_reason in _KNOWN_CANCEL:
            return resp.cancel_reason
        return f"rpc error: code = FailedPrecondition desc = {resp.cancel_reason}"
    return "etcdserver: mvcc: required revision is a future revision"


def _print_batch(ctl: Ctl, resp, exec_args: list[str]) -> None:
    if resp.canceled:
        sys.stderr.write(f"watch was canceled ({_cancel_error(resp)})\n")
        sys.stderr.flush()
    batch = WatchBatch(resp.header, list(resp.events), resp.compact_revision, resp.canceled, False)
    if not resp.events and not resp.canceled and not resp.compact_revision and resp.header.revision:
        sys.stdout.write(f"progress notify: {resp.header.revision}\n")
    ctl.display.watch(batch)
    sys.stdout.flush()
    for ev in resp.events if exec_args else ():
        env = dict(os.environ)
        env["ETCD_WATCH_REVISION"] = str(resp.header.revision)
        env["ETCD_WATCH_EVENT_TYPE"] = go_quote("DELETE" if ev.type == 1 else "PUT")
        env["ETCD_WATCH_KEY"] = go_quote(ev.kv.key)
        env["ETCD_WATCH_VALUE"] = go_quote(ev.kv.value)
        shown = "[" + " ".join(go_quote(a) for a in exec_args) + "]"
        try:
            code = subprocess.run(exec_args, env=env).returncode
        except OSError:
            missing = f"exec: {go_quote(exec_args[0])}: executable file not found in $PATH"
            sys.stderr.write(f"command {shown} error ({missing})\n")
            raise CtlExit(EXIT_ERROR) from None
        if code != 0:
            reason = f"exit status {code}" if code > 0 else f"signal: {_signal_name(-code)}"
            sys.stderr.write(f"command {shown} error ({reason})\n")
            raise CtlExit(EXIT_ERROR)


def _signal_name(number: int) -> str:
    import signal

    names = {signal.SIGKILL: "killed", signal.SIGTERM: "terminated", signal.SIGINT: "interrupt"}
    return names.get(number, f"signal {number}")


def _watch(ctl: Ctl) -> None:
    env_key, env_range = (
        os.environ.get("ETCDCTL_WATCH_KEY", ""),
        os.environ.get("ETCDCTL_WATCH_RANGE_END", ""),
    )
    if not env_key and env_range:
        fail(
            EXIT_BAD_ARGS, f"ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={go_quote(env_range)}"
        )
    if ctl.flag("interactive"):
        _interactive(ctl, env_key, env_range)
        return
    try:
        watch_args, exec_args = parse_watch_args(ctl.raw_args, ctl.args, env_key, env_range)
    except ValueError as e:
        fail(EXIT_BAD_ARGS, str(e))
    client = ctl.client(extra_env=("watch-key", "watch-range-end"))
    try:
        request = create_request(_options(ctl.cmd), watch_args)
    except ValueError as e:
        fail(EXIT_BAD_ARGS, str(e))
    stream = _Stream(client)
    stream.send(request)
    try:
        for resp in stream.responses:
            if resp.created and not resp.events and not resp.canceled:
                continue  # clientv3 keeps the creation answer to itself
            _print_batch(ctl, resp, exec_args)
            if resp.canceled:
                break
    except grpc.RpcError:
        pass
    finally:
        stream.close()
    fail(EXIT_INTERRUPTED, "watch is canceled by the server")


def _interactive(ctl: Ctl, env_key: str, env_range: str) -> None:
    client = ctl.client(extra_env=("watch-key", "watch-range-end"))
    stream = _Stream(client)
    execs: dict[int, list[str]] = {}
    pending: queue.Queue = queue.Queue()

    def receive() -> None:
        try:
            for resp in stream.responses:
                if resp.created:
                    execs[resp.watch_id] = pending.get()
                    if not resp.events and not resp.canceled:
                        continue
                _print_batch(ctl, resp, execs.get(resp.watch_id, []))
        except (grpc.RpcError, CtlExit):
            return

    threading.Thread(target=receive, daemon=True).start()
    try:
        _read_interactive(ctl, stream, pending, env_key, env_range)
    finally:
        stream.close()


def _read_interactive(ctl: Ctl, stream: _Stream, pending: queue.Queue, env_key: str, env_range: str) -> None:
    for raw in iter(sys.stdin.readline, ""):
        if not raw.endswith("\n"):
            break
        line = raw[:-1]
        args = argify(line)
        if not args:
            sys.stderr.write(f"Invalid command: {line} (watch and progress supported)\n")
        elif args[0] == "watch":
            if len(args) < 2 and not env_key:
                sys.stderr.write(f"Invalid command {line} (command type or key is not provided)\n")
                continue
            watch_args, exec_args, options = _interactive_args(args, env_key, env_range)
            try:
                request = create_request(options, watch_args)
            except ValueError as e:
                sys.stderr.write(f"Invalid command {line} ({e})\n")
                continue
            pending.put(exec_args)
            stream.send(request)
        elif args[0] == "progress":
            stream.send(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))
        else:
            sys.stderr.write(f"Invalid command {line} (only support watch)\n")
        sys.stderr.flush()
    fail(EXIT_INVALID_INPUT, "Error reading watch request line: EOF")


def _interactive_args(args: list[str], env_key: str, env_range: str):
    """parseWatchArgs (interactive): the line's own flags and ``-- command``."""
    words = args[1:]
    exec_exist = "--" in words
    if exec_exist and words.index("--") == len(words) - 1:
        fail(EXIT_BAD_ARGS, BAD_ARGS_SEPARATOR)
    cmd = watch_command()
    try:
        positional = parse_flags(cmd, words)
    except UsageError as e:
        fail(EXIT_BAD_ARGS, str(e))
    if not exec_exist and not env_key and not positional:
        fail(EXIT_BAD_ARGS, BAD_ARGS_NUM)
    if not exec_exist and positional and env_key:
        fail(EXIT_BAD_ARGS, BAD_ARGS_CONFLICT_ENV)
    exec_args = words[words.index("--") + 1 :] if exec_exist else []
    watch_args = positional
    if env_key:
        watch_args = [env_key, *([env_range] if env_range else []), *watch_args]
    if exec_exist:
        end = len(watch_args) - 1
        while end >= 0 and watch_args[end] != exec_args[0]:
            end -= 1
        watch_args = watch_args[: max(end, 0)]
    return watch_args, exec_args, _options(cmd)
