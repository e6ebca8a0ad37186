"""A member's raft settings."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .errors import ConfigError


@dataclass
class Config:
    """Raft settings for one member. Times are in ticks; the application decides how long a tick is."""

    id: int
    rng: random.Random = field(repr=False)  # seeded: the randomized election timeouts come from here
    election_timeout_ticks: int = 10  # a follower campaigns after [this, 2*this) ticks of silence
    heartbeat_interval_ticks: int = 1
    max_msg_bytes: int = 1 << 20  # entries per APP, by payload size (at least one entry is sent)
    max_inflight_msgs: int = 256  # pipelined APPs per follower before waiting for acks
    max_inflight_bytes: int | None = None
    max_apply_bytes: int | None = None  # committed entries per Ready
    pre_vote: bool = True  # thesis §9.6: a partitioned member rejoining does not bump terms
    check_quorum: bool = True  # thesis §6.2: a leader that cannot reach a quorum steps down
    disable_proposal_forwarding: bool = False
    applied: int = 0  # the state machine's last applied index at start (0: replay from the snapshot)

    def validate(self) -> None:
        if self.id <= 0:
            raise ConfigError(f"id must be a positive integer, got {self.id}")
        if self.heartbeat_interval_ticks <= 0:
            raise ConfigError("heartbeat_interval_ticks must be positive")
        if self.election_timeout_ticks <= self.heartbeat_interval_ticks:
            raise ConfigError(
                f"election_timeout_ticks ({self.election_timeout_ticks}) must exceed "
                f"heartbeat_interval_ticks ({self.heartbeat_interval_ticks})"
            )
        if self.max_inflight_msgs <= 0:
            raise ConfigError("max_inflight_msgs must be positive")
        if self.max_inflight_bytes is not None and self.max_inflight_bytes <= 0:
            raise ConfigError("max_inflight_bytes must be positive, or None for no byte limit")
        if self.max_msg_bytes <= 0:
            raise ConfigError("max_msg_bytes must be positive")
