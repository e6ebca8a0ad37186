"""Progress and Inflights: how a leader paces replication to one follower (etcd's tracker package).

PROBE sends one APP per round trip until it finds where the logs match; REPLICATE pipelines APPs
within a window bounded in count and bytes; SNAPSHOT sends nothing until the snapshot is settled.
"""

from __future__ import annotations

import pytest

from flotilla.raft.progress import Inflights, Progress, ProgressState


def progress(
    match: int = 0, next_index: int = 1, state: ProgressState = ProgressState.PROBE, **window
) -> Progress:
    pr = Progress(next_index, Inflights(window.get("count", 4), window.get("max_bytes")))
    pr.match = match
    if state == ProgressState.REPLICATE:
        pr.become_replicate()
    elif state == ProgressState.SNAPSHOT:
        pr.become_snapshot(window.get("snapshot", 10))
    pr.next = next_index
    return pr


class TestInflights:
    def test_full_by_count(self) -> None:
        window = Inflights(3, None)
        for last in (5, 7, 9):
            assert not window.full()
            window.add(last, 100)
        assert window.full()
        assert window.count() == 3

    def test_full_by_bytes(self) -> None:
        window = Inflights(100, 250)
        window.add(1, 100)
        window.add(2, 100)
        assert not window.full()
        window.add(3, 50)
        assert window.full()  # 250 >= 250: the budget is spent

    def test_free_le_releases_every_acknowledged_append(self) -> None:
        window = Inflights(3, 250)
        window.add(5, 100)
        window.add(7, 100)
        window.add(9, 50)
        window.free_le(7)
        assert (window.count(), window.bytes) == (1, 50)
        assert not window.full()
        window.free_le(6)  # already released: nothing changes
        assert window.count() == 1
        window.free_le(100)
        assert (window.count(), window.bytes) == (0, 0)

    def test_free_le_below_the_first_append_releases_nothing(self) -> None:
        window = Inflights(3, None)
        window.add(5, 10)
        window.free_le(4)
        assert window.count() == 1

    def test_free_first(self) -> None:
        window = Inflights(2, None)
        window.add(5, 10)
        window.add(7, 20)
        window.free_first()
        assert (window.count(), window.bytes) == (1, 20)
        window.free_first()
        window.free_first()  # on an empty window: harmless
        assert (window.count(), window.bytes) == (0, 0)

    def test_reset(self) -> None:
        window = Inflights(2, None)
        window.add(5, 10)
        window.add(6, 10)
        window.reset()
        assert (window.count(), window.bytes, window.full()) == (0, 0, False)


class TestProbe:
    def test_one_append_per_round_trip(self) -> None:
        pr = progress(match=0, next_index=5)
        assert not pr.is_paused()
        pr.sent_entries(7, 3, 100)
        assert pr.is_paused()
        assert pr.next == 5  # a probe does not move next optimistically

    def test_an_acknowledgement_resumes_probing(self) -> None:
        pr = progress(match=0, next_index=5)
        pr.sent_entries(7, 3, 100)
        assert pr.maybe_update(7)
        assert (pr.match, pr.next) == (7, 8)
        assert not pr.is_paused()

    def test_an_empty_probe_pauses_too(self) -> None:
        pr = progress(match=0, next_index=5)
        pr.sent_entries(4, 0, 0)
        assert pr.is_paused()


class TestReplicate:
    def test_become_replicate_starts_after_match(self) -> None:
        pr = progress(match=4, next_index=9)
        pr.become_replicate()
        assert (pr.state, pr.next) == (ProgressState.REPLICATE, 5)

    def test_sending_moves_next_optimistically(self) -> None:
        pr = progress(match=4, next_index=5, state=ProgressState.REPLICATE)
        pr.sent_entries(7, 3, 30)
        pr.sent_entries(9, 2, 20)
        assert pr.next == 10
        assert pr.match == 4
        assert not pr.is_paused()

    def test_window_full_by_count_pauses(self) -> None:
        pr = progress(match=4, next_index=5, state=ProgressState.REPLICATE, count=2)
        pr.sent_entries(5, 1, 10)
        assert not pr.is_paused()
        pr.sent_entries(6, 1, 10)
        assert pr.is_paused()

    def test_window_full_by_bytes_pauses(self) -> None:
        pr = progress(match=4, next_index=5, state=ProgressState.REPLICATE, count=100, max_bytes=1000)
        pr.sent_entries(5, 1, 600)
        assert not pr.is_paused()
        pr.sent_entries(6, 1, 400)
        assert pr.is_paused()

    def test_an_acknowledgement_reopens_the_window(self) -> None:
        pr = progress(match=4, next_index=5, state=ProgressState.REPLICATE, count=2)
        pr.sent_entries(5, 1, 10)
        pr.sent_entries(6, 1, 10)
        assert pr.maybe_update(5)
        pr.inflights.free_le(5)
        assert not pr.is_paused()
        assert (pr.match, pr.next) == (5, 7)

    def test_an_empty_append_takes_no_window_slot(self) -> None:
        pr = progress(match=4, next_index=5, state=ProgressState.REPLICATE, count=1)
        pr.sent_entries(4, 0, 0)
        assert not pr.is_paused()
        assert pr.next == 5

    def test_a_stale_acknowledgement_moves_nothing(self) -> None:
        pr = progress(match=6, next_index=9, state=ProgressState.REPLICATE)
        assert not pr.maybe_update(5)
        assert (pr.match, pr.next) == (6, 9)  # next never goes backwards on an ack

    def test_become_probe_restarts_after_match(self) -> None:
        pr = progress(match=6, next_index=9, state=ProgressState.REPLICATE)
        pr.sent_entries(9, 1, 10)
        pr.become_probe()
        assert (pr.state, pr.next, pr.inflights.count()) == (ProgressState.PROBE, 7, 0)


class TestMaybeDecrTo:
    """A rejection of the APP whose preceding entry was ``rejected``, with the follower's hint."""

    @pytest.mark.parametrize("rejected", [3, 6])
    def test_replicate_ignores_rejections_at_or_below_match(self, rejected: int) -> None:
        # Only a reordered, stale rejection can name an index the follower already acknowledged.
        pr = progress(match=6, next_index=11, state=ProgressState.REPLICATE)
        assert not pr.maybe_decr_to(rejected, 0)
        assert pr.next == 11

    def test_replicate_falls_back_to_match_on_a_real_rejection(self) -> None:
        pr = progress(match=6, next_index=11, state=ProgressState.REPLICATE)
        assert pr.maybe_decr_to(9, 2)
        assert pr.next == 7  # the hint cannot take next below what the follower acknowledged

    def test_probe_ignores_rejections_of_older_probes(self) -> None:
        pr = progress(match=0, next_index=8)
        pr.sent_entries(8, 1, 10)
        assert not pr.maybe_decr_to(9, 3)  # not the probe in flight (it had index 7)
        assert not pr.maybe_decr_to(5, 3)
        assert pr.next == 8
        assert pr.is_paused()

    def test_probe_jumps_to_the_hint(self) -> None:
        pr = progress(match=0, next_index=8)
        pr.sent_entries(8, 1, 10)
        assert pr.maybe_decr_to(7, 3)
        assert pr.next == 4
        assert not pr.is_paused()  # the next probe may go at once

    def test_probe_never_goes_below_match_plus_one(self) -> None:
        pr = progress(match=5, next_index=8)
        assert pr.maybe_decr_to(7, 1)
        assert pr.next == 6

    def test_probe_steps_back_one_when_the_hint_is_past_the_rejection(self) -> None:
        pr = progress(match=0, next_index=8)
        assert pr.maybe_decr_to(7, 20)
        assert pr.next == 7


class TestSnapshot:
    def test_a_member_receiving_a_snapshot_is_paused(self) -> None:
        pr = progress(match=2, next_index=3)
        pr.become_snapshot(10)
        assert (pr.state, pr.pending_snapshot) == (ProgressState.SNAPSHOT, 10)
        assert pr.is_paused()
        pr.probe_sent = False  # heartbeat responses do not unpause a snapshot transfer
        assert pr.is_paused()

    def test_a_rejection_does_not_move_a_snapshot_transfer(self) -> None:
        pr = progress(match=2, next_index=3)
        pr.become_snapshot(10)
        assert not pr.maybe_decr_to(5, 1)
        assert pr.state == ProgressState.SNAPSHOT

    def test_after_a_delivered_snapshot_probe_resumes_after_it(self) -> None:
        pr = progress(match=2, next_index=3)
        pr.become_snapshot(10)
        pr.become_probe()
        assert (pr.state, pr.next) == (ProgressState.PROBE, 11)

    def test_after_a_failed_snapshot_probe_resumes_after_match(self) -> None:
        pr = progress(match=2, next_index=3)
        pr.become_snapshot(10)
        pr.pending_snapshot = 0  # what the leader does on a failed SNAP_STATUS
        pr.become_probe()
        assert pr.next == 3

    def test_an_acknowledgement_past_the_snapshot_updates_match(self) -> None:
        pr = progress(match=2, next_index=3)
        pr.become_snapshot(10)
        assert pr.maybe_update(12)
        assert (pr.match, pr.next) == (12, 13)
