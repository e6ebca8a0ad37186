"""The container runtime tests rely on (tests/integration/containers_env.py): podman with the private
configuration, and the Docker CLI through podman's API socket. Each test states a behaviour the unit
supervisor depends on (docs/containers.md), and leaves no container and no process behind."""

from __future__ import annotations

import itertools
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from containers_env import (
    IMAGE,
    ContainerEnvError,
    PodmanEnv,
    conmon_processes,
    docker_socket,
    ensure_podman,
    processes_matching,
    require_podman,
)

LOOP = "while true; do echo Hello World {marker}; sleep 1; done"
_counter = itertools.count()


@pytest.fixture
def podman_env() -> PodmanEnv:
    return require_podman()


@pytest.fixture
def prefix(podman_env: PodmanEnv):
    """A container-name prefix no other test (or parallel run) uses; everything under it is removed after."""
    name_prefix = f"fl-cenv-{os.getpid()}-{next(_counter)}-"
    yield name_prefix
    podman_env.remove_all(name_prefix)


@pytest.fixture
def docker_host(podman_env: PodmanEnv):
    podman_env.require_docker()
    # Short path: a unix socket address is limited to 107 bytes, pytest's tmp_path can be longer.
    directory = tempfile.mkdtemp(prefix="fl-cenv-", dir="/tmp")
    try:
        with docker_socket(podman_env, directory) as host:
            yield host
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class Client:
    """A `podman run` / `docker run` process started the way the supervisor starts ExecStart: in its own
    process group, output on a pipe. Killed (group) at teardown if a test left it running."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.output = b""

    def wait_output(self, text: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while text.encode() not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {text!r} from {self.proc.args} within {timeout_s} s: {self.output!r}"
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, f"{self.proc.args} closed its output before {text!r}: {self.output!r}"
                self.output += chunk

    def signal_group(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout_s: float = 60.0) -> int:
        rest, _ = self.proc.communicate(timeout=timeout_s)
        self.output += rest
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.communicate()


@pytest.fixture
def clients():
    started: list[Client] = []

    def start(argv: list[str], env: dict[str, str]) -> Client:
        started.append(Client(argv, env))
        return started[-1]

    yield start
    for client in started:
        client.close()


def wait_gone(what: str, probe, timeout_s: float = 30.0) -> None:
    """Poll until ``probe()`` is empty: conmon and podman's cleanup run after the client has exited."""
    deadline = time.monotonic() + timeout_s
    while (left := probe()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"{what} still present after {timeout_s} s: {left}"


def assert_nothing_left(env: PodmanEnv, prefix: str, marker: str) -> None:
    wait_gone("containers", lambda: env.containers(prefix))
    wait_gone("conmon processes", lambda: conmon_processes(prefix))
    wait_gone("container processes", lambda: processes_matching(marker))


def run_pre_steps(cli: list[str], env: dict[str, str], name: str) -> list[int]:
    """The seeds' `ExecStartPre=-docker kill NAME` and `ExecStartPre=-docker rm NAME` (failures ignored)."""
    codes = []
    for verb in ("kill", "rm"):
        codes.append(subprocess.run([*cli, verb, name], env=env, capture_output=True, timeout=120).returncode)
    return codes


def test_ensure_podman_is_idempotent_and_a_second_process_only_checks(podman_env):
    assert ensure_podman() is podman_env
    assert podman_env.image == IMAGE
    assert Path(podman_env.env["CONTAINERS_CONF"]).read_text().count('runtime = "runc"') == 1
    code = (
        "import containers_env as c; e = c.ensure_podman(); "
        "assert e.timings_s == {}, e.timings_s; print(e.image)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == IMAGE


def test_parallel_callers_build_the_image_once(podman_env, tmp_path):
    """Three processes race on a fresh cache directory and image name: the file lock lets one import."""
    image = f"localhost/fl-cenv-{os.getpid()}-race:latest"
    env = {**os.environ, "FLOTILLA_PODMAN_DIR": str(tmp_path / "cache"), "FLOTILLA_PODMAN_IMAGE": image}
    code = "import containers_env as c; e = c.ensure_podman(); print(sorted(e.timings_s))"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=Path(__file__).parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        results = [racer.communicate(timeout=120) for racer in racers]
        assert [racer.returncode for racer in racers] == [0, 0, 0], results
        assert sorted(out.strip() for out, _ in results) == ["['image_import']", "[]", "[]"]
        done = podman_env.run("run", "--rm", image, "sh", "-c", "echo raced")
        assert done.stdout.strip() == "raced"
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
        podman_env.run("rmi", "--force", image, check=False)


def test_podman_run_prints_output_and_exits(podman_env, prefix):
    name = f"{prefix}hello"
    done = podman_env.run(
        "run", "--rm", "--name", name, IMAGE, "sh", "-c", "echo hello from $(id -un); sleep 0"
    )
    assert done.stdout.strip() == "hello from root"
    assert podman_env.containers(prefix) == []


def test_remove_all_refuses_an_empty_prefix(podman_env):
    with pytest.raises(ValueError, match="non-empty"):
        podman_env.remove_all("")


def test_sigterm_to_podman_run_with_rm_and_init_stops_and_removes_the_container(podman_env, prefix, clients):
    """The supervisor's stop of `ExecStart=podman run --rm --init ...`: SIGTERM to the unit's group. podman
    proxies it into the container, catatonit passes it on, the shell dies, --rm removes the container."""
    name, marker = f"{prefix}term", f"mk-{prefix}term"
    argv = [
        podman_env.podman,
        "run",
        "--rm",
        "--init",
        "--name",
        name,
        IMAGE,
        "sh",
        "-c",
        LOOP.format(marker=marker),
    ]
    client = clients(argv, podman_env.subprocess_env())
    client.wait_output("Hello World")
    assert conmon_processes(name), "conmon runs outside the client's group; the scan must see it"
    client.signal_group(signal.SIGTERM)
    assert client.wait() == 128 + signal.SIGTERM
    assert_nothing_left(podman_env, prefix, marker)


def test_sigkill_to_the_client_leaves_the_container_running(podman_env, prefix, clients):
    """Why a supervisor must not SIGKILL first: conmon is reparented to PID 1, so the container survives
    its client; only `podman rm -f` (or the seeds' ExecStartPre kill/rm) removes it."""
    name, marker = f"{prefix}orphan", f"mk-{prefix}orphan"
    argv = [
        podman_env.podman,
        "run",
        "--rm",
        "--init",
        "--name",
        name,
        IMAGE,
        "sh",
        "-c",
        LOOP.format(marker=marker),
    ]
    client = clients(argv, podman_env.subprocess_env())
    client.wait_output("Hello World")
    client.signal_group(signal.SIGKILL)
    client.wait()
    assert podman_env.containers(prefix) == [name]
    assert processes_matching(marker), "the container's shell outlives a SIGKILLed client"
    assert podman_env.remove_all(prefix) == [name]
    assert_nothing_left(podman_env, prefix, marker)


def test_seed_sequence_with_podman(podman_env, prefix, clients):
    """kill/rm (both fail: nothing to kill), run --name, stop NAME, as a seed unit with `docker` replaced
    by podman. --init makes `podman stop` prompt (a bare shell as PID 1 ignores SIGTERM: 10 s, then KILL)."""
    name, marker = f"{prefix}seed", f"mk-{prefix}seed"
    env = podman_env.subprocess_env()
    assert run_pre_steps([podman_env.podman], env, name) == [125, 1]
    argv = [podman_env.podman, "run", "--init", "--name", name, IMAGE, "sh", "-c", LOOP.format(marker=marker)]
    client = clients(argv, env)
    client.wait_output("Hello World")
    podman_env.run("stop", name)
    assert client.wait() == 128 + signal.SIGTERM
    assert podman_env.containers(prefix) == [name], "without --rm the exited container stays until `rm`"
    # The next start's ExecStartPre steps clean it: kill fails (not running), rm succeeds.
    assert run_pre_steps([podman_env.podman], env, name) == [125, 0]
    assert_nothing_left(podman_env, prefix, marker)


def test_docker_cli_runs_a_container_through_the_socket(podman_env, prefix, docker_host):
    name = f"{prefix}dhello"
    done = subprocess.run(
        [podman_env.require_docker(), "run", "--rm", "--name", name, IMAGE, "sh", "-c", "echo hi via docker"],
        env=podman_env.subprocess_env(DOCKER_HOST=docker_host),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "hi via docker"), done.stderr
    assert podman_env.containers(prefix) == []


def test_seed_sequence_with_docker_cli(podman_env, prefix, docker_host, clients):
    """The seeds' unit verbatim (no --init). `docker stop NAME` reaches podman 4.3's compat API without a
    timeout, which podman reads as 0: the container is SIGKILLed at once (exit 137)."""
    name, marker = f"{prefix}dseed", f"mk-{prefix}dseed"
    docker = [podman_env.require_docker()]
    env = podman_env.subprocess_env(DOCKER_HOST=docker_host)
    assert run_pre_steps(docker, env, name) == [1, 1]
    client = clients([*docker, "run", "--name", name, IMAGE, "sh", "-c", LOOP.format(marker=marker)], env)
    client.wait_output("Hello World")
    assert subprocess.run([*docker, "stop", name], env=env, capture_output=True, timeout=120).returncode == 0
    assert client.wait() == 137
    assert podman_env.containers(prefix) == [name]
    assert run_pre_steps(docker, env, name) == [1, 0]
    assert_nothing_left(podman_env, prefix, marker)


def test_sigterm_to_docker_run_is_proxied_into_the_container(podman_env, prefix, docker_host, clients):
    """`docker run` attached (no -d, no -t) has --sig-proxy=true: SIGTERM to the CLI reaches the container."""
    name, marker = f"{prefix}dterm", f"mk-{prefix}dterm"
    argv = [podman_env.require_docker(), "run", "--rm", "--init", "--name", name, IMAGE]
    client = clients(
        [*argv, "sh", "-c", LOOP.format(marker=marker)], podman_env.subprocess_env(DOCKER_HOST=docker_host)
    )
    client.wait_output("Hello World")
    client.signal_group(signal.SIGTERM)
    client.wait()
    assert_nothing_left(podman_env, prefix, marker)


def test_docker_socket_stops_its_service_on_exit(podman_env):
    directory = tempfile.mkdtemp(prefix="fl-cenv-", dir="/tmp")
    try:
        with docker_socket(podman_env, directory) as host:
            assert host == f"unix://{directory}/podman.sock"
            assert processes_matching(host)
        assert processes_matching(host) == []
        assert not Path(directory, "podman.sock").exists()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_docker_socket_refuses_a_path_too_long_for_a_unix_socket(podman_env, tmp_path):
    with pytest.raises(ContainerEnvError, match="107-byte limit"):
        with docker_socket(podman_env, tmp_path / ("d" * 120)):
            pass
