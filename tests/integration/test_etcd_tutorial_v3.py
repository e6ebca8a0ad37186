"""etcd 3.4's own v3 tutorial, command by command, on `flotilla etcd` and on real etcd 3.4.23.

The commands are those of etcd's "Interacting with etcd" guide (Documentation/dev-guide/interacting_v3.md)
and of the etcdctl v3 README (etcdctl/README.md, v3.4) that one member can run. Every command runs on a
Flotilla member and on a real etcd member that have seen the same history, and the masked outputs
(stdout, stderr, exit code) must be equal. Only what must differ is masked: member, cluster and lease IDs,
endpoints, sizes, the server version, durations and remaining TTLs. Revisions and raft terms are compared.

Streaming commands (watch, lease keep-alive, lock, elect, make-mirror) run on both members at once; each
is stopped once it printed what the tutorial shows.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest
from processes import REAL_ETCDCTL, etcdctl, interruptible, real_etcd_available, start_member

from flotilla.etcd.api import rpc_pb2

pytestmark = pytest.mark.skipif(
    not real_etcd_available(), reason="needs Debian's etcd-server and etcd-client"
)

KINDS = ("flotilla", "etcd")
LIVE_STREAMS: list[Stream] = []  # every etcdctl a test started, stopped after it even when it failed


@pytest.fixture(autouse=True)
def _stop_streams():
    yield
    while LIVE_STREAMS:
        LIVE_STREAMS.pop().stop()


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    base = tmp_path_factory.mktemp("tutorial")
    started = []
    try:
        for kind in KINDS:
            started.append(start_member(kind, base))
        yield {m.kind: m for m in started}
    finally:
        for m in started:
            m.stop()


def mask(text: str, member) -> str:
    """Blank out what legitimately differs between the two members."""
    text = squash_tables(text)
    text = text.replace(member.address, "ENDPOINT").replace(f"127.0.0.1:{member.peer_port}", "PEER")
    text = re.sub(r'"ts":"[^"]*"', '"ts":"T"', text)
    text = re.sub(r"client-[0-9a-f-]+", "client-UUID", text)
    text = re.sub(r'"(cluster_id|member_id|ID|id|leader)":\s*"?-?\d+"?', r'"\1":"N"', text)
    text = re.sub(r'"(ClusterID|MemberID|Leader|ID)" : -?\d+', r'"\1" : N', text)
    text = re.sub(r"\b[0-9a-f]{14,16}\b", "HEXID", text)
    text = re.sub(r"\b(\\x[0-9a-f]{2}){7,8}\b", "HEXID", text)
    text = re.sub(r"took = [0-9.]+[µmn]?s", "took = T", text)
    text = re.sub(r"remaining\(-?\d+s\)", "remaining(Ns)", text)
    text = re.sub(r'"(ttl|TTL|lease)"\s*:\s*-?\d+', r'"\1":N', text)
    text = re.sub(r'"(Lease|TTL)" : -?\d+', r'"\1" : N', text)
    text = re.sub(r'"took":"[0-9.]+[µmn]?s"', '"took":"T"', text)
    # a lease's keys come from a Go map in etcd: their order is random there
    text = re.sub(
        r"attached keys\(\[([^]]*)\]\)", lambda m: f"attached keys([{' '.join(sorted(m[1].split()))}])", text
    )
    text = re.sub(r'"(dbSize|dbSizeInUse|DbSize|DbSizeInUse|hash|Hash)"\s*:\s*\d+', r'"\1":N', text)
    text = re.sub(r'"(version|Version)"( : |:)"3\.[^"]*"', r'"\1"\2"V"', text)
    text = re.sub(r'"(DBSize|DBSizeInUse|Hash)" : \d+', r'"\1" : N', text)
    text = re.sub(r"\b\d+(\.\d+)? [kMG]?B\b", "SIZE", text)  # table sizes: "20 kB"
    text = re.sub(r"([|,]) 3\.4\.\d+ ?([|,])", r"\1 V \2", text)  # server version in status rows
    return text


def squash_tables(text: str) -> str:
    """Table cells without their padding: masked values have other widths than the originals."""
    lines = []
    for line in text.split("\n"):
        if line.startswith("+-"):
            line = "+"
        elif line.startswith("|"):
            line = "| " + " | ".join(cell.strip() for cell in line.strip("|").split("|")) + " |"
        lines.append(line)
    return "\n".join(lines)


def mask_raft_index(text: str) -> str:
    """Raft indexes in `endpoint status`: etcd 3.4 starts with two more entries than Flotilla (see
    test_raft_index_matches_etcd), so they are compared there and masked elsewhere."""
    text = re.sub(r'"(raftIndex|raftAppliedIndex)":\d+', r'"\1":N', text)
    text = re.sub(r'"(RaftIndex|RaftAppliedIndex)" : \d+', r'"\1" : N', text)
    text = re.sub(r"(true|false), (true|false), (\d+), \d+, \d+,", r"\1, \2, \3, N, N,", text)
    return re.sub(
        r"\| (true|false) \| (true|false) \|( +\d+ \|) +\d+ \| +\d+ \|", r"| \1 | \2 |\3 N | N |", text
    )


class Pair:
    """Runs each command on both members and compares the masked outputs."""

    def __init__(self, members) -> None:
        self.members = members
        self.lease_ids: dict[str, list[str]] = {k: [] for k in KINDS}

    def args_for(self, kind: str, args) -> list[str]:
        lease = self.lease_ids[kind][-1] if self.lease_ids[kind] else ""
        return [a.replace("{lease}", lease) for a in args]

    def note_leases(self, kind: str, text: str) -> None:
        self.lease_ids[kind] += re.findall(r"lease ([0-9a-f]+) granted", text)

    def run(self, *args: str, input: str | None = None, ok: bool = True, extra_mask=None) -> dict[str, str]:
        outputs = {}
        for kind, member in self.members.items():
            argv = self.args_for(kind, args)
            done = etcdctl(member.address, *argv, input=input)
            if ok:
                assert done.returncode == 0, f"{kind}: etcdctl {' '.join(argv)}: {done.stderr}"
            self.note_leases(kind, done.stdout)
            outputs[kind] = (done.returncode, mask(done.stdout, member), mask(done.stderr, member))
            if extra_mask is not None:
                outputs[kind] = (done.returncode, extra_mask(outputs[kind][1]), outputs[kind][2])
        assert outputs["flotilla"] == outputs["etcd"], f"etcdctl {' '.join(args)} differs"
        return {kind: out[1] for kind, out in outputs.items()}

    def revision(self) -> int:
        """The current revision; equal on both members (checked)."""
        revs = {}
        for kind, member in self.members.items():
            done = etcdctl(member.address, "get", "revision-probe", "-w", "json")
            revs[kind] = json.loads(done.stdout)["header"]["revision"]
        assert revs["flotilla"] == revs["etcd"], revs
        return revs["etcd"]

    def streams(self, *args: str, stdin: bool = False, env: dict | None = None) -> dict[str, Stream]:
        return {
            kind: Stream(member.address, self.args_for(kind, args), stdin=stdin, env=env)
            for kind, member in self.members.items()
        }

    def compare_streams(self, streams: dict[str, Stream]) -> dict[str, str]:
        outputs = {}
        for kind, stream in streams.items():
            out, err = stream.stop()
            self.note_leases(kind, out)
            # Stopping a stream cancels whatever unary call clientv3 had in flight at that instant: a
            # "context canceled" retry warning depends on when the signal lands, not on the server.
            err = re.sub(r'^\{"level":"warn".*context canceled"\}\n', "", err, flags=re.M)
            outputs[kind] = (mask(out, self.members[kind]), mask(err, self.members[kind]))
        assert outputs["flotilla"] == outputs["etcd"], "streams differ"
        return {kind: out[0] for kind, out in outputs.items()}


class Stream:
    """A long-running etcdctl (watch, keep-alive, lock, ...), its output collected as it comes."""

    def __init__(self, address: str, args, stdin: bool = False, env: dict | None = None) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        full_env.update({"ETCDCTL_API": "3", **(env or {})})
        self.proc = subprocess.Popen(
            [REAL_ETCDCTL, f"--endpoints={address}", *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
            preexec_fn=interruptible,
        )  # fmt: skip
        LIVE_STREAMS.append(self)
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(pipe, lines: list[str]) -> None:
        for line in pipe:
            lines.append(line)

    def send(self, text: str) -> None:
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def wait_lines(self, count: int, timeout_s: float = 10.0) -> None:
        """Wait until stdout holds at least ``count`` lines."""
        deadline = time.monotonic() + timeout_s
        while len(self.out) < count:
            assert time.monotonic() < deadline, f"only {self.out} after {timeout_s}s ({self.err})"
            assert self.proc.poll() is None or len(self.out) >= count, f"exited: {self.out} {self.err}"
            time.sleep(0.02)

    def stop(self) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for t in self._threads:
            t.join(5)
        return "".join(self.out), "".join(self.err)


# Each watch must be registered before the writes it should see; etcdctl prints nothing when it is, so
# the test waits a moment (the same on both members).
WATCH_SETTLE_S = 0.4


def wait_all(streams: dict[str, Stream], count: int) -> None:
    for stream in streams.values():
        stream.wait_lines(count)


# --- interacting_v3.md -------------------------------------------------------------------------------


def test_find_versions(members):
    out = Pair(members).run("version")
    assert out["etcd"].startswith("etcdctl version: 3.4.23\nAPI version: 3.4")


def test_write_and_read_keys(members):
    p = Pair(members)
    p.run("put", "foo", "bar")
    p.run("lease", "grant", "100")
    p.run("put", "foo1", "bar1", "--lease={lease}")
    p.run("put", "foo2", "bar2")
    p.run("put", "foo3", "bar3")
    p.run("get", "foo")
    p.run("get", "foo", "--hex")
    p.run("get", "foo", "--print-value-only")
    p.run("get", "foo", "foo3")
    p.run("get", "--prefix", "foo")
    p.run("get", "--prefix", "--limit=2", "foo")
    p.run("get", "--from-key", "b")
    p.run("get", "--from-key", "foo1", "--keys-only")
    p.run("get", "--prefix", "foo", "--keys-only")
    p.run("get", "--prefix", "foo", "--print-value-only")
    p.run("get", "--consistency=s", "foo")
    p.run("get", "--consistency=l", "--prefix", "foo", "-w", "json")
    for target in ("CREATE", "KEY", "MODIFY", "VALUE", "VERSION"):
        for order in ("ASCEND", "DESCEND"):
            p.run("get", "--prefix", "foo", f"--sort-by={target}", f"--order={order}")
    p.run("get", "foo", "-w", "fields")
    p.run("get", "--prefix", "foo", "-w", "fields")
    p.run("get", "foo", "-w", "json")
    p.run("get", "foo1", "-w", "json")
    p.run("get", "foo", "-w", "table", ok=False)
    p.run("get", "nothing-here", "-w", "fields")
    # etcdctl README (put): --ignore-value, --ignore-lease, --prev-kv
    p.run("put", "foo1", "--ignore-value")
    p.run("get", "foo1", "-w", "json")
    p.run("put", "foo1", "bar1-new", "--ignore-lease")
    p.run("put", "foo1", "bar1-newer", "--prev-kv")
    p.run("put", "foo1", "bar1", "--prev-kv", "-w", "json")
    p.run("put", "nolease", "--ignore-value", ok=False)
    p.run("put", "nolease", "x", "--ignore-lease", ok=False)
    p.run("put", "foo", "bar", "-w", "fields")
    p.run("put", "stdin-key", input="from stdin\n")
    p.run("get", "stdin-key")
    p.run("lease", "revoke", "{lease}")


def test_get_protobuf_output(members):
    """-w protobuf prints the RangeResponse as protobuf bytes; compared decoded, header IDs masked."""
    Pair(members).run("put", "proto", "buf")
    decoded = {}
    for kind, member in members.items():
        env = {"ETCDCTL_API": "3"}
        done = subprocess.run(
            [REAL_ETCDCTL, f"--endpoints={member.address}", "get", "proto", "-w", "protobuf"],
            capture_output=True, env=env, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        response = rpc_pb2.RangeResponse.FromString(done.stdout)
        response.header.cluster_id = response.header.member_id = 0
        decoded[kind] = response
    assert decoded["flotilla"] == decoded["etcd"]
    assert decoded["etcd"].kvs[0].value == b"buf"


def test_read_past_versions(members):
    p = Pair(members)
    p.run("del", "", "--from-key")
    base = p.revision()
    p.run("put", "foo", "bar")  # base + 1
    p.run("put", "foo1", "bar1")  # base + 2
    p.run("put", "foo", "bar_new")  # base + 3
    p.run("put", "foo1", "bar1_new")  # base + 4
    p.run("get", "foo", "foo9")
    for rev in range(base + 3, base - 1, -1):
        p.run("get", f"--rev={rev}", "foo", "foo9")
    p.run("get", f"--rev={base + 10}", "foo", ok=False)  # a future revision


def test_delete_keys(members):
    p = Pair(members)
    for key in ("foo", "foo1", "foo2", "foo3", "zoo", "zoo1", "a", "b", "c"):
        p.run("put", key, key + "-v")
    p.run("del", "foo")
    p.run("del", "foo", "foo9")
    p.run("del", "--prev-kv", "zoo")
    p.run("del", "--prefix", "zoo")
    p.run("del", "--from-key", "b")
    p.run("del", "missing")
    p.run("del", "a", "-w", "json")
    p.run("get", "", "--from-key")


def test_watch_key_range_prefix_and_hex(members):
    p = Pair(members)
    streams = {
        "key": p.streams("watch", "foo"),
        "hex": p.streams("watch", "foo", "--hex"),
        "range": p.streams("watch", "foo", "foo9"),
        "prefix": p.streams("watch", "--prefix", "foo"),
        "prev": p.streams("watch", "--prev-kv", "foo"),
    }
    time.sleep(WATCH_SETTLE_S)
    p.run("put", "foo", "bar")
    p.run("put", "foo1", "bar1")
    p.run("put", "fooz1", "barz1")
    p.run("put", "foo", "bar2")
    p.run("del", "foo")
    expected_lines = {"key": 9, "hex": 9, "range": 12, "prefix": 15, "prev": 13}
    for name, pair_streams in streams.items():
        wait_all(pair_streams, expected_lines[name])
    out = {name: p.compare_streams(s)["etcd"] for name, s in streams.items()}
    assert out["key"] == "PUT\nfoo\nbar\nPUT\nfoo\nbar2\nDELETE\nfoo\n\n"
    assert "fooz1" in out["prefix"] and "fooz1" not in out["range"]


def test_watch_interactive_and_history(members):
    p = Pair(members)
    base = p.revision()
    interactive = p.streams("watch", "-i", stdin=True)
    for stream in interactive.values():
        stream.send("watch foo\nwatch zoo\n")
    time.sleep(WATCH_SETTLE_S)
    p.run("put", "foo", "bar")  # base + 1
    p.run("put", "zoo", "val")  # base + 2
    p.run("put", "foo", "bar_new")  # base + 3
    wait_all(interactive, 9)
    p.compare_streams(interactive)
    for rev in (base + 1, base + 2):
        history = p.streams("watch", f"--rev={rev}", "foo")
        wait_all(history, 3 if rev > base + 1 else 6)
        p.compare_streams(history)
    # watch -i with a revision and --prev-kv given inside the interactive command
    interactive = p.streams("watch", "-i", stdin=True)
    for stream in interactive.values():
        stream.send(f"watch foo --rev={base + 1} --prev-kv\n")
    wait_all(interactive, 8)
    p.compare_streams(interactive)


def test_watch_exec_command(members):
    """etcdctl README: `watch [key] -- <command>` runs the command per event with ETCD_WATCH_* set."""
    p = Pair(members)
    script = 'echo "$ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE $ETCD_WATCH_REVISION"'
    streams = p.streams("watch", "execkey", "--", "sh", "-c", script)
    time.sleep(WATCH_SETTLE_S)
    p.run("put", "execkey", "v1")
    p.run("del", "execkey")
    wait_all(streams, 8)
    out = p.compare_streams(streams)["etcd"]
    # etcd 3.4 quotes the values it puts in ETCD_WATCH_*
    assert '"PUT" "execkey" "v1"' in out and '"DELETE" "execkey" ""' in out


def test_compacted_revisions(members):
    p = Pair(members)
    for i in range(4):
        p.run("put", "cfoo", str(i))
    rev = p.revision()
    p.run("compaction", str(rev - 1))
    p.run("get", f"--rev={rev - 2}", "cfoo", ok=False)
    p.run("get", f"--rev={rev - 1}", "cfoo")
    p.run("compaction", "--physical", str(rev))
    p.run("compaction", str(rev - 1), ok=False)
    p.run("compaction", str(rev + 100), ok=False)
    history = p.streams("watch", f"--rev={rev - 2}", "cfoo")
    for stream in history.values():
        stream.proc.wait(10)
    p.compare_streams(history)


def test_leases(members):
    p = Pair(members)
    p.run("lease", "grant", "10")
    p.run("put", "--lease={lease}", "lfoo", "bar")
    p.run("lease", "revoke", "{lease}")
    p.run("get", "lfoo")
    p.run("lease", "revoke", "{lease}", ok=False)
    # keep-alive streams: stopped after two renewals (a 3 s TTL renews every second)
    p.run("lease", "grant", "3")
    keepalive = p.streams("lease", "keep-alive", "{lease}")
    wait_all(keepalive, 2)
    out = p.compare_streams(keepalive)["etcd"]
    assert out.count("keepalived with TTL(3)") >= 2
    p.run("lease", "keep-alive", "--once", "{lease}")
    p.run("lease", "keep-alive", "-w", "json", "--once", "{lease}")
    # timetolive, with and without --keys
    p.run("lease", "grant", "500")
    p.run("put", "--lease={lease}", "lfoo1", "bar")
    p.run("put", "--lease={lease}", "lfoo2", "bar")
    p.run("lease", "timetolive", "{lease}")
    p.run("lease", "timetolive", "{lease}", "--keys")
    p.run("del", "lfoo2")
    p.run("lease", "timetolive", "{lease}", "--keys", "-w", "json")
    p.run("lease", "timetolive", "{lease}", "-w", "fields")
    p.run("lease", "revoke", "{lease}")
    p.run("lease", "timetolive", "{lease}")
    p.run("lease", "keep-alive", "--once", "{lease}", ok=False)
    p.run("lease", "grant", "0")
    p.run("lease", "revoke", "{lease}")


# --- etcdctl README: txn, concurrency, maintenance ---------------------------------------------------


def test_txn_interactive_and_not(members):
    p = Pair(members)
    p.run("put", "key1", "1")
    p.run("put", "key2", "some")
    script = (  # the etcdctl README's txn example
        'mod("key1") > "0"\n\nput key1 "overwrote-key1"\n\n'
        'put key1 "created-key1"\nput key2 "some extra key"\n\n'
    )
    p.run("txn", "--interactive", input=script)
    p.run("txn", "-i", "-w", "json", input=script)
    p.run("txn", "--interactive=false", input=script)
    p.run("txn", input='value("key1") = "overwrote-key1"\n\nget key1\ndel key2\n\nget key2\n\n')
    p.run("txn", input='version("key2") = "0"\ncreate("key1") < "1"\n\nput a b\n\nput c d\n\n')
    p.run("txn", "-w", "fields", input='mod("key1") > "1"\n\nget key1 --prefix\n\n\n')
    p.run("txn", input="bad compare\n\n\n\n", ok=False)
    p.run("get", "", "--from-key", "-w", "json")


def test_lock(members):
    p = Pair(members)
    first = p.streams("lock", "mylock")
    wait_all(first, 1)
    second = p.streams("lock", "mylock")
    time.sleep(WATCH_SETTLE_S)
    for stream in second.values():
        assert stream.out == [], "the second locker must wait"
    p.run("get", "--prefix", "mylock", "--keys-only")
    out = p.compare_streams(first)["etcd"]
    assert re.fullmatch(r"mylock/HEXID\n\n", out)
    wait_all(second, 1)
    p.compare_streams(second)
    # with a command: runs it holding the lock, then releases
    p.run("lock", "mylock", "--", "sh", "-c", 'echo "locked $ETCD_LOCK_KEY"')
    p.run("lock", "--ttl=5", "mylock", "--", "false", ok=False)
    p.run("get", "--prefix", "mylock", "--keys-only")


def test_elect(members):
    p = Pair(members)
    leader = p.streams("elect", "myelection", "foo")
    wait_all(leader, 2)
    observer = p.streams("elect", "-l", "myelection")
    wait_all(observer, 2)
    candidate = p.streams("elect", "myelection", "bar")
    time.sleep(WATCH_SETTLE_S)
    out = p.compare_streams(leader)["etcd"]
    assert re.fullmatch(r"myelection/HEXID\nfoo\n", out)
    wait_all(candidate, 2)
    wait_all(observer, 4)
    p.compare_streams(candidate)
    p.compare_streams(observer)
    p.run("elect", "myelection", ok=False)  # no proposal and no -l: usage error


def test_maintenance(members, tmp_path):
    p = Pair(members)
    p.run("put", "mfoo", "bar")
    p.run("endpoint", "health")
    p.run("endpoint", "health", "-w", "json")
    for output in ("simple", "table", "json", "fields"):
        p.run("endpoint", "status", "-w", output, extra_mask=mask_raft_index)
    p.run("endpoint", "hashkv", "-w", "json")
    p.run("endpoint", "hashkv", "-w", "table", extra_mask=lambda t: re.sub(r"\| \d+ \|", "| N |", t))
    p.run("member", "list", "-w", "table")
    p.run("member", "list", "-w", "json")
    p.run("alarm", "list")
    p.run("alarm", "disarm")
    p.run("defrag")
    p.run("move-leader", "1234", ok=False)
    p.run("move-leader", "zz", ok=False)
    for kind, member in members.items():
        target = tmp_path / f"{kind}.db"
        saved = etcdctl(member.address, "snapshot", "save", str(target))
        assert saved.returncode == 0, saved.stderr
        assert saved.stdout == f"Snapshot saved at {target}\n"


@pytest.mark.xfail(
    strict=True,
    reason="a Flotilla snapshot is an LMDB file; etcdctl snapshot status/restore "
    "read bbolt files ('Error: invalid database')",
)
def test_snapshot_status_reads_saved_snapshot(members, tmp_path):
    p = Pair(members)
    revision = p.revision()
    for kind, member in members.items():
        target = tmp_path / f"{kind}.db"
        assert etcdctl(member.address, "snapshot", "save", str(target)).returncode == 0
        status = etcdctl(member.address, "snapshot", "status", str(target), "-w", "json")
        assert status.returncode == 0, f"{kind}: {status.stderr}"
        assert json.loads(status.stdout)["revision"] == revision


def test_move_leader_to_self(members):
    """One member can only move the leadership to itself: etcd 3.4 answers at once, as a success."""
    ids = {}
    for kind, member in members.items():
        status = json.loads(etcdctl(member.address, "endpoint", "status", "-w", "json").stdout)
        ids[kind] = format(status[0]["Status"]["header"]["member_id"], "x")
    outputs = {}
    for kind, member in members.items():
        done = etcdctl(member.address, "move-leader", ids[kind])
        outputs[kind] = (done.returncode, mask(done.stdout, member), mask(done.stderr, member))
    assert outputs["flotilla"] == outputs["etcd"]
    assert outputs["etcd"][1] == "Leadership transferred from HEXID to HEXID\n"


def test_make_mirror_both_ways(members):
    """make-mirror syncs the existing keys under a prefix, then follows its watch; run one way each."""
    p = Pair(members)
    p.run("put", "mirror/a", "1")
    p.run("put", "mirror/b", "2")
    directions = (("flotilla", "etcd", "f2e/"), ("etcd", "flotilla", "e2f/"))
    mirrors = []
    for source, dest, dest_prefix in directions:
        mirrors.append(
            Stream(
                members[source].address,
                ["make-mirror", "--prefix=mirror/", f"--dest-prefix={dest_prefix}", members[dest].address],
            )
        )
    time.sleep(1.0)
    p.run("put", "mirror/c", "3")
    p.run("del", "mirror/a")
    deadline = time.monotonic() + 10
    want = {"f2e/b": "2", "f2e/c": "3"}, {"e2f/b": "2", "e2f/c": "3"}
    while True:
        got = []
        for (_, dest, dest_prefix), _ in zip(directions, want, strict=True):
            done = etcdctl(members[dest].address, "get", "--prefix", dest_prefix)
            lines = done.stdout.splitlines()
            got.append(dict(zip(lines[::2], lines[1::2], strict=True)))
        if tuple(got) == want or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for mirror in mirrors:
        mirror.stop()
    assert tuple(got) == want


@pytest.mark.xfail(
    strict=True,
    reason="a fresh etcd 3.4 member's log starts with its attributes and the "
    "cluster version (raft index 4); a fresh Flotilla member's at raft index 2",
)
def test_raft_index_matches_etcd(members):
    indexes = {}
    for kind, member in members.items():
        status = json.loads(etcdctl(member.address, "endpoint", "status", "-w", "json").stdout)
        indexes[kind] = status[0]["Status"]["raftIndex"]
    assert indexes["flotilla"] == indexes["etcd"]


@pytest.mark.xfail(
    strict=True,
    reason="flotilla.mvcc hashes its own record encoding with CRC-32 (IEEE); etcd "
    "hashes bbolt's key bucket (revision keys, KeyValue protobufs) with CRC-32C",
)
def test_hashkv_matches_etcd(members):
    Pair(members).run("put", "hashed", "v")
    hashes = {}
    for kind, member in members.items():
        done = etcdctl(member.address, "endpoint", "hashkv", "-w", "json")
        hashes[kind] = json.loads(done.stdout)[0]["HashKV"]["hash"]
    assert hashes["flotilla"] == hashes["etcd"]
