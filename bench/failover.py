"""Failover: kill -9 the leader of a 3-member cluster and time until a new leader serves a write, for Flotilla
and Debian's etcd 3.4 with the same election settings, in one run.

Each round: find the leader (Maintenance.Status on every member), write once, kill -9 the leader and start the
clock; then put to each survivor in turn (0.2 s timeout per attempt) until one succeeds: that moment is the
failover time. The killed member is restarted with its data and the cluster settles before the next round.
Flotilla and etcd rounds alternate, so both see the same machine load.

    .venv/bin/python bench/failover.py                   # 10 kills each, etcd's default timers
    .venv/bin/python bench/failover.py --kills 20 --heartbeat-interval 100 --election-timeout 1000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "src"))

from processes import MemberProcess, real_etcd_available, start_cluster  # noqa: E402

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc  # noqa: E402

ATTEMPT_TIMEOUT_S = 0.2
GIVE_UP_S = 30.0


def _status(member: MemberProcess) -> rpc_pb2.StatusResponse | None:
    try:
        with grpc.insecure_channel(member.address) as channel:
            return rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=1)
    except grpc.RpcError:
        return None


def _leader(members: list[MemberProcess]) -> MemberProcess:
    deadline = time.monotonic() + GIVE_UP_S
    while time.monotonic() < deadline:
        for member in members:
            status = _status(member)
            if status is not None and status.leader == status.header.member_id:
                return member
        time.sleep(0.05)
    raise RuntimeError("no leader")


def _put(channels: dict[str, grpc.Channel], member: MemberProcess, key: bytes) -> bool:
    stub = rpc_pb2_grpc.KVStub(channels[member.address])
    try:
        stub.Put(rpc_pb2.PutRequest(key=key, value=b"v"), timeout=ATTEMPT_TIMEOUT_S)
        return True
    except grpc.RpcError:
        return False


def one_round(members: list[MemberProcess], round_no: int) -> float:
    leader = _leader(members)
    channels = {m.address: grpc.insecure_channel(m.address) for m in members}
    try:
        survivors = [m for m in members if m is not leader]
        if not _put(channels, leader, b"before-%d" % round_no):
            _put(channels, leader, b"before-%d" % round_no)
        leader.kill()
        killed_at = time.monotonic()
        attempt = 0
        while time.monotonic() - killed_at < GIVE_UP_S:
            target = survivors[attempt % len(survivors)]
            attempt += 1
            if _put(channels, target, b"after-%d" % round_no):
                return time.monotonic() - killed_at
        raise RuntimeError(f"no write succeeded {GIVE_UP_S:g} s after the leader died")
    finally:
        for channel in channels.values():
            channel.close()
        leader.start()  # back with its data; it rejoins as a follower


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=10, help="leader kills per implementation (default 10)")
    p.add_argument("--heartbeat-interval", type=int, default=100, help="ms, both implementations (100)")
    p.add_argument("--election-timeout", type=int, default=1000, help="ms, both implementations (1000)")
    args = p.parse_args(argv)
    if not real_etcd_available():
        sys.exit("Debian's etcd (/usr/bin/etcd) is needed: apt-get install etcd-server etcd-client")
    flags = (f"--heartbeat-interval={args.heartbeat_interval}", f"--election-timeout={args.election_timeout}")
    times: dict[str, list[float]] = {"flotilla": [], "etcd": []}
    with tempfile.TemporaryDirectory(prefix="flotilla-failover-") as tmp:
        clusters = {kind: start_cluster(kind, Path(tmp) / kind, 3, *flags) for kind in times}
        try:
            for round_no in range(args.kills):
                for kind, members in clusters.items():
                    seconds = one_round(members, round_no)
                    times[kind].append(seconds)
                    line = f"round {round_no + 1:2d} {kind:<8} a new leader served a write in {seconds:.3f} s"
                    print(line, flush=True)
        finally:
            for members in clusters.values():
                for member in members:
                    member.kill()
    print(f"\nkill -9 of the leader, 3 members, heartbeat {args.heartbeat_interval} ms, "
          f"election timeout {args.election_timeout} ms, {args.kills} kills each:")  # fmt: skip
    for kind, values in times.items():
        print(f"  {kind:<8} median {statistics.median(values):.3f} s   max {max(values):.3f} s   "
              f"min {min(values):.3f} s")  # fmt: skip
    ratio = statistics.median(times["flotilla"]) / statistics.median(times["etcd"])
    print(f"  flotilla/etcd median ratio {ratio:.2f} (lower is faster)")


if __name__ == "__main__":
    main()
