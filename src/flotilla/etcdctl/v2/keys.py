"""The v2 key verbs of etcdctl 3.4 (ctlv2/command/*_command.go): the request each one sends through
the Go client's KeysAPI, what it prints and with which exit code it fails."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlencode

from flotilla.etcdctl.v2.client import Client, ClientError, EtcdError, HTTPAnswer, Request, decode_json
from flotilla.etcdctl.v2.context import EXIT_BAD_ARGS, EXIT_SERVER_ERROR, Context
from flotilla.etcdctl.v2.output import KeysResponse, print_response

__all__ = [
    "exec_watch",
    "get",
    "ls",
    "mk",
    "mkdir",
    "rm",
    "rmdir",
    "set_",
    "setdir",
    "update",
    "updatedir",
    "watch",
]

_FORM = "application/x-www-form-urlencoded"
_EMPTY_BODY = "client: response body is empty"
_INVALID_JSON = "client: response is invalid json. The endpoint is probably not valid etcd cluster endpoint"


def _key_path(key: str) -> str:
    return "/v2/keys" + (key if key.startswith("/") else "/" + key)


def _encode(params: dict[str, str]) -> str:
    # Go's url.Values.Encode: keys sorted, QueryEscape'd
    return urlencode(sorted(params.items()))


def _unmarshal(answer: HTTPAnswer) -> KeysResponse:
    """The Go client's unmarshalHTTPResponse."""
    if answer.status in (200, 201):
        if not answer.body:
            raise ClientError(_EMPTY_BODY)
        try:
            body = decode_json(answer.body)
        except ValueError:
            raise ClientError(_INVALID_JSON) from None
        if not isinstance(body, dict):
            raise ClientError(_INVALID_JSON)
        return KeysResponse.from_body(body, int(answer.headers.get("x-etcd-index") or 0))
    try:
        body = decode_json(answer.body)
    except ValueError:
        raise ClientError(_INVALID_JSON) from None
    raise EtcdError(body if isinstance(body, dict) else {})


def _call(ctx: Context, client: Client, request: Request, one_shot: bool = False) -> KeysResponse:
    client.deadline = ctx.deadline()
    try:
        return _unmarshal(client.do(request, one_shot=one_shot))
    except ClientError as exc:
        ctx.handle_error(EXIT_SERVER_ERROR, exc)
        raise AssertionError("unreachable") from exc


def _set_request(key: str, value: str, ttl: int, *, dir_: bool = False, prev_exist: str = "",
                 prev_value: str = "", prev_index: int = 0) -> Request:  # fmt: skip
    """The Go client's setAction: a PUT with value/ttl in the form and the conditions in the query."""
    params: dict[str, str] = {}
    form: dict[str, str] = {}
    if dir_:
        params["dir"] = "true"
    else:
        if prev_value:
            params["prevValue"] = prev_value
        form["value"] = value
    if prev_index:
        params["prevIndex"] = str(prev_index & (2**64 - 1))
    if prev_exist:
        params["prevExist"] = prev_exist
    if ttl > 0:
        form["ttl"] = str(ttl)
    return Request("PUT", _key_path(key), _encode(params), _encode(form).encode(), _FORM)


def _key_arg(ctx: Context) -> str:
    if not ctx.args:
        ctx.handle_error(EXIT_BAD_ARGS, Exception("key required"))
    return ctx.args[0]


def _value_arg(ctx: Context) -> str:
    # etcdctl's argOrStdin: the second argument, else all of stdin (nothing there is an error)
    if len(ctx.args) > 1:
        return ctx.args[1]
    try:
        data = sys.stdin.read() if sys.stdin is not None else ""
    except (OSError, ValueError):
        data = ""
    if not data:
        ctx.handle_error(EXIT_BAD_ARGS, Exception("value required"))
    return data


def set_(ctx: Context) -> None:
    client = ctx.client()
    key = _key_arg(ctx)
    value = _value_arg(ctx)
    request = _set_request(key, value, int(ctx.flags["ttl"]), prev_value=str(ctx.flags["swap-with-value"]),
                           prev_index=int(ctx.flags["swap-with-index"]))  # fmt: skip
    print_response(_call(ctx, client, request), ctx.output)


def mk(ctx: Context) -> None:
    client = ctx.client()
    key = _key_arg(ctx)
    value = _value_arg(ctx)
    ttl = int(ctx.flags["ttl"])
    if ctx.flags["in-order"]:
        form = {"value": value, **({"ttl": str(ttl)} if ttl > 0 else {})}
        request = Request("POST", _key_path(key), "", _encode(form).encode(), _FORM)
        response = _call(ctx, client, request)
    else:
        # prevExist=false: mk never overwrites; the Go client sends such a create only once
        response = _call(ctx, client, _set_request(key, value, ttl, prev_exist="false"), one_shot=True)
    print_response(response, ctx.output)


def update(ctx: Context) -> None:
    client = ctx.client()
    key = _key_arg(ctx)
    value = _value_arg(ctx)
    print_response(_call(ctx, client, _set_request(key, value, int(ctx.flags["ttl"]), prev_exist="true")),
                   ctx.output)  # fmt: skip


def _dir_verb(ctx: Context, prev_exist: str) -> None:
    client = ctx.client()
    key = _key_arg(ctx)
    request = _set_request(key, "", int(ctx.flags["ttl"]), dir_=True, prev_exist=prev_exist)
    response = _call(ctx, client, request, one_shot=prev_exist == "false")
    if ctx.output != "simple":
        print_response(response, ctx.output)


def mkdir(ctx: Context) -> None:
    _dir_verb(ctx, "false")


def setdir(ctx: Context) -> None:
    _dir_verb(ctx, "")


def updatedir(ctx: Context) -> None:
    _dir_verb(ctx, "true")


def _delete(ctx: Context, *, dir_: bool, recursive: bool, prev_value: str = "", prev_index: int = 0) -> None:
    client = ctx.client()
    key = _key_arg(ctx)
    params: dict[str, str] = {}
    if prev_value:
        params["prevValue"] = prev_value
    if prev_index:
        params["prevIndex"] = str(prev_index & (2**64 - 1))
    if dir_:
        params["dir"] = "true"
    if recursive:
        params["recursive"] = "true"
    request = Request("DELETE", _key_path(key), _encode(params), None, _FORM)
    response = _call(ctx, client, request, one_shot=True)
    if not (response.node or {}).get("dir") or ctx.output != "simple":
        print_response(response, ctx.output)


def rm(ctx: Context) -> None:
    _delete(ctx, dir_=bool(ctx.flags["dir"]), recursive=bool(ctx.flags["recursive"]),
            prev_value=str(ctx.flags["with-value"]), prev_index=int(ctx.flags["with-index"]))  # fmt: skip


def rmdir(ctx: Context) -> None:
    _delete(ctx, dir_=True, recursive=False)


def _get_request(key: str, *, recursive: bool, sort: bool, quorum: bool) -> Request:
    params = {"recursive": _bool(recursive), "sorted": _bool(sort), "quorum": _bool(quorum)}
    return Request("GET", _key_path(key), _encode(params))


def _bool(value: object) -> str:
    return "true" if value else "false"


def get(ctx: Context) -> None:
    client = ctx.client()
    key = _key_arg(ctx)
    request = _get_request(
        key, recursive=False, sort=bool(ctx.flags["sort"]), quorum=bool(ctx.flags["quorum"])
    )
    response = _call(ctx, client, request)
    node = response.node or {}
    if node.get("dir"):
        sys.stdout.flush()
        print(f"{node.get('key', '')}: is a directory", file=sys.stderr)
        raise SystemExit(1)
    print_response(response, ctx.output)


def ls(ctx: Context) -> None:
    client = ctx.client()
    key = ctx.args[0] if ctx.args else "/"
    request = _get_request(key, recursive=bool(ctx.flags["recursive"]), sort=bool(ctx.flags["sort"]),
                           quorum=bool(ctx.flags["quorum"]))  # fmt: skip
    response = _call(ctx, client, request)
    if ctx.output != "simple":
        print_response(response, ctx.output)
        return
    node = response.node or {}
    if not node.get("dir"):
        print(node.get("key", ""))
    slash = bool(ctx.flags["p"])
    for child in node.get("nodes") or []:
        _print_tree(child, slash)


def _print_tree(node: dict, slash: bool) -> None:
    print(node.get("key", "") + ("/" if slash and node.get("dir") else ""))
    for child in node.get("nodes") or []:
        _print_tree(child, slash)


class _Watcher:
    """The Go client's httpWatcher: one long poll per event, resuming after the last event's index."""

    def __init__(self, ctx: Context, client: Client, key: str, after_index: int, recursive: bool) -> None:
        self.ctx, self.client, self.key, self.recursive = ctx, client, key, recursive
        self.wait_index = (after_index + 1) if after_index > 0 else 0

    def next(self) -> KeysResponse:
        while True:
            params = {"wait": "true", "waitIndex": str(self.wait_index), "recursive": _bool(self.recursive)}
            request = Request("GET", _key_path(self.key), _encode(params), wait=True)
            try:
                response = _unmarshal(self.client.do(request))
            except ClientError as exc:
                if str(exc) == _EMPTY_BODY:
                    continue  # the server ended an idle poll: ask again
                self.ctx.handle_error(EXIT_SERVER_ERROR, exc)
                raise AssertionError("unreachable") from exc
            self.wait_index = int((response.node or {}).get("modifiedIndex", 0)) + 1
            return response


def watch(ctx: Context) -> None:
    client = ctx.client()
    key = _key_arg(ctx)
    recursive = bool(ctx.flags["recursive"])
    watcher = _Watcher(ctx, client, key, int(ctx.flags["after-index"]), recursive)
    try:
        while True:
            response = watcher.next()
            node = response.node or {}
            if node.get("dir"):
                continue
            if recursive:
                print(f"[{response.action}] {node.get('key', '')}")
            print_response(response, ctx.output)
            sys.stdout.flush()
            if not ctx.flags["forever"]:
                return
    except KeyboardInterrupt:
        raise SystemExit(0) from None  # etcdctl exits 0 on Ctrl-C


def exec_watch(ctx: Context) -> None:
    client = ctx.client()
    args = ctx.args
    if len(args) < 2:
        ctx.handle_error(EXIT_BAD_ARGS, Exception("key and command to exec required"))
    if "--" in args[1:]:
        key, command = args[0], args[2:]
    else:
        # what etcdctl does when the flag parser consumed the "--": the key is the last argument
        key, command = args[-1], args[:-1]
    watcher = _Watcher(ctx, client, key, int(ctx.flags["after-index"]), bool(ctx.flags["recursive"]))
    children: list = []
    try:
        while True:
            response = watcher.next()
            node = response.node or {}
            if node.get("dir"):
                print(f"Ignored dir {node.get('key', '')} change", file=sys.stderr)
                continue
            children = [child for child in children if child.poll() is None]  # reap finished ones
            children.append(_start(command, response))
    except KeyboardInterrupt:
        raise SystemExit(0) from None


def _start(command: list[str], response: KeysResponse):
    import subprocess

    node = response.node or {}
    env = {
        **os.environ,
        "ETCD_WATCH_ACTION": response.action,
        "ETCD_WATCH_MODIFIED_INDEX": str(node.get("modifiedIndex", 0)),
        "ETCD_WATCH_KEY": node.get("key", ""),
        "ETCD_WATCH_VALUE": node.get("value", ""),
    }
    sys.stdout.flush()
    try:
        return subprocess.Popen(command, env=env)
    except OSError:
        # Go's exec error text, printed without a newline as etcdctl does
        sys.stderr.write(f'exec: "{command[0]}": executable file not found in $PATH')
        sys.stderr.flush()
        raise SystemExit(1) from None
