"""A real container runtime for tests: Debian's podman with a private configuration, a tiny busybox image
made locally (no registry is reachable), and the Docker CLI driving podman through its API socket.

``ensure_podman()`` installs and prepares everything once per machine (later calls, from any process, only
check); ``docker_socket()`` runs ``podman system service`` for the Docker CLI. What podman and docker do
on SIGTERM, where conmon lives and how long each step takes are written down in docs/containers.md.
Tests call ``require_podman()``: it skips only when apt itself cannot be used, and fails loudly otherwise.
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CACHE_DIR = Path(os.environ.get("FLOTILLA_PODMAN_DIR", "/tmp/flotilla-podman"))
# Overridable so a test can exercise the build path without touching the image other tests use.
IMAGE = os.environ.get("FLOTILLA_PODMAN_IMAGE", "localhost/flotilla-bb:latest")
PACKAGES = ("podman", "runc", "catatonit", "busybox-static")
DOCKER_CLI_CANDIDATES = ("/usr/local/bin/docker", "/usr/bin/docker")
# Bumped whenever the image recipe changes, so a machine with an older image builds it again.
IMAGE_RECIPE_VERSION = "1"
_IMAGE_VERSION_LABEL = "org.flotilla.bb-recipe"
_APT_TIMEOUT_S = 900.0
_PODMAN_TIMEOUT_S = 120.0
_SOCKET_READY_TIMEOUT_S = 60.0
_SERVICE_STOP_TIMEOUT_S = 15.0
# sun_path is 108 bytes on Linux including the terminating NUL.
_MAX_SOCKET_PATH = 107

# crun fails here ("cgroups in hybrid mode not supported") and root lacks CAP_SYS_RESOURCE, so podman's
# default ulimits cannot be set; the file events logger avoids journald, which does not run here.
CONTAINERS_CONF = """\
# Written by tests/integration/containers_env.py; passed to podman with CONTAINERS_CONF, /etc is untouched.
[containers]
default_ulimits = ["nofile=10000:10000", "nproc=4096:4096"]
init_path = "/usr/bin/catatonit"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


class ContainerEnvError(RuntimeError):
    """podman (or the Docker CLI through it) cannot work here; the message says which step failed."""


class AptUnavailable(ContainerEnvError):
    """Packages are missing and apt cannot install them (no apt-get, or not root): tests skip on this."""


@dataclass(frozen=True)
class PodmanEnv:
    """A prepared podman. ``env`` holds what to add to a unit's or subprocess's environment."""

    podman: str
    image: str
    env: dict[str, str]
    conf_path: Path
    docker: str | None = None  # the Docker CLI, when this machine has one
    timings_s: dict[str, float] = field(default_factory=dict, compare=False)

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        """os.environ with this runtime's variables (and ``extra``) on top."""
        return {**os.environ, **self.env, **extra}

    def run(self, *args: str, check: bool = True, timeout_s: float = _PODMAN_TIMEOUT_S):
        """``podman ARGS`` with this environment; output captured as text."""
        return _run([self.podman, *args], env=self.subprocess_env(), check=check, timeout_s=timeout_s)

    def containers(self, prefix: str = "") -> list[str]:
        """Names of the containers present in every state, optionally only those starting with ``prefix``."""
        out = self.run("ps", "--all", "--format", "{{.Names}}").stdout
        return sorted(name for name in out.split() if name.startswith(prefix))

    def remove_all(self, prefix: str) -> list[str]:
        """Kill and remove every container whose name starts with ``prefix``; returns their names.

        An empty prefix is refused: it would remove containers of every other test on the machine."""
        if not prefix:
            raise ValueError("remove_all needs a non-empty name prefix (it would remove every container)")
        names = self.containers(prefix)
        if names:
            # --time 0: SIGKILL at once; a cleanup must not wait out a shell that ignores SIGTERM.
            self.run("rm", "--force", "--ignore", "--time", "0", *names)
        return names

    def require_docker(self) -> str:
        """The Docker CLI's path, or an error saying it is missing."""
        if self.docker is None:
            raise ContainerEnvError(
                f"no Docker CLI at {' or '.join(DOCKER_CLI_CANDIDATES)} or on PATH; the CI image ships "
                "/usr/local/bin/docker (a static client binary from download.docker.com) — install it there"
            )
        return self.docker


_cached_env: PodmanEnv | None = None


def ensure_podman() -> PodmanEnv:
    """Install podman and its helpers, write the private containers.conf and import the busybox image,
    each only if missing. Safe to call from parallel processes (a file lock); cheap once done.

    Raises AptUnavailable when packages are missing and apt cannot be used, ContainerEnvError when any
    other step fails (the message names the step and carries the tool's output)."""
    global _cached_env
    if _cached_env is not None:
        return _cached_env
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    timings_s: dict[str, float] = {}
    with _file_lock(CACHE_DIR / "lock"):
        missing = _missing_packages()
        if missing:
            started = time.monotonic()
            _apt_install(missing)
            timings_s["apt_install"] = time.monotonic() - started
        podman = shutil.which("podman") or "/usr/bin/podman"
        conf_path = _write_conf(CACHE_DIR / "containers.conf")
        env = {"CONTAINERS_CONF": str(conf_path)}
        if not _image_is_current(podman, env):
            started = time.monotonic()
            _import_image(podman, env)
            timings_s["image_import"] = time.monotonic() - started
    _cached_env = PodmanEnv(
        podman=podman, image=IMAGE, env=env, conf_path=conf_path, docker=_find_docker(), timings_s=timings_s
    )
    return _cached_env


def require_podman() -> PodmanEnv:
    """ensure_podman() for tests: skips the test when apt is unavailable, any other failure fails it."""
    import pytest  # only tests call this; the module itself stays importable without pytest

    try:
        return ensure_podman()
    except AptUnavailable as exc:
        pytest.skip(str(exc))


@contextmanager
def docker_socket(env: PodmanEnv, directory: Path | str) -> Iterator[str]:
    """Serve podman's Docker-compatible API on ``<directory>/podman.sock`` and yield the DOCKER_HOST value.

    The service runs in its own session and is stopped (SIGTERM, then SIGKILL of its group) on exit.
    Containers started through it keep running after it stops: their conmon is not its child."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sock_path = directory / "podman.sock"
    if len(str(sock_path)) > _MAX_SOCKET_PATH:
        raise ContainerEnvError(
            f"socket path {sock_path} is {len(str(sock_path))} bytes, over the {_MAX_SOCKET_PATH}-byte limit "
            "of a unix socket address; pass a shorter directory"
        )
    sock_path.unlink(missing_ok=True)
    url = f"unix://{sock_path}"
    log_path = directory / "podman-service.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [env.podman, "system", "service", "--time=0", url],
            env=env.subprocess_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_socket_answers(sock_path, proc, log_path)
        yield url
    finally:
        _stop_process_group(proc)
        sock_path.unlink(missing_ok=True)


def processes_matching(text: str) -> list[tuple[int, str]]:
    """Live (non-zombie) processes whose command line contains ``text``, as (pid, command line).

    For "nothing left behind" checks: conmon and the container's processes are not children of the
    caller (conmon double-forks to PID 1), so only a scan of /proc finds them."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{entry.name}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # exited while we looked
        if state != "Z" and text in cmdline:
            found.append((int(entry.name), cmdline))
    return found


def conmon_processes(name_prefix: str) -> list[tuple[int, str]]:
    """Live conmon processes of containers named ``name_prefix``... (conmon is started with ``-n NAME``)."""
    return [
        (pid, cmd)
        for pid, cmd in processes_matching("conmon")
        if cmd.startswith("/usr/bin/conmon") and f" -n {name_prefix}" in cmd
    ]


def _run(argv: list[str], *, env: dict[str, str], check: bool, timeout_s: float):
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise ContainerEnvError(f"`{' '.join(argv)}` did not finish within {timeout_s:.0f} s") from exc
    except OSError as exc:
        raise ContainerEnvError(f"cannot run `{argv[0]}`: {exc}") from exc
    if check and proc.returncode != 0:
        raise ContainerEnvError(
            f"`{' '.join(argv)}` exited with {proc.returncode}: {_last((proc.stderr or proc.stdout).strip())}"
        )
    return proc


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _missing_packages() -> list[str]:
    if shutil.which("dpkg-query") is None:
        # Not a Debian system: only the binaries themselves can tell.
        have = shutil.which("podman") and shutil.which("runc") and shutil.which("catatonit")
        return [] if have and os.path.exists("/bin/busybox") else list(PACKAGES)
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n", *PACKAGES],
        capture_output=True,
        text=True,
    )
    installed = {line.split()[0] for line in proc.stdout.splitlines() if line.endswith(" installed")}
    return [p for p in PACKAGES if p not in installed]


def _apt_install(packages: list[str]) -> None:
    apt = shutil.which("apt-get")
    if apt is None:
        raise AptUnavailable(
            f"podman is not installed (missing: {' '.join(packages)}) and there is no apt-get"
        )
    if os.geteuid() != 0:
        raise AptUnavailable(
            f"podman is not installed (missing: {' '.join(packages)}) and apt-get needs root; run "
            f"`apt-get install -y {' '.join(PACKAGES)}` as root once"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run([apt, "update"], env=env, check=True, timeout_s=_APT_TIMEOUT_S)
    _run([apt, "install", "-y", *packages], env=env, check=True, timeout_s=_APT_TIMEOUT_S)


def _write_conf(path: Path) -> Path:
    if not path.exists() or path.read_text() != CONTAINERS_CONF:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(CONTAINERS_CONF)
        tmp.replace(path)  # atomic: a concurrent reader outside the lock never sees half a file
    return path


def _image_is_current(podman: str, env: dict[str, str]) -> bool:
    proc = _run(
        [podman, "image", "inspect", "--format", f'{{{{index .Labels "{_IMAGE_VERSION_LABEL}"}}}}', IMAGE],
        env={**os.environ, **env},
        check=False,
        timeout_s=_PODMAN_TIMEOUT_S,
    )
    return proc.returncode == 0 and proc.stdout.strip() == IMAGE_RECIPE_VERSION


def _import_image(podman: str, env: dict[str, str]) -> None:
    busybox = "/bin/busybox"
    if not os.path.exists(busybox):
        raise ContainerEnvError(f"{busybox} is missing although busybox-static is installed; reinstall it")
    tar_path = CACHE_DIR / "flotilla-bb.tar"
    _write_rootfs_tar(busybox, tar_path)
    _run(
        [
            podman,
            "import",
            "--change",
            f"LABEL {_IMAGE_VERSION_LABEL}={IMAGE_RECIPE_VERSION}",
            "--change",
            "ENV PATH=/bin",
            "--change",
            'CMD ["/bin/sh"]',
            str(tar_path),
            IMAGE,
        ],
        env={**os.environ, **env},
        check=True,
        timeout_s=_PODMAN_TIMEOUT_S,
    )
    tar_path.unlink(missing_ok=True)


def _write_rootfs_tar(busybox: str, tar_path: Path) -> None:
    """A rootfs of one static busybox with a symlink per applet, so `sleep`, `nc`, ... resolve on PATH
    whatever the shell's standalone setting; /etc/passwd so `id` and `whoami` name root."""
    applets = _run([busybox, "--list"], env=dict(os.environ), check=True, timeout_s=30).stdout.split()
    with tarfile.open(tar_path, "w") as tar:
        for directory in ("bin", "etc", "tmp", "root", "proc", "sys", "dev", "run", "var"):
            _add_dir(tar, directory, 0o1777 if directory == "tmp" else 0o755)
        info = tar.gettarinfo(busybox, arcname="bin/busybox")
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        with open(busybox, "rb") as f:
            tar.addfile(info, f)
        for applet in applets:
            if applet != "busybox":
                _add_symlink(tar, f"bin/{applet}", "busybox")
        _add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
        _add_file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")


def _add_dir(tar: tarfile.TarFile, name: str, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _find_docker() -> str | None:
    for candidate in DOCKER_CLI_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("docker")


def _wait_socket_answers(sock_path: Path, proc: subprocess.Popen, log_path: Path) -> None:
    """Poll the API's /_ping until it answers OK; fail early, with the service's log, if it exits."""
    deadline = time.monotonic() + _SOCKET_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ContainerEnvError(
                f"`podman system service` exited with {proc.returncode} before serving {sock_path}: "
                f"{_tail(log_path)}"
            )
        if sock_path.exists() and _ping(sock_path):
            return
        time.sleep(0.05)
    raise ContainerEnvError(
        f"`podman system service` did not answer on {sock_path} within {_SOCKET_READY_TIMEOUT_S:.0f} s: "
        f"{_tail(log_path)}"
    )


def _ping(sock_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            s.connect(str(sock_path))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def _stop_process_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=_SERVICE_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    # The group may outlive its leader (helpers it spawned); SIGKILL whatever is left of it.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _last(text: str, limit: int = 2000) -> str:
    return text[-limit:] or "(no output)"


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace").strip()[-limit:] or "(no output)"
    except OSError as exc:
        return f"(no log: {exc})"
