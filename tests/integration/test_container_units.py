"""Container units run for real under the embedded unit manager: one with `podman run`, one written with
`docker run` as in the seeds (the Docker CLI driving podman through its API socket). Each is started, its
output reaches the journal, and a stop leaves no container and no process behind."""

from __future__ import annotations

import sys
from pathlib import Path

from containers_env import docker_socket, processes_matching, require_podman

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "systemd"))
from supervisor_harness import Unitd  # noqa: E402


def _nothing_left(env, unitd: Unitd, unit: str, container: str) -> None:
    # `--rm` removal runs in conmon's cleanup process, which the unit's final kill may cut short; units
    # therefore end with `ExecStopPost=-podman rm -f` as podman's generated units do. Slow under load.
    unitd.wait_for(lambda: not env.containers(container), f"container {container} to be removed", 60)
    unitd.wait_for(lambda: not processes_matching(container), f"no process mentioning {container}", 60)
    assert not unitd.unit_pids(unit)


def test_podman_run_unit_starts_logs_and_stops_clean(tmp_path: Path) -> None:
    env = require_podman()
    name = "flotilla-unit-podman"
    env.remove_all(name)
    unitd = Unitd(tmp_path, setenv=env.env).start()
    try:
        unitd.write_unit(
            "hello-podman.service",
            f"""
            [Unit]
            Description=Hello from a podman container
            [Service]
            ExecStartPre=-{env.podman} kill {name}
            ExecStartPre=-{env.podman} rm {name}
            ExecStart={env.podman} run --rm --init --name {name} {env.image} \\
                /bin/sh -c "while true; do echo hello from podman; sleep 0.3; done"
            ExecStop={env.podman} stop -t 5 {name}
            ExecStopPost=-{env.podman} rm -f {name}
            """,
        )
        assert unitd.start_unit("hello-podman.service").ok
        unitd.wait_journal("hello-podman.service", "hello from podman")
        assert env.containers(name) == [name]
        result = unitd.stop_unit("hello-podman.service")
        assert result.ok
        _nothing_left(env, unitd, "hello-podman.service", name)
    finally:
        unitd.stop()
        env.remove_all(name)


def test_seed_docker_unit_through_podmans_socket(tmp_path: Path) -> None:
    """The seeds' pattern: `-docker kill`/`-docker rm` before `docker run --name`, `docker stop` to stop,
    Restart=always; the pre-commands fail on the first start (no such container) and are forgiven."""
    env = require_podman()
    docker = env.require_docker()
    name = "flotilla-unit-busybox1"
    env.remove_all(name)
    sock_dir = Path("/tmp") / f"flsock-{tmp_path.name[-20:]}"
    with docker_socket(env, sock_dir) as docker_host:
        unitd = Unitd(tmp_path, setenv={**env.env, "DOCKER_HOST": docker_host}).start()
        try:
            unitd.write_unit(
                "busybox1.service",
                f"""
                [Unit]
                Description=MyApp
                [Service]
                TimeoutStartSec=0
                ExecStartPre=-{docker} kill {name}
                ExecStartPre=-{docker} rm {name}
                ExecStart={docker} run --name {name} {env.image} \\
                    /bin/sh -c "while true; do echo Hello World; sleep 0.3; done"
                ExecStop={docker} stop {name}
                ExecStopPost=-{docker} rm {name}
                Restart=always
                """,
            )
            assert unitd.start_unit("busybox1.service").ok
            unitd.wait_journal("busybox1.service", "Hello World")
            assert env.containers(name) == [name]
            assert unitd.stop_unit("busybox1.service").ok
            status = unitd.status("busybox1.service")
            # `docker stop` kills the container (podman's API gives it no grace time), so `docker run`
            # exits 137: a failure to systemd too, unless SuccessExitStatus=137. No restart follows a stop.
            assert status.active_state in ("inactive", "failed") and status.n_restarts == 0
            _nothing_left(env, unitd, "busybox1.service", name)
        finally:
            unitd.stop()
            env.remove_all(name)


def test_container_unit_without_exec_stop_is_stopped_by_its_signal(tmp_path: Path) -> None:
    """No ExecStop: the manager's SIGTERM reaches `podman run`, which forwards it into the container
    (--init makes the container's PID 1 act on it) and removes it (--rm)."""
    env = require_podman()
    name = "flotilla-unit-sigterm"
    env.remove_all(name)
    unitd = Unitd(tmp_path, setenv=env.env).start()
    try:
        unitd.write_unit(
            "sigterm.service",
            f"""
            [Service]
            ExecStart={env.podman} run --rm --init --name {name} {env.image} \\
                /bin/sh -c "while true; do echo tick; sleep 0.3; done"
            TimeoutStopSec=20
            """,
        )
        assert unitd.start_unit("sigterm.service").ok
        unitd.wait_journal("sigterm.service", "tick")
        assert unitd.stop_unit("sigterm.service").ok
        _nothing_left(env, unitd, "sigterm.service", name)
    finally:
        unitd.stop()
        env.remove_all(name)
