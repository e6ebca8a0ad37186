"""Where a unit manager keeps things under its root directory, mirroring a real system's paths.

A manager started with ``--root DIR`` reads unit files from ``DIR/etc/systemd/system`` (the
administrator's), ``DIR/run/systemd/system`` (runtime: fleet links its units here) and
``DIR/lib/systemd/system`` (packaged), in that order of precedence, as systemd does for /etc, /run and
/lib. Nothing outside DIR is written, except the unit's cgroup.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Layout"]


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> Layout:
        return cls(Path(root).absolute())

    @property
    def etc_units(self) -> Path:
        return self.root / "etc/systemd/system"

    @property
    def run_units(self) -> Path:
        return self.root / "run/systemd/system"

    @property
    def lib_units(self) -> Path:
        return self.root / "lib/systemd/system"

    @property
    def unit_dirs(self) -> tuple[Path, ...]:
        """Search path, highest precedence first."""
        return (self.etc_units, self.run_units, self.lib_units)

    @property
    def state_dir(self) -> Path:
        return self.root / "run/flotilla-systemd"

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "manager.sock"

    @property
    def notify_dir(self) -> Path:
        return self.state_dir / "notify"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "manager.pid"

    @property
    def journal_dir(self) -> Path:
        return self.root / "var/log/journal"

    @property
    def machine_id_file(self) -> Path:
        return self.root / "etc/machine-id"

    def machine_id(self) -> str:
        """The machine's ID from ``etc/machine-id``, created (32 hex digits) on first use as systemd does
        on a first boot. The unit manager, fleetd and the machine boot all read it here."""
        path = self.machine_id_file
        with contextlib.suppress(OSError):
            text = path.read_text().strip()
            if len(text) == 32:
                return text
        value = uuid.uuid4().hex
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
        return value

    @property
    def instance_tag(self) -> str:
        """Short and stable per root: names this manager's cgroup and tags its processes."""
        return hashlib.sha1(str(self.root).encode()).hexdigest()[:12]

    def make_dirs(self) -> None:
        for path in (self.etc_units, self.run_units, self.state_dir, self.notify_dir, self.journal_dir):
            path.mkdir(parents=True, exist_ok=True)
