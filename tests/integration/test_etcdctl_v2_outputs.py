"""`ETCDCTL_API=2 etcdctl`: Flotilla's verbs against Debian's etcdctl 3.4.23, byte for byte.

One script of commands (every v2 verb, their flags and their error paths) runs from a fresh member each
time: Debian's etcdctl and Flotilla's on real etcd 3.4.23 must print the same stdout and stderr and exit
with the same code; and Debian's etcdctl must see the same on a Flotilla member (`--enable-v2=true`) as
on etcd. Only what legitimately differs between two fresh members is masked: ports, member IDs, the
expiration clock and a TTL that may have ticked. Indexes are written relative to the member's index at
the start of the script (etcd's v2 store already holds its membership records there); that starting
index is checked on its own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import pytest
from processes import REAL_ETCDCTL, interruptible, real_etcd_available, start_member

pytestmark = pytest.mark.skipif(
    not real_etcd_available(), reason="needs Debian's etcd-server and etcd-client"
)

OURS = [os.path.join(os.path.dirname(sys.executable), "etcdctl")]  # the console script
DEAD = "http://127.0.0.1:1"  # nothing listens on port 1


@dataclass(frozen=True)
class Step:
    """One command. ``watch``: runs in the background while ``then`` commands run, until it printed
    ``lines`` lines (then it is interrupted, as with Ctrl-C) or exits by itself."""

    args: tuple[str, ...]
    stdin: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    endpoint: bool = True  # pass --endpoints=<member> first
    then: tuple[tuple[str, ...], ...] = ()
    lines: int = 0


def s(*args: str, **kw) -> Step:
    return Step(tuple(args), **kw)


STEPS = [
    # help, version, usage errors
    s("--version"),
    s("help", "bogus"),
    s("bogus"),
    s("--bogus", "get", "/foo"),
    s("-o", "json", "--output", "json", "get", "/foo"),
    s("set"),
    s("set", "/k"),
    s("get"),
    s("update", "/k"),
    s("rm"),
    s("mkdir"),
    s("rmdir"),
    s("watch"),
    s("exec-watch", "/k"),
    s("set", "--bogus", "/a", "b"),
    s("set", "--ttl", "x", "/a", "b"),
    s("set", "/a", "b", "--ttl"),
    s("get", "--sort=maybe", "/a"),
    s("--timeout", "soon", "get", "/a"),
    s("member", "bogus"),
    s("member", "help"),
    s("help", "member", "add"),
    s("member", "list", "extra"),
    # set / get / mk / update and their failures
    s("set", "/foo", "bar"),
    s("get", "/foo"),
    s("-o", "extended", "get", "/foo"),
    s("-o", "json", "get", "/foo"),
    s("--output=bad", "get", "/foo"),
    s("get", "/nope"),
    s("-o", "json", "get", "/nope"),
    s("-o", "extended", "set", "/foo", "baz"),
    s("-o", "json", "set", "/foo", "q<&>"),
    s("mk", "/foo", "x"),
    s("mk", "/new", "v"),
    s("-o", "extended", "mk", "/new2", "v"),
    s("update", "/foo", "baz"),
    s("update", "/missing", "v"),
    s("-o", "json", "update", "/foo", "q"),
    s("set", "--swap-with-value", "wrong", "/foo", "z"),
    s("set", "--swap-with-value", "q", "/foo", "z"),
    s("set", "-swap-with-index={START+1}", "/foo", "z"),
    s("rm", "--with-value", "wrong", "--with-index", "{START+1}", "/foo"),
    s("set", "/foo", "--ttl", "1000", "later"),
    s("-o", "extended", "get", "/foo"),
    s("-o", "json", "get", "-q", "/foo"),
    s("set", "--", "/neg", "-5"),
    s("set", "/neg2", "--", "-5"),
    s("get", "/neg2"),
    s("set", "/stdin", stdin="from stdin\n"),
    s("-o", "json", "get", "/stdin"),
    s("set", "/spaced key", "a b&c=d"),
    s("get", "/spaced key"),
    # directories
    s("mkdir", "/dir"),
    s("mkdir", "/dir"),
    s("-o", "json", "mkdir", "/dir2"),
    s("get", "/dir"),
    s("set", "/dir", "v"),
    s("update", "/dir", "v"),
    s("set", "/dir/a", "1"),
    s("set", "/dir/sub/b", "2"),
    s("set", "/dir/_hidden", "h"),
    s("mkdir", "/foo/x"),
    s("ls", "--sort"),
    s("ls", "--sort", "-r", "/"),
    s("ls", "--sort", "-r", "-p", "/"),
    s("ls", "--sort", "/dir", "-p"),
    s("-o", "json", "ls", "--sort", "-r", "/dir"),
    s("-o", "extended", "ls", "/dir/a"),
    s("ls", "/foo"),
    s("-o", "json", "ls", "--sort"),
    s("ls", "/nope"),
    s("setdir", "/dir"),
    s("setdir", "--ttl", "1000", "/tdir"),
    s("-o", "extended", "setdir", "/dir3"),
    s("updatedir", "/dir2"),
    s("updatedir", "/nodir"),
    s("-o", "extended", "updatedir", "--ttl", "1000", "/dir2"),
    s("mk", "--in-order", "/queue", "j1"),
    s("mk", "--in-order", "--ttl", "1000", "/queue", "j2"),
    s("ls", "--sort", "/queue"),
    s("-o", "json", "mk", "--in-order", "/queue", "j3"),
    s("mk", "--in-order", "/foo", "j"),
    # removal
    s("rm", "/dir"),
    s("rm", "--dir", "/dir"),
    s("rmdir", "/dir"),
    s("rm", "-r", "/dir"),
    s("-o", "extended", "rm", "-r", "/dir2"),
    s("rm", "/foo", "--with-value", "nope"),
    s("rm", "/foo", "--with-index", "{START+1}"),
    s("rm", "/new"),
    s("-o", "json", "rm", "/new2"),
    s("rm", "/nope"),
    s("rmdir", "/dir3"),
    s("rmdir", "/nope"),
    s("rmdir", "/neg"),
    # watch and exec-watch
    s("watch", "--after-index", "{START}", "/foo"),
    s("-o", "json", "watch", "--after-index", "{START}", "/foo"),
    s("-o", "extended", "watch", "-r", "--after-index", "{START}", "/dir"),
    s("watch", "/w", then=(("set", "/w", "1"),)),
    s("watch", "-r", "/wd", then=(("mkdir", "/wd/sub"), ("set", "/wd/sub/x", "2"))),
    s("watch", "-f", "/wf", then=(("set", "/wf", "1"), ("set", "/wf", "2")), lines=2),
    s(
        "-o",
        "json",
        "watch",
        "--forever",
        "-r",
        "/wj",
        then=(("set", "/wj/a", "1"), ("rm", "/wj/a")),
        lines=2,
    ),
    s(
        "exec-watch",
        "-r",
        "/ew",
        "--",
        "sh",
        "-c",
        'echo "$ETCD_WATCH_ACTION $ETCD_WATCH_KEY=$ETCD_WATCH_VALUE"',
        then=(("set", "/ew/a", "1"),),
        lines=1,
    ),  # fmt: skip
    # endpoints, sync, debug
    s("--no-sync", "get", "/neg2"),
    s("get", "/neg2", endpoint=False, env=(("ETCDCTL_ENDPOINTS", "{CLIENT}"),)),
    s("--peers", "{CLIENT}", "get", "/neg2", endpoint=False),
    s("-C", "{CLIENT}", "--endpoint", DEAD, "get", "/neg2", endpoint=False),
    s("--endpoints", DEAD, "get", "/neg2"),
    s("--endpoints", DEAD, "--no-sync", "get", "/neg2"),
    s("--endpoints", DEAD, "--no-sync", "rm", "/neg2"),
    s("--endpoints", DEAD, "member", "list"),
    s("--endpoints", DEAD, "cluster-health"),
    s("--endpoints", "127.0.0.1:1", "get", "/neg2"),
    s("--debug", "get", "/neg2"),
    s("--debug", "--no-sync", "set", "/dbg", "a b&c"),
    s("--debug", "rm", "-r", "--with-value", "x", "--with-index", "{START+3}", "/dbg"),
    s("--debug", "-o", "json", "watch", "--after-index", "{START+3}", "/dbg"),
    s("--debug", "cluster-health"),
    # members
    s("member", "list"),
    s("member", "add"),
    s("member", "add", "n1", "foo"),
    s("member", "add", "n1", "http://127.0.0.1:7/x"),
    s("member", "update"),
    s("member", "update", "{ID}", "{PEER}"),
    s("member", "update", "abc", "{PEER}"),
    s("member", "update", "abc", "ftp://x:1"),
    s("member", "remove"),
    s("member", "remove", "abc"),
    s("member", "remove", "m1"),
    s("cluster-health"),
    # last: the added member cannot start, so the cluster loses its quorum
    s("member", "add", "n1", "http://127.0.0.1:9"),
]


class Transcript:
    """What each step printed (masked), and the member's v2 index before the first step.
    ``refused``: why the member did not start (then there are no results)."""

    def __init__(self, start: int, results: list[tuple[int, str, str]], refused: str = "") -> None:
        self.start, self.results, self.refused = start, results, refused


def run_script(client: str, server: str, base) -> Transcript:
    """Every step of STEPS by ``client`` ("debian" or "ours") on a fresh ``server`` member, masked."""
    member = start_member(server, base, "--enable-v2=true")
    try:
        start = _settled_index(member)
        info = {
            "CLIENT": member.endpoint,
            "PEER": f"http://127.0.0.1:{member.peer_port}",
            "ID": _member_id(member),
            "START": str(start),
        }
        return Transcript(
            start, [_mask(_run_step(client, member, step, info), member, start) for step in STEPS]
        )
    finally:
        member.stop()


def _index(member) -> int:
    with urllib.request.urlopen(member.endpoint + "/v2/keys/", timeout=5) as answer:
        return int(answer.headers["X-Etcd-Index"])


def _settled_index(member) -> int:
    """The v2 index once etcd's start-up writes are done: a fresh etcd sets its cluster version in the v2
    store a moment after it serves clients, later still on a loaded machine, which shifted every index of
    a transcript by one when it landed after the script's start."""
    deadline = time.monotonic() + 15
    while True:
        with urllib.request.urlopen(member.endpoint + "/version", timeout=5) as answer:
            decided = json.loads(answer.read()).get("etcdcluster") not in ("", "not_decided")
        before = _index(member)
        time.sleep(0.3)
        after = _index(member)
        if (decided and before == after) or time.monotonic() > deadline:
            return after


def _member_id(member) -> str:
    with urllib.request.urlopen(member.endpoint + "/v2/members", timeout=5) as answer:
        return json.load(answer)["members"][0]["id"]


def _fill(text: str, info: dict[str, str]) -> str:
    # {NAME} from info; {START+n} is the index n writes after the script's start
    text = re.sub(r"\{START\+(\d+)\}", lambda m: str(int(info["START"]) + int(m.group(1))), text)
    return re.sub(r"\{(\w+)\}", lambda m: info[m.group(1)], text)


def _command(client: str, member, step: Step, info: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    args = [_fill(a, info) for a in step.args]
    if step.endpoint:
        args.insert(0, f"--endpoints={member.endpoint}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "2"
    env.update((k, _fill(v, info)) for k, v in step.env)
    program = [REAL_ETCDCTL] if client == "debian" else OURS
    return program + args, env


def _run_step(client: str, member, step: Step, info: dict[str, str]) -> tuple[int, str, str]:
    argv, env = _command(client, member, step, info)
    if not step.then:
        done = subprocess.run(
            argv, input=step.stdin or "", capture_output=True, text=True, env=env, timeout=30
        )
        return done.returncode, done.stdout, done.stderr
    out_path = f"{member.data_dir}.watch-{client}.out"
    with open(out_path, "w+") as out, open(out_path + ".err", "w+") as err:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, preexec_fn=interruptible
        )
        try:
            _wait_watching(member)
            for trigger in step.then:
                _command_ok(client, member, trigger, info)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and proc.poll() is None:
                if step.lines and len(open(out_path).read().splitlines()) >= step.lines:
                    time.sleep(0.2)  # let a late child of exec-watch finish writing
                    proc.send_signal(signal.SIGINT)
                    break
                time.sleep(0.05)
            code = proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read()


def _wait_watching(member) -> None:
    # The watch's long poll must be registered before the trigger writes: etcd counts its watchers.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(member.endpoint + "/v2/stats/store", timeout=5) as answer:
                if json.load(answer).get("watchers", 0) > 0:
                    return
        except (OSError, ValueError):
            time.sleep(1.0)  # no watcher count on this member: give the watch time to start
            return
        time.sleep(0.02)
    raise AssertionError("the watch never reached the member")


def _command_ok(client: str, member, args: tuple[str, ...], info: dict[str, str]) -> None:
    argv, env = _command(client, member, Step(args), info)
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, f"{argv}: {done.stderr}"


_INDEXES = [
    r'("createdIndex":|"modifiedIndex":)(\d+)',
    r"((?:Created-|Modified-|^)Index: )(\d+)",
    r"((?:waitIndex|prevIndex)=)(\d+)",
    r"(/queue/)(\d{20})",
    r"(\[)(\d+)(?=\]$| != )",
    r"( != )(\d+)(?=\])",
]


def _mask(result: tuple[int, str, str], member, start: int) -> tuple[int, str, str]:
    code, out, err = result

    def relative(match: re.Match) -> str:
        return f"{match.group(1)}<start{int(match.group(2)) - start:+d}>"

    def mask(text: str) -> str:
        for pattern in _INDEXES:
            text = re.sub(pattern, relative, text, flags=re.MULTILINE)
        text = text.replace(f"127.0.0.1:{member.client_port}", "127.0.0.1:CLIENT")
        text = text.replace(f"127.0.0.1:{member.peer_port}", "127.0.0.1:PEER")
        text = re.sub(r"\b[0-9a-f]{12,16}\b", "<member-id>", text)
        text = re.sub(r'"expiration":"[^"]*"', '"expiration":"<time>"', text)
        text = re.sub(r'("ttl":|TTL: )(99\d|1000)\b', r"\1<about 1000>", text)
        # members are listed by ID, and a new member's ID is random: its place among them is too
        return re.sub(
            r'^(ETCD_INITIAL_CLUSTER=")([^"]*)"',
            lambda m: f'{m[1]}{",".join(sorted(m[2].split(",")))}"',
            text,
            flags=re.M,
        )

    return code, mask(out), mask(err)


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory):
    """Transcripts by (client, server), each computed once, on demand."""
    base = tmp_path_factory.mktemp("etcdctl-v2")
    cache: dict[tuple[str, str], Transcript] = {}

    def get(client: str, server: str) -> Transcript:
        if (client, server) not in cache:
            try:
                cache[client, server] = run_script(client, server, base)
            except RuntimeError as exc:  # the member refused to start (v2 not served yet)
                cache[client, server] = Transcript(-1, [], refused=str(exc))
        return cache[client, server]

    return get


def _step_id(step: Step) -> str:
    return " ".join(step.args)[:60]


@pytest.mark.parametrize("index", range(len(STEPS)), ids=[_step_id(step) for step in STEPS])
def test_flotilla_etcdctl_prints_what_etcdctl_prints(transcripts, index):
    debian, ours = transcripts("debian", "etcd"), transcripts("ours", "etcd")
    assert ours.results[index] == debian.results[index]


FLOTILLA_SERVER_DIFFERENCES: dict[str, str] = {}


def _server_case(index: int):
    reason = FLOTILLA_SERVER_DIFFERENCES.get(_step_id(STEPS[index]))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(index, marks=marks, id=_step_id(STEPS[index]))


def _flotilla(transcripts) -> Transcript:
    flotilla = transcripts("debian", "flotilla")
    if flotilla.refused:
        pytest.skip(f"flotilla etcd does not serve v2 yet: {flotilla.refused[:200]}")
    return flotilla


def test_flotilla_v2_index_starts_where_etcds_does(transcripts):
    assert _flotilla(transcripts).start == transcripts("debian", "etcd").start


@pytest.mark.parametrize("index", [_server_case(i) for i in range(len(STEPS))])
def test_etcdctl_sees_flotilla_as_etcd(transcripts, index):
    assert _flotilla(transcripts).results[index] == transcripts("debian", "etcd").results[index]
