"""Every knob of one simulated run, derived from its seed."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

MS = 1000  # virtual microseconds per millisecond


@dataclass(frozen=True)
class SimConfig:
    seed: int
    members: int  # founding voters
    tick_us: int
    election_timeout_ticks: int
    heartbeat_interval_ticks: int
    max_msg_bytes: int
    max_inflight_msgs: int
    pre_vote: bool
    check_quorum: bool
    fault_phase_us: int  # faults happen during this window, then everything heals
    liveness_bound_us: int  # after healing, a leader and a new commit must appear within this
    delay_min_us: int
    delay_max_us: int
    loss: float  # probability a message is dropped
    duplicate: float  # probability a message is delivered twice
    spike: float  # probability a message is delayed by up to 20x the maximum delay
    partition_rate_per_s: float
    partition_max_us: int
    asymmetric: float  # probability a partition blocks one direction only
    swizzle_rate_per_s: float
    crash_rate_per_s: float
    new_leader_crash: float  # probability that a newly elected leader crashes within 30 ms
    down_max_us: int
    torn_write: float  # probability a crash keeps a random prefix of the unsynced write
    fsync_min_us: int
    fsync_max_us: int
    membership_rate_per_s: float
    transfer_rate_per_s: float
    write_interval_us: int
    read_interval_us: int
    max_apply_bytes: int | None  # committed entries per Ready
    snapshot_every: int  # a member snapshots and compacts after this many applied entries
    keys: int

    @classmethod
    def from_seed(cls, seed: int) -> SimConfig:
        rng = random.Random(f"config-{seed}")
        calm = rng.random() < 0.1  # some seeds run without faults, to catch liveness bugs alone
        # Churn seeds crash leaders often and replicate one entry per message, so that a new leader
        # spends a while re-replicating entries of older terms: Figure 8 of the raft paper.
        churn = not calm and rng.random() < 0.25
        members = rng.choice((3, 5)) if churn else rng.choice((1, 3, 3, 3, 4, 5, 5))
        delay_min = rng.choice((100, 500, 1 * MS, 2 * MS))
        return cls(
            seed=seed,
            members=members,
            tick_us=10 * MS,
            election_timeout_ticks=10,
            heartbeat_interval_ticks=rng.choice((1, 2, 3)),
            max_msg_bytes=1 if churn else rng.choice((64, 512, 1 << 20)),
            max_inflight_msgs=1 if churn else rng.choice((1, 4, 256)),
            pre_vote=rng.random() < 0.8,
            check_quorum=rng.random() < 0.8,
            fault_phase_us=rng.randrange(500, 3_000) * MS,
            liveness_bound_us=6_000 * MS,
            delay_min_us=delay_min,
            delay_max_us=delay_min + rng.choice((1 * MS, 5 * MS, 20 * MS, 60 * MS)),
            loss=0.0 if calm else rng.choice((0.0, 0.01, 0.05, 0.2)),
            duplicate=0.0 if calm else rng.choice((0.0, 0.01, 0.05)),
            spike=0.0 if calm else rng.choice((0.0, 0.005, 0.02)),
            partition_rate_per_s=0.0 if calm else rng.choice((0.0, 0.5, 1.0, 3.0)),
            partition_max_us=rng.choice((200, 800, 2_000)) * MS,
            asymmetric=rng.choice((0.0, 0.3)),
            swizzle_rate_per_s=0.0 if calm else rng.choice((0.0, 0.0, 0.5)),
            new_leader_crash=rng.choice((0.3, 0.6)) if churn else 0.0,
            crash_rate_per_s=4.0 if churn else 0.0 if calm else rng.choice((0.0, 0.3, 1.0, 2.0)),
            down_max_us=rng.choice((100, 300) if churn else (100, 500, 1_500)) * MS,
            torn_write=rng.choice((0.0, 0.5)),
            fsync_min_us=rng.choice((100, 1 * MS)),
            fsync_max_us=rng.choice((2 * MS, 10 * MS, 40 * MS)),
            membership_rate_per_s=0.0 if calm else rng.choice((0.0, 0.0, 0.5, 1.5)),
            transfer_rate_per_s=rng.choice((0.0, 0.0, 0.5)),
            write_interval_us=rng.choice((2, 5, 20)) * MS,
            read_interval_us=rng.choice((5, 20)) * MS,
            max_apply_bytes=rng.choice((None, None, 64)),
            snapshot_every=rng.choice((10, 40, 1_000_000)),
            keys=rng.choice((1, 3)),
        )

    def describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in asdict(self).items())
