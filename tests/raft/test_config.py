"""Config.validate: a member refuses settings it cannot run with, and says which field is wrong."""

from __future__ import annotations

import random

import pytest

from flotilla.raft import Config, ConfigError, MemoryStorage, RawNode


def config(**overrides: object) -> Config:
    return Config(id=overrides.pop("id", 1), rng=random.Random(1), **overrides)  # type: ignore[arg-type]


def test_defaults_are_valid() -> None:
    config().validate()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id": 0}, "id"),  # 0 is NO_LEADER: "nobody" cannot be a member
        ({"id": -3}, "id"),
        ({"heartbeat_interval_ticks": 0}, "heartbeat_interval_ticks"),
        ({"heartbeat_interval_ticks": -1}, "heartbeat_interval_ticks"),
        # Followers must hear several heartbeats per election timeout, or they depose a healthy leader.
        ({"election_timeout_ticks": 5, "heartbeat_interval_ticks": 5}, "election_timeout_ticks"),
        ({"election_timeout_ticks": 3, "heartbeat_interval_ticks": 4}, "election_timeout_ticks"),
        ({"max_inflight_msgs": 0}, "max_inflight_msgs"),
        ({"max_msg_bytes": 0}, "max_msg_bytes"),
        ({"max_msg_bytes": -1}, "max_msg_bytes"),
    ],
)
def test_invalid_settings_are_refused_naming_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        config(**overrides).validate()


def test_a_member_validates_its_config_when_built() -> None:
    with pytest.raises(ConfigError, match="heartbeat_interval_ticks"):
        RawNode(config(heartbeat_interval_ticks=0), MemoryStorage())


def test_a_zero_inflight_byte_budget_is_refused() -> None:
    # None means "no byte limit"; 0 would stall replication forever (etcd treats 0 as "no limit" and
    # requires any other value to be at least max_msg_bytes).
    with pytest.raises(ConfigError, match="max_inflight_bytes"):
        config(max_inflight_bytes=0).validate()
