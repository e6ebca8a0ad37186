"""``member list|add|remove|update`` and ``cluster-health`` as etcdctl 3.4's v2 verbs run them
(ctlv2/command/member_commands.go, cluster_health.go) over the v2 members API."""

from __future__ import annotations

import json
import sys
import time
from urllib.parse import urlsplit

from flotilla.etcdctl.v2.client import Client, ClientError, Request, decode_json
from flotilla.etcdctl.v2.context import EXIT_CLUSTER_NOT_HEALTHY, EXIT_SERVER_ERROR, Context, fail
from flotilla.gotext import go_json, go_quote

__all__ = ["cluster_health", "member_add", "member_list", "member_remove", "member_update"]

_JSON = "application/json"


def _expect(status: int, *wanted: int) -> None:
    if status not in wanted:
        raise ClientError(f"unexpected status code {status}")


def _list(ctx: Context, client: Client, deadline: bool = True) -> list[dict]:
    client.deadline = ctx.deadline() if deadline else None
    answer = client.do(Request("GET", "/v2/members"))
    _expect(answer.status, 200)
    return decode_json(answer.body).get("members") or []


def _validate_urls(urls: list[str]) -> list[str]:
    """pkg/types.NewURLs: http(s)/unix(s) URLs of the form host:port without a path, sorted."""
    checked = []
    for raw in urls:
        text = raw.strip()
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https", "unix", "unixs"):
            raise ClientError(f"URL scheme must be http, https, unix, or unixs: {text}")
        if not parts.netloc or ":" not in parts.netloc.rsplit("]", 1)[-1]:
            raise ClientError(f'URL address does not have the form "host:port": {text}')
        if parts.path:
            raise ClientError(f"URL must not contain a path: {text}")
        checked.append(text)
    return sorted(checked)


def member_list(ctx: Context) -> None:
    if ctx.args:
        fail("No arguments accepted")
    client = ctx.client()
    try:
        members = _list(ctx, client)
    except (ClientError, ValueError) as exc:
        fail(str(exc))
    try:
        answer = client.do(Request("GET", "/v2/members/leader"))
        _expect(answer.status, 200)
        leader = decode_json(answer.body)
    except (ClientError, ValueError) as exc:
        fail(f"Failed to get leader:  {exc}")
    for member in members:
        peers = ",".join(member.get("peerURLs") or [])
        if not member.get("name"):
            print(f"{member.get('id', '')}[unstarted]: peerURLs={peers}")
            continue
        clients = ",".join(member.get("clientURLs") or [])
        is_leader = "true" if member.get("id") == leader.get("id") else "false"
        described = f"name={member['name']} peerURLs={peers} clientURLs={clients} isLeader={is_leader}"
        print(f"{member['id']}: {described}")


def member_add(ctx: Context) -> None:
    if len(ctx.args) != 2:
        fail("Provide a name and a single member peerURL")
    client = ctx.client()
    name, url = ctx.args
    try:
        urls = _validate_urls([url])
        client.deadline = ctx.deadline()
        body = go_json({"peerURLs": urls}).encode()
        answer = client.do(Request("POST", "/v2/members", "", body, _JSON))
        _expect(answer.status, 201, 409)
        reply = decode_json(answer.body)
        if answer.status != 201:
            raise ClientError(reply.get("message", ""))
    except (ClientError, ValueError) as exc:
        fail(str(exc))
    new_id = reply.get("id", "")
    print(f"Added member named {name} with ID {new_id} to cluster")
    try:
        members = _list(ctx, client)
    except (ClientError, ValueError) as exc:
        fail(str(exc))
    conf = [
        f"{name if member.get('id') == new_id else member.get('name', '')}={peer}"
        for member in members
        for peer in member.get("peerURLs") or []
    ]
    print()
    print(f"ETCD_NAME={go_quote(name)}")
    print(f"ETCD_INITIAL_CLUSTER={go_quote(','.join(conf))}")
    print('ETCD_INITIAL_CLUSTER_STATE="existing"')


def member_remove(ctx: Context) -> None:
    if len(ctx.args) != 1:
        fail("Provide a single member ID")
    removal_id = ctx.args[0]
    client = ctx.client()
    try:
        members = _list(ctx, client)
    except (ClientError, ValueError) as exc:
        fail(f"Error while verifying ID against known members: {exc}")
    found = False
    for member in members:
        found = found or member.get("id") == removal_id
        if member.get("name") == removal_id:
            print(
                f"Found a member named {member['name']}; if this is correct, please use its ID, eg:\n"
                f"\tetcdctl member remove {member.get('id', '')}",
                file=sys.stderr,
            )
            print(
                "For more details, read the documentation at https://github.com/etcd-io/etcd/blob/master/"
                "Documentation/runtime-configuration.md#remove-a-member\n",
                file=sys.stderr,
            )
    if not found:
        fail(f"Couldn't find a member in the cluster with an ID of {removal_id}.")
    try:
        answer = client.do(Request("DELETE", f"/v2/members/{removal_id}"))
        _expect(answer.status, 204, 410)
    except ClientError as exc:
        sys.stderr.write(f"Received an error trying to remove member {removal_id}: {exc}")
        raise SystemExit(1) from None
    print(f"Removed member {removal_id} from cluster")


def member_update(ctx: Context) -> None:
    if len(ctx.args) != 2:
        fail(
            "Provide an ID and a list of comma separated peerURL (0xabcd http://example.com,http://example1.com)"
        )
    client = ctx.client()
    member_id, urls = ctx.args
    try:
        body = go_json({"peerURLs": _validate_urls(urls.split(","))}).encode()
        client.deadline = ctx.deadline()
        answer = client.do(Request("PUT", f"/v2/members/{member_id}", "", body, _JSON))
        _expect(answer.status, 204, 404, 409)
        if answer.status != 204:
            raise ClientError(decode_json(answer.body).get("message", ""))
    except (ClientError, ValueError) as exc:
        fail(str(exc))
    print(f"Updated member with ID {member_id} in cluster")


def cluster_health(ctx: Context) -> None:
    forever = bool(ctx.flags["forever"])
    client = ctx.client(sync=False)
    try:
        members = _list(ctx, client, deadline=False)
    except (ClientError, ValueError) as exc:
        print("cluster may be unhealthy: failed to list members")
        ctx.handle_error(EXIT_SERVER_ERROR, exc)
    try:
        while True:
            healthy = sum(_check_member(client, member) for member in members)
            if healthy == len(members):
                print("cluster is healthy")
            elif healthy == 0:
                print("cluster is unavailable")
            else:
                print("cluster is degraded")
            if not forever:
                raise SystemExit(0 if healthy == len(members) else EXIT_CLUSTER_NOT_HEALTHY)
            print("\nnext check after 10 second...\n")
            sys.stdout.flush()
            time.sleep(10)
    except KeyboardInterrupt:
        raise SystemExit(0) from None


def _check_member(client: Client, member: dict) -> bool:
    """One member's line; True when it answered healthy."""
    member_id = member.get("id", "")
    urls = member.get("clientURLs") or []
    if not urls:
        print(f"member {member_id} is unreachable: no available published client urls")
        return False
    for url in urls:
        try:
            body = _get_health(client, url)
        except ClientError as exc:
            print(f"failed to check the health of member {member_id} on {url}: {exc}")
            continue
        try:
            health = json.loads(body).get("health")
        except (ValueError, AttributeError) as exc:
            print(f"failed to check the health of member {member_id} on {url}: {exc}")
            continue
        if health in ("true", True):
            print(f"member {member_id} is healthy: got healthy result from {url}")
            return True
        print(f"member {member_id} is unhealthy: got unhealthy result from {url}")
        return False
    print(f"member {member_id} is unreachable: [{' '.join(urls)}] are all unreachable")
    return False


def _get_health(client: Client, url: str) -> bytes:
    # Go's http.Client.Get: no header timeout, errors wrapped as `Get "<url>": <cause>`.
    target = url + "/health"
    probe = Client([url], header_timeout_s=0, dial_timeout_s=client.dial_timeout_s, tls=client.tls)
    try:
        return probe.send_to(url, Request("GET", "/health")).body
    except ClientError as exc:
        raise ClientError(f'Get "{target}": {exc}') from None
