"""``etcdctl`` (API 3): the command tree, the global flags and what every verb shares (``Ctl``)."""

from __future__ import annotations

import datetime
import getpass
import os
import sys

from flotilla.etcdctl.v3 import cmdline
from flotilla.etcdctl.v3.client import Client, ClientConfig
from flotilla.etcdctl.v3.cmdline import Command, Flag, UsageError, env_name
from flotilla.etcdctl.v3.errors import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR, CtlExit, fail
from flotilla.etcdctl.v3.printers import SimplePrinter, new_printer
from flotilla.gotext import go_duration


def global_flags() -> list[Flag]:
    """ctlv3/ctl.go's persistent flags, with its defaults and help text."""
    return [
        Flag("endpoints", "strings", ["127.0.0.1:2379"], "gRPC endpoints"),
        Flag("debug", "bool", False, "enable client-side debug logging"),
        Flag(
            "write-out",
            "string",
            "simple",
            "set the output format (fields, json, protobuf, simple, table)",
            "w",
        ),  # fmt: skip
        Flag("hex", "bool", False, "print byte strings as hex encoded strings"),
        Flag("dial-timeout", "duration", 2.0, "dial timeout for client connections"),
        Flag(
            "command-timeout", "duration", 5.0, "timeout for short running command (excluding dial timeout)"
        ),
        Flag("keepalive-time", "duration", 2.0, "keepalive time for client connections"),
        Flag("keepalive-timeout", "duration", 6.0, "keepalive timeout for client connections"),
        Flag("insecure-transport", "bool", True, "disable transport security for client connections"),
        Flag("insecure-discovery", "bool", True, "accept insecure SRV records describing cluster endpoints"),
        Flag(
            "insecure-skip-tls-verify",
            "bool",
            False,
            "skip server certificate verification (CAUTION: this "
            "option should be enabled only for testing purposes)",
        ),  # fmt: skip
        Flag("cert", "string", "", "identify secure client using this TLS certificate file"),
        Flag("key", "string", "", "identify secure client using this TLS key file"),
        Flag(
            "cacert", "string", "", "verify certificates of TLS-enabled secure servers using this CA bundle"
        ),
        Flag(
            "user",
            "string",
            "",
            "username[:password] for authentication (prompt if password is not supplied)",
        ),
        Flag(
            "password",
            "string",
            "",
            "password for authentication (if this option is used, --user option shouldn't include password)",
        ),  # fmt: skip
        Flag(
            "discovery-srv",
            "string",
            "",
            "domain name to query for SRV records describing cluster endpoints",
            "d",
        ),  # fmt: skip
        Flag("discovery-srv-name", "string", "", "service name to query when using DNS discovery"),
    ]


def _capnslog(level: str, text: str) -> None:
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
    sys.stderr.write(f"{stamp} {level} | pkg/flags: {text}\n")


class Ctl:
    """The running command: its flags, the printer (``display``) and clients made from the flags."""

    def __init__(self, cmd: Command, args: list[str]) -> None:
        self.cmd = cmd
        self.args = args
        self.display = SimplePrinter()
        self.config: ClientConfig | None = None
        self.raw_args: list[str] = list(args)  # os.Args without the program: watch reads its "--" there

    def flag(self, name: str):
        return self.cmd.flag(name)

    def changed(self, name: str) -> bool:
        found = self.cmd.lookup(name)
        return found is not None and found.changed

    @property
    def command_timeout_s(self) -> float:
        return self.flag("command-timeout")

    def apply_env(self, extra: tuple[str, ...] = ()) -> None:
        """etcd's pkg/flags SetPflagsFromEnv over the inherited flags: ``ETCDCTL_<FLAG>`` fills a flag not
        given; a variable shadowed by a given flag is fatal; an unknown ``ETCDCTL_*`` is warned about."""
        flags = sorted(self.cmd.inherited(), key=lambda f: f.name)
        used, already = {env_name(n) for n in extra if os.environ.get(env_name(n))}, set()
        for flag in flags:
            key = env_name(flag.name)
            if flag.changed:
                already.add(key)
                continue
            value = os.environ.get(key, "")
            if value:
                used.add(key)
                try:
                    flag.set(value)
                except ValueError:
                    pass  # etcdctl ignores SetPflagsFromEnv's error
        for key, value in os.environ.items():
            if key in used or key == "ETCDCTL_API":  # etcdctl's main unsets ETCDCTL_API
                continue
            if key in already:
                _capnslog(
                    "C",
                    f'conflicting environment variable "{key}" is shadowed by corresponding '
                    "command-line flag (either unset environment variable or disable flag)",
                )
                raise CtlExit(EXIT_ERROR)
            if key.startswith("ETCDCTL_"):
                _capnslog("W", f"unrecognized environment variable {key}={value}")

    def init_display(self) -> None:
        display = new_printer(self.flag("write-out"), self.flag("hex"))
        if display is None:
            fail(EXIT_BAD_FEATURE, "unsupported output format")
        self.display = display

    def client_config(self, extra_env: tuple[str, ...] = ()) -> ClientConfig:
        """clientConfigFromCmd: environment, TLS and auth settings, then the printer."""
        self.apply_env(extra_env)
        if self.flag("debug"):
            for flag in sorted(self.cmd.inherited(), key=lambda f: f.name):
                sys.stderr.write(f"{env_name(flag.name)}={_flag_text(flag)}\n")
        for name in ("cert", "key", "cacert"):
            if self.changed(name) and self.flag(name) == "":
                fail(EXIT_BAD_ARGS, f"empty string is passed to --{name} option")
        user, password = self._auth()
        config = ClientConfig(
            endpoints=[e.strip() for e in self.flag("endpoints")],
            dial_timeout_s=self.flag("dial-timeout"),
            command_timeout_s=self.flag("command-timeout"),
            keepalive_time_s=self.flag("keepalive-time"),
            keepalive_timeout_s=self.flag("keepalive-timeout"),
            insecure_transport=self.flag("insecure-transport"),
            insecure_skip_verify=self.flag("insecure-skip-tls-verify"),
            cacert=self.flag("cacert"),
            cert=self.flag("cert"),
            key=self.flag("key"),
            user=user,
            password=password,
        )
        self.init_display()
        self.config = config
        return config

    def _auth(self) -> tuple[str, str]:
        user, password = self.flag("user"), self.flag("password")
        if not user:
            return "", ""
        if password:
            return user, password
        name, sep, secret = user.partition(":")
        if sep:
            return name, secret
        try:
            return user, getpass.getpass("Password: ")
        except (EOFError, OSError) as e:
            fail(EXIT_ERROR, str(e))

    def client(
        self, endpoints: list[str] | None = None, passthrough: bool = False, extra_env: tuple[str, ...] = ()
    ) -> Client:
        """mustClientFromCmd (the flags are read once, the first time)."""
        config = self.config or self.client_config(extra_env)
        client = Client(config, endpoints, passthrough)
        try:
            client.authenticate()
        except Exception as e:  # clientv3.New failing: ExitBadConnection
            fail(2, str(e))
        return client


def _flag_text(flag: Flag) -> str:
    value = flag.value
    if flag.kind == "strings":
        return "[" + ",".join(value) + "]"
    if flag.kind == "bool":
        return "true" if value else "false"
    if flag.kind == "duration":
        return go_duration(value)
    return str(value)


def build() -> Command:
    """The whole tree, as etcdctl 3.4 registers it."""
    from flotilla.etcdctl.v3 import check, cluster, kv, lease, snapshot, unsupported, watch

    root = Command("etcdctl", "A simple command line client for etcd3.", persistent=global_flags())
    root.add(*kv.commands(), *lease.commands(), *watch.commands(), *cluster.commands(),
             *snapshot.commands(), *check.commands(), *unsupported.commands())  # fmt: skip
    root.add(Command("help [command]", "Help about any command", run=_help))
    return root


def _help(ctl: Ctl) -> None:
    node, _rest = cmdline.find(cmdline.root_of(ctl.cmd), ctl.args)
    sys.stdout.write(cmdline.usage(node))


def run(root: Command, argv: list[str]) -> None:
    """cobra's Execute: find the command, parse its flags, show help or run it."""
    node, rest = cmdline.find(root, argv)
    try:
        args = cmdline.parse_flags(node, rest)
    except UsageError as e:
        sys.stderr.write(f"Error: {e}\n")
        sys.stdout.write(cmdline.usage(node))
        sys.stderr.write("\n")
        fail(EXIT_ERROR, str(e))
    if node.lookup("help").value:
        sys.stdout.write(cmdline.usage(node))
        return
    if node.parent is None and args:
        message = f'unknown command "{args[0]}" for "etcdctl"' + _suggestions(root, args[0])
        sys.stderr.write(f"Error: {message}\nRun 'etcdctl --help' for usage.\n")
        fail(EXIT_ERROR, message)
    if node.run is None:
        sys.stdout.write(cmdline.usage(node))
        return
    ctl = Ctl(node, args)
    ctl.raw_args = list(argv)
    node.run(ctl)


def _suggestions(root: Command, typed: str) -> str:
    # cobra walks the commands in the order etcdctl registers them
    names = [n for n in _REGISTRATION if any(c.name == n for c in root.children)]
    found = [n for n in names if _levenshtein(typed.lower(), n.lower()) <= 2 or n.startswith(typed.lower())]
    if not found:
        return ""
    return "\n\nDid you mean this?\n" + "".join(f"\t{n}\n" for n in found)


_REGISTRATION = (
    "get put del txn compaction alarm defrag endpoint move-leader watch version lease member snapshot "
    "make-mirror migrate lock elect auth user role check help completion"
).split()


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def main(argv: list[str]) -> None:
    """Run etcdctl's v3 verbs with ``argv`` (without the program name); exits with etcdctl's code."""
    code = 0
    try:
        run(build(), list(argv))
    except CtlExit as e:
        code = e.code
        sys.stdout.flush()
        if e.message is not None:
            sys.stderr.write(f"Error: {e.message}\n")
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 1
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.stderr.flush()
    raise SystemExit(code)
