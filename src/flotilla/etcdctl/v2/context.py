"""What a v2 verb runs with: the parsed global and verb flags, its arguments, and etcdctl's ways to
build a client (endpoints from flags and ETCDCTL_* variables, cluster sync) and to fail (handleError)."""

from __future__ import annotations

import os
import re
import sys
import time
from urllib.parse import urlsplit

from flotilla.etcdctl.v2.client import NO_ENDPOINTS, Client, ClientError, ClusterError, Request, decode_json

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import ssl

__all__ = [
    "DEFAULT_ENDPOINTS",
    "EXIT_BAD_ARGS",
    "EXIT_BAD_CONNECTION",
    "EXIT_CLUSTER_NOT_HEALTHY",
    "EXIT_SERVER_ERROR",
    "Context",
    "fail",
]

# etcdctl's ctlv2 exit codes (command/error.go)
EXIT_BAD_ARGS = 1
EXIT_BAD_CONNECTION = 2
EXIT_SERVER_ERROR = 4
EXIT_CLUSTER_NOT_HEALTHY = 5

DEFAULT_ENDPOINTS = "http://127.0.0.1:2379,http://127.0.0.1:4001"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


def fail(message: str, code: int = 1) -> None:
    """Print ``message`` on stderr and exit with ``code`` (the verbs' plain ``os.Exit`` paths)."""
    sys.stdout.flush()
    print(message, file=sys.stderr)
    raise SystemExit(code)


class Context:
    """One verb's invocation. ``options`` are the global flags, ``flags`` the verb's."""

    def __init__(self, options: dict[str, object], flags: dict[str, object], args: list[str]) -> None:
        self.options, self.flags, self.args = options, flags, args

    @property
    def output(self) -> str:
        return str(self.options["output"])

    def handle_error(self, code: int, error: Exception) -> None:
        """etcdctl's handleError: ``Error:  <err>`` (a cluster error adds its details) and exit ``code``."""
        sys.stdout.flush()
        print("Error: ", error, file=sys.stderr)
        if isinstance(error, ClusterError):
            print(error.detail(), file=sys.stderr)
        raise SystemExit(code)

    def deadline(self) -> float:
        """The ``--total-timeout`` deadline of one request (etcdctl's contextWithTotalTimeout)."""
        return time.monotonic() + float(self.options["total-timeout"])

    def client(self, sync: bool = True) -> Client:
        """etcdctl's mustNewClient (``sync``) or mustNewClientNoSync, with their ``--debug`` lines."""
        client = self._new_client()
        debug = bool(self.options["debug"])
        if not sync:
            if debug:
                print(f"Cluster-Endpoints: {', '.join(client.endpoints)}", file=sys.stderr)
            client.debug = debug
            return client
        client.debug = debug
        if not self.options["no-sync"]:
            if debug:
                print(f"start to sync cluster using endpoints({','.join(client.endpoints)})", file=sys.stderr)
            self._sync(client)
            if debug:
                print(f"got endpoints({','.join(client.endpoints)}) after sync", file=sys.stderr)
        if debug:
            print(f"Cluster-Endpoints: {', '.join(client.endpoints)}", file=sys.stderr)
        return client

    def _sync(self, client: Client) -> None:
        # The Go client's Sync: the members' client URLs replace the endpoints. Only "no endpoints"
        # and connection failures stop etcdctl; any other failure keeps the given endpoints.
        client.deadline = self.deadline()
        try:
            answer = client.do(Request("GET", "/v2/members"))
            if answer.status != 200:
                return
            members = decode_json(answer.body).get("members") or []
            urls = [url for member in members for url in member.get("clientURLs") or []]
            if not urls:
                raise ClientError(NO_ENDPOINTS)
        except ClientError as exc:
            if str(exc) == NO_ENDPOINTS:
                print("etcd cluster has no published client endpoints.", file=sys.stderr)
                print(
                    "Try '--no-sync' if you want to access non-published client endpoints"
                    f"({','.join(client.endpoints)}).",
                    file=sys.stderr,
                )
                self.handle_error(EXIT_SERVER_ERROR, exc)
            if exc.connection:
                self.handle_error(EXIT_BAD_CONNECTION, exc)
            return
        except (ValueError, AttributeError):
            return
        finally:
            client.deadline = None
        if sorted(urls) != sorted(client.endpoints):
            client.endpoints, client.pinned = urls, 0

    def _new_client(self) -> Client:
        if self.options["discovery-srv"] or os.environ.get("ETCDCTL_DISCOVERY_SRV"):
            # etcdctl would look up SRV records; refuse rather than silently use other endpoints
            fail("--discovery-srv is not supported by Flotilla's etcdctl: give --endpoints")
        endpoints = [_endpoint_url(raw) for raw in self._endpoint_flag().split(",")]
        username = str(self.options["username"] or os.environ.get("ETCDCTL_USERNAME", ""))
        auth = None
        if username:
            name, colon, password = username.partition(":")
            if not colon:
                import getpass

                password = getpass.getpass("Password: ")
            auth = (name, password)
        total = float(self.options["total-timeout"])
        return Client(
            endpoints=endpoints,
            header_timeout_s=float(self.options["timeout"]),
            dial_timeout_s=min(30.0, total) if total else 30.0,
            auth=auth,
            tls=self._tls(endpoints),
        )

    def _endpoint_flag(self) -> str:
        # etcdctl's getPeersFlagValue: each flag beats its variable, in this order.
        for flag, variable in (("endpoints", "ETCDCTL_ENDPOINTS"), ("endpoint", "ETCDCTL_ENDPOINT"),
                               ("peers", "ETCDCTL_PEERS")):  # fmt: skip
            value = str(self.options[flag]) or os.environ.get(variable, "")
            if value:
                return value
        return DEFAULT_ENDPOINTS

    def _tls(self, endpoints: list[str]) -> ssl.SSLContext | None:
        import ssl

        ca_file = str(self.options["ca-file"]) or os.environ.get("ETCDCTL_CA_FILE", "")
        cert_file = str(self.options["cert-file"]) or os.environ.get("ETCDCTL_CERT_FILE", "")
        key_file = str(self.options["key-file"]) or os.environ.get("ETCDCTL_KEY_FILE", "")
        if not any(url.startswith("https:") for url in endpoints):
            return None
        context = ssl.create_default_context(cafile=ca_file or None)
        if cert_file:
            context.load_cert_chain(cert_file, key_file or None)
        return context


def _endpoint_url(raw: str) -> str:
    # Go's url.Parse then "http" when no scheme; a host:port without scheme is a parse error there.
    if not _SCHEME.match(raw):
        first = raw.split("/", 1)[0]
        if ":" in first:
            fail(f'parse "{raw}": first path segment in URL cannot contain colon')
        return "http://" + raw
    parts = urlsplit(raw)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")
