"""Helpers for the local-cluster tests: ports free on every machine address, the README's walkthrough as
a list of shell commands, and one bash session that runs them the way a user types them."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from flotilla.localcluster import machine_ip
from flotilla.ports import free_port

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"
FLOTILLA = VENV / "bin/flotilla"
README = REPO / "README.md"

_MARK = "@@@walkthrough-rc="


def _free_on_all(port: int, size: int) -> bool:
    for index in range(size):
        with socket.socket() as s:
            try:
                s.bind((machine_ip(index), port))
            except OSError:
                return False
    return True


def cluster_ports(size: int = 3) -> tuple[int, int]:
    """A client and a peer port free on 127.0.0.2 .. 127.0.0.(size+1), never etcd's well-known ones."""
    found: list[int] = []
    while len(found) < 2:
        port = free_port()
        if port not in found and _free_on_all(port, size):
            found.append(port)
    return found[0], found[1]


# --- the README's walkthrough -----------------------------------------------------------------------------


def walkthrough_blocks(readme: str) -> list[str]:
    """The ```sh blocks of the README's "## Walkthrough" section, in order."""
    section = readme.split("\n## Walkthrough\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)


def split_commands(block: str) -> list[str]:
    """One entry per command as a user types it: a line, with its `\\` continuations and here-document."""
    commands: list[str] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        text = [line]
        while text[-1].endswith("\\") and i < len(lines):
            text.append(lines[i])
            i += 1
        heredoc = re.search(r"<<-?\s*(['\"]?)(\w+)\1", line)
        if heredoc:
            while i < len(lines):
                text.append(lines[i])
                i += 1
                if text[-1].strip() == heredoc.group(2):
                    break
        commands.append("\n".join(text))
    return commands


def with_ports(command: str, client_port: int, peer_port: int) -> str:
    """The command with etcd's default ports replaced by the test's (the only change the test makes)."""
    return re.sub(r":2379\b", f":{client_port}", re.sub(r":2380\b", f":{peer_port}", command))


# --- a bash session ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    command: str
    status: int
    output: str


class BashSession:
    """One interactive-like bash process: variables and exports carry from one command to the next, as
    in the user's terminal. Each command's output (stdout and stderr) and exit status are returned."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=cwd, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.history: list[Ran] = []

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def run(self, command: str, timeout_s: float = 120.0) -> Ran:
        assert self.process.stdin is not None
        # printf's leading newline ends output that has none (curl's JSON), so the mark is a line of its own.
        self.process.stdin.write(f"{command}\nprintf '\\n{_MARK}%s\\n' \"$?\"\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout_s
        output: list[str] = []
        while True:
            try:
                line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"{command!r} still running after {timeout_s:.0f} s:\n{''.join(output)}"
                ) from None
            if line is None:
                raise AssertionError(f"bash exited during {command!r}:\n{''.join(output)}")
            if line.startswith(_MARK):
                text = "".join(output)
                ran = Ran(command, int(line[len(_MARK) :]), text[:-1] if text.endswith("\n") else text)
                self.history.append(ran)
                return ran
            output.append(line)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(30)

    def transcript(self) -> str:
        return "\n".join(f"$ {r.command}\n{r.output}\n[exit {r.status}]" for r in self.history)


def user_env(home: Path) -> dict[str, str]:
    """A user's environment with ``home`` as HOME and none of the test runner's Flotilla, etcdctl or
    fleetctl settings (or its virtualenv on PATH): the walkthrough must set up what it needs itself."""
    dropped = ("FLOTILLA_", "ETCDCTL_", "FLEETCTL_", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env["PATH"] = os.pathsep.join(
        p
        for p in env.get("PATH", "").split(os.pathsep)
        if p and Path(p).resolve() != (VENV / "bin").resolve()
    )
    env["HOME"] = str(home)
    return env
