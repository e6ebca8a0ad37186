"""The pair of members the differential suite runs on: one Flotilla member and one real etcd 3.4, fresh,
started side by side; a test that made them diverge gets the next test a fresh pair."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from processes import cleanup_dir, start_member
from v3diff_runner import Differ

KINDS = ("flotilla", "etcd")


class MemberPair:
    """Starts both members (in parallel: startup dominates the suite's wall time) and hands out a
    ``Differ`` over them; ``renew`` replaces them when a test left them diverged."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.members: list = []
        self.differ: Differ | None = None
        self.generation = 0

    def start(self) -> Differ:
        self.generation += 1
        base = self.base_dir / f"gen{self.generation}"
        base.mkdir(parents=True)
        with ThreadPoolExecutor(len(KINDS)) as pool:
            futures = [pool.submit(start_member, kind, base) for kind in KINDS]
            errors = []
            for future in futures:
                try:
                    self.members.append(future.result())
                except Exception as error:  # noqa: BLE001 - stop the other member before failing
                    errors.append(error)
        if errors:
            self.stop()
            raise errors[0]
        self.differ = Differ(self.members)
        return self.differ

    def current(self) -> Differ:
        if self.differ is None or self.differ.diverged:
            self.stop()
            return self.start()
        return self.differ

    def stop(self) -> None:
        if self.differ is not None:
            self.differ.close()
            self.differ = None
        for member in self.members:
            member.stop()
            cleanup_dir(member.data_dir)
        self.members = []
