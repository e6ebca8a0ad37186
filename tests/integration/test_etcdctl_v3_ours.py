"""Flotilla's ``etcdctl`` (API 3) against Debian's etcdctl 3.4.23, command by command.

For each server (real etcd 3.4.23, then ``flotilla etcd``) two fresh members are started; Debian's
etcdctl drives one and ours the other, through the same commands in the same order, at the same time.
stdout, stderr and the exit code must be identical once what legitimately differs between two members is
masked: member/cluster/lease IDs, ports, durations, log timestamps, client UUIDs and file sizes.
Revisions, raft terms and indexes, hashes and counts are NOT masked: equal histories give equal numbers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from processes import REAL_ETCDCTL, real_etcd_available, start_member

pytestmark = pytest.mark.skipif(
    not real_etcd_available(), reason="needs Debian's etcd-server and etcd-client"
)

OURS = [sys.executable, "-c", "import sys; from flotilla.etcdctl.main import main; main(sys.argv[1:])"]
TIMESTAMP = re.compile(r'"ts":("[^"]*"|[0-9.e+]+)|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ ', re.M)


def _env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    return {**env, "ETCDCTL_API": "3", **(extra or {})}


PROTOBUF_TYPES = {
    "put": "PutResponse",
    "get": "RangeResponse",
    "del": "DeleteRangeResponse",
    "txn": "TxnResponse",
    "lease": "ResponseHeader",
}


def _protobuf_text(verb: str, text: str) -> str:
    """``-w protobuf`` prints the response's wire bytes: compare them decoded, without member/cluster IDs."""
    from flotilla.etcd.api import rpc_pb2

    message = getattr(rpc_pb2, PROTOBUF_TYPES[verb])()
    message.ParseFromString(text.encode("utf-8", "surrogateescape"))
    header = message if verb == "lease" else message.header
    header.cluster_id = header.member_id = 0
    return str(message)


class Side:
    """One tool (Debian's or ours) and the member it drives; remembers IDs to substitute and to mask."""

    def __init__(self, tool: list[str], member, workdir: Path) -> None:
        self.tool, self.member, self.workdir = tool, member, workdir
        self.vars: dict[str, str] = {"dir": str(workdir)}

    def argv(self, args) -> list[str]:
        own = [] if any(a.startswith("--endpoints") for a in args) else [f"--endpoints={self.member.address}"]
        return [*self.tool, *own, *(a.format(**self.vars) for a in args)]

    def run(self, args, stdin: str | None, env: dict | None, timeout_s: float) -> tuple[int, str, str]:
        proc = subprocess.run(self.argv(args), input=stdin, capture_output=True, text=True, env=_env(env),
                              errors="surrogateescape", timeout=timeout_s, cwd=self.workdir)  # fmt: skip
        return proc.returncode, proc.stdout, proc.stderr

    def mask(self, text: str, args=()) -> str:
        if "protobuf" in args and args[0] in PROTOBUF_TYPES and text and not text.startswith("Error"):
            return _protobuf_text(args[0], text)
        if text.startswith(
            "panic: "
        ):  # etcdctl 3.4 crashes there too: the Go stack trace is not ours to copy
            return text.split("\n", 1)[0]
        m = self.member
        text = text.replace(str(self.workdir), "{dir}")
        for name, value in sorted(self.vars.items(), key=lambda kv: -len(kv[1])):
            if name != "dir" and value:
                text = text.replace(value, "{" + name + "}")
                if re.fullmatch(r"[0-9a-f]+", value):
                    text = text.replace(str(int(value, 16)), "{" + name + "#}")
        # Whole numbers only: a port's digits can also occur inside a decimal cluster or member ID.
        text = re.sub(rf"\b{m.client_port}\b", "{client_port}", text)
        text = re.sub(rf"\b{m.peer_port}\b", "{peer_port}", text)
        text = TIMESTAMP.sub("{ts}", text)
        text = re.sub(r"client-[0-9a-f-]{36}", "client-{uuid}", text)
        text = re.sub(r'((?i:took)[" :=]+)[0-9.]+[µnm]?s', r"\1{took}", text)
        text = re.sub(r'"took":[0-9.e-]+', '"took":{took}', text)
        # Members come sorted by ID, and IDs differ between the two members: compare them sorted.
        text = re.sub(
            r'ETCD_INITIAL_CLUSTER="([^"]*)"',
            lambda mt: 'ETCD_INITIAL_CLUSTER="' + ",".join(sorted(mt.group(1).split(","))) + '"',
            text,
        )
        if tuple(args[:2]) == ("member", "list"):
            text = "\n".join(sorted(text.split("\n")))
        if "timetolive" in args:  # the remaining TTL depends on when each side asked
            text = re.sub(r'(remaining\(|"ttl":|"TTL" : )\d+', r"\1{ttl}", text)
        if "health" in args:  # a health table is as wide as its durations
            text = re.sub(r"\b\d+(\.\d+)?[µnm]?s\b", "{took}", text)
        if "health" in args or "table" in args:
            # A table is as wide as its widest cell: durations, and IDs (15 or 16 hex digits on either side's
            # member, their IDs hashing their random ports).
            text = re.sub(r"-{3,}", "---", re.sub(r" {2,}", " ", text))
        text = re.sub(r"\b\d+(\.\d)? [kMG]?B\b", "{size}", text)
        text = re.sub(r'"(dbSize|dbSizeInUse|totalSize)":\d+', r'"\1":{n}', text)
        text = re.sub(r'"(DBSize|Size)" : \d+', r'"\1" : {n}', text)
        text = re.sub(r"\b[0-9]{15,20}\b|\b(?=[0-9a-f]*[a-f])[0-9a-f]{12,16}\b", "{id}", text)
        return re.sub(r" +\{id\}", " {id}", text)  # %16x pads a shorter ID with spaces


class Pair:
    def __init__(self, debian: Side, ours: Side) -> None:
        self.sides = {"debian": debian, "ours": ours}
        self.count = 0

    def run(self, *args: str, stdin: str | None = None, env: dict | None = None, timeout_s: float = 20):
        """Run on both sides at once; assert equal masked results; return ours."""
        results: dict[str, tuple[int, str, str]] = {}

        def one(name: str) -> None:
            results[name] = self.sides[name].run(args, stdin, env, timeout_s)

        threads = [threading.Thread(target=one, args=(n,)) for n in self.sides]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        masked = {
            n: tuple(s.mask(x, args) if isinstance(x, str) else x for x in results[n])
            for n, s in self.sides.items()
        }
        self.count += 1
        assert masked["ours"] == masked["debian"], f"etcdctl {' '.join(args)}"
        return results

    def capture(self, name: str, results, pattern: str) -> None:
        """Remember, per side, the first match of ``pattern`` in stdout as ``{name}``."""
        for side_name, side in self.sides.items():
            match = re.search(pattern, results[side_name][1])
            assert match, (side_name, results[side_name])
            side.vars[name] = match.group(1)

    def background(self, *commands: tuple, run_s: float = 1.5) -> None:
        """Long-running commands (watch, keep-alive), all at once: each is ``(args, stdin lines)``; stop
        them after ``run_s`` and compare their stdout."""
        procs = {}
        for i, (args, _lines) in enumerate(commands):
            for name, side in self.sides.items():
                procs[i, name] = subprocess.Popen(
                    side.argv(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, env=_env(), cwd=side.workdir, errors="surrogateescape",
                )  # fmt: skip
        time.sleep(0.5)
        for (i, _name), proc in procs.items():
            if commands[i][1]:
                proc.stdin.write("".join(commands[i][1]))
                proc.stdin.flush()
        time.sleep(run_s)
        outputs = {}
        for (i, name), proc in procs.items():
            proc.terminate()
            out, _ = proc.communicate(timeout=10)
            outputs[i, name] = self.sides[name].mask(out)
        for i, (args, _lines) in enumerate(commands):
            assert outputs[i, "ours"] == outputs[i, "debian"], f"etcdctl {' '.join(args)}"


@pytest.fixture(scope="module", params=["etcd", "flotilla"])
def pair(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"ctl3-{request.param}")
    members = []
    try:
        for _ in range(2):
            members.append(start_member(request.param, base))
        debian_dir, ours_dir = base / "debian", base / "ours"
        debian_dir.mkdir()
        ours_dir.mkdir()
        yield (
            request.param,
            Pair(Side([REAL_ETCDCTL], members[0], debian_dir), Side(OURS, members[1], ours_dir)),
        )
    finally:
        for m in members:
            m.stop()


def test_kv_verbs(pair):
    _, p = pair
    for args in (
        ["put", "foo", "bar"],
        ["put", "foo", "baz", "--prev-kv"],
        ["put", "foo", "qux", "-w", "json"],
        ["put", "k2", "v2", "-w", "fields", "--prev-kv"],
        ["put", "k3", "-w", "protobuf"],
    ):
        p.run(*args, stdin="from stdin")
    p.run("put", "k4", stdin="")
    for fmt in ("simple", "json", "fields", "protobuf", "table"):
        p.run("get", "k", "--prefix", "-w", fmt)
    for args in (["--from-key", "", "--hex"], ["", "--prefix", "--order", "descend", "--limit", "2"],
                 ["k", "--prefix", "--sort-by", "value", "--order", "DESCEND", "--keys-only"],
                 ["foo", "--rev", "2", "--print-value-only"], ["foo", "k3", "--consistency", "s"], ["nokey"],
                 ["foo", "--rev", "1000"], ["foo", "--count-only"],
                 ["foo", "-w", "json", "--print-value-only"]):  # fmt: skip
        p.run("get", *args)
    p.run("put", "--ignore-value", "foo")
    p.run("put", "--ignore-value", "nokey")
    p.run("put", "foo", "x", "--lease", "zz")
    p.run("put", "foo", "x", "--lease", "1234")
    for fmt in ("json", "fields"):
        p.run("del", "k2", "--prev-kv", "-w", fmt)
    p.run("del", "nokey")
    p.run("del", "k", "--prefix", "--prev-kv")
    p.run("del", "a", "--prefix", "--from-key")


def test_txn(pair):
    _, p = pair
    p.run("put", "t", "1")
    script = 'value("t") = "1"\nmod("t") > "0"\n\nput t 2\nget t\ndel nokey\n\nget t\n\n'
    for fmt in ("simple", "json", "fields", "protobuf"):
        p.run("txn", "-w", fmt, stdin=script)
    p.run("txn", "-i", stdin='ver("t") != "100"\n\nput t 3 --prev-kv\n\n\n')
    for bad in ("", 'value("t")\n', 'value(t) = "1"\n', 'foo("t") = "1"\n\n', '\nbogus t\n', '\nput\n',
                'ver("t") = "x"\n\n', '\n\n\n'):  # fmt: skip
        p.run("txn", stdin=bad)
    p.run("txn", "extra")


def test_lease_verbs(pair):
    _, p = pair
    p.capture("lease", p.run("lease", "grant", "100"), r"lease ([0-9a-f]{16}) granted")
    p.run("put", "lk", "lv", "--lease", "{lease}")
    for fmt in ("simple", "json", "fields", "protobuf"):
        p.run("lease", "timetolive", "{lease}", "--keys", "-w", fmt)
    for fmt in ("json", "fields"):
        p.run("lease", "list", "-w", fmt)
        p.run("lease", "keep-alive", "--once", "{lease}", "-w", fmt)
    p.run("lease", "list")
    p.run("lease", "grant", "100", "-w", "fields")
    p.background((["lease", "keep-alive", "{lease}"], None), run_s=0.5)
    p.run("lease", "revoke", "{lease}", "-w", "json")
    for args in (["revoke", "{lease}"], ["timetolive", "{lease}"], ["keep-alive", "--once", "{lease}"],
                 ["grant"], ["grant", "x"], ["revoke", "zz"], ["timetolive"], ["keep-alive"]):  # fmt: skip
        p.run("lease", *args)
    p.run("get", "lk")


def test_watch(pair):
    _, p = pair
    p.run("put", "w", "1")
    p.run("put", "w", "2")
    p.run("del", "w")
    revision = p.run("get", "w", "-w", "fields")["ours"][1]
    first = int(re.search(r'"Revision" : (\d+)', revision).group(1)) - 2
    rev = str(first)
    echo = "echo $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE"
    p.background(
        *(
            (["watch", "w", "--prev-kv", "--rev", rev, "-w", fmt], None)
            for fmt in ("simple", "json", "fields")
        ),
        (["watch", "--prefix", "w", "--rev", rev, "--", "sh", "-c", echo], None),
        (["watch", "-i"], [f"watch w --rev {rev}\n"]),
    )
    for args in ([], ["a", "b", "--prefix"], ["a", "--"]):
        p.run("watch", *args)
    p.run("watch", env={"ETCDCTL_WATCH_RANGE_END": "z"})
    p.run("compaction", str(first + 1))
    p.run("watch", "w", "--rev", "1")
    p.run("watch", "w", "--rev", "1", "-w", "json")


def test_cluster_and_maintenance(pair):
    kind, p = pair
    for fmt in ("simple", "json", "fields", "table"):
        p.run("member", "list", "-w", fmt)
        p.run("endpoint", "status", "-w", fmt)
        p.run("endpoint", "hashkv", "-w", fmt)
    for fmt in ("json", "fields", "table"):
        p.run("endpoint", "health", "-w", fmt)
        p.run("alarm", "list", "-w", fmt)
    p.run("endpoint", "status", "--cluster")
    p.run("endpoint", "health", "--cluster", "-w", "json")
    for args in (["add"], ["add", "x", "http://a"], ["add", "x"], ["remove"], ["remove", "zz"],
                 ["remove", "1234"],
                 ["update", "1234"], ["update", "1234", "--peer-urls", "http://127.0.0.1:4"]):  # fmt: skip
        p.run("member", *args)
    p.run("compaction", "2", "--physical")
    p.run("compaction", "2")
    p.run("compaction", "x")
    p.run("defrag")
    p.run("alarm", "disarm")
    p.run("move-leader", "1234")
    p.run("version")


def test_membership_changes(pair):
    _, p = pair
    p.capture("learner", p.run("member", "add", "l1", "--learner", "--peer-urls", "http://127.0.0.1:1"),
              r"Member +([0-9a-f]{1,16}) added")  # fmt: skip
    p.run("member", "list")
    p.run("member", "update", "{learner}", "--peer-urls", "http://127.0.0.1:2")
    p.run("member", "promote", "{learner}")
    p.run("member", "remove", "{learner}", "-w", "json")


def test_snapshot(pair):
    kind, p = pair
    p.run("snapshot", "save", "{dir}/s.db")
    p.run("snapshot", "save", "{dir}/no/such/s.db")
    if kind == "etcd":  # a bbolt file: our status of etcd's snapshot must equal etcdctl's, for the same file
        for side in p.sides.values():
            side.vars["snap"] = str(p.sides["debian"].workdir / "s.db")
        for fmt in ("simple", "json", "fields", "table"):
            p.run("snapshot", "status", "{snap}", "-w", fmt)
    p.run("snapshot", "status", "{dir}/missing.db")
    p.run("snapshot", "status")


def test_global_flags_env_and_errors(pair):
    _, p = pair
    p.run("get", "foo", env={"ETCDCTL_WRITE_OUT": "json", "ETCDCTL_HEX": "true"})
    p.run("get", "foo", env={"ETCDCTL_LIMIT": "1"})
    p.run("get", "foo", "-w", "json", env={"ETCDCTL_WRITE_OUT": "fields"})
    p.run("get", "foo", "-w", "yaml")
    p.run("get", "foo", "--cert=")
    p.run("--command-timeout=xx", "get", "foo")
    p.run("get", "--no-such-flag")
    p.run("gett", "foo")
    p.run("help", "get")
    p.run("--help")
    p.run("lease")
    p.run("--endpoints=127.0.0.1:1", "--command-timeout=1s", "get", "foo")
    p.run("--endpoints=127.0.0.1:1", "--command-timeout=1s", "endpoint", "status")


def test_check_perf_runs_shortened():
    """check perf needs a minute; ours honours a test-only knob. Only its shape is checked, no timing."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        member = start_member("flotilla", Path(tmp))
        try:
            env = {**_env(), "FLOTILLA_ETCDCTL_CHECK_PERF_SECONDS": "2"}
            argv = [*OURS, f"--endpoints={member.address}", "check", "perf", "--load", "s", "--auto-compact",
                    "--auto-defrag"]  # fmt: skip
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
            assert proc.returncode in (0, 1), proc.stderr
            lines = proc.stdout.replace("\r", "\n").splitlines()
            assert any(line.startswith("Compacting with revision") for line in lines)
            assert f'Defragmented "{member.address}"' in lines
            assert lines[-1] in ("PASS", "FAIL")
            assert any("Throughput" in line for line in lines)
            argv = [*OURS, f"--endpoints={member.address}", "get", "--prefix", "/etcdctl-check-perf/"]
            get = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=30)
            assert get.stdout == ""
        finally:
            member.stop()
