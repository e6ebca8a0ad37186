"""Cluster and maintenance verbs: ``member``, ``endpoint``, ``alarm``, ``defrag``, ``move-leader`` and
``version`` (ctlv3's member/ep/alarm/defrag/move_leader/version commands)."""

from __future__ import annotations

import sys
import threading
import time

from flotilla.etcd.api import rpc_pb2
from flotilla.etcdctl.v3.cli import Ctl
from flotilla.etcdctl.v3.client import RPCFailed
from flotilla.etcdctl.v3.cmdline import API_VERSION, VERSION, Command, Flag, parse_uint
from flotilla.etcdctl.v3.errors import EXIT_BAD_ARGS, EXIT_ERROR, CtlExit, fail
from flotilla.etcdctl.v3.printers import EndpointHealth
from flotilla.gotext import go_duration, go_quote

MEMBER_LIST_LONG = (
    "When --write-out is set to simple, this command prints out comma-separated member lists for each "
    "endpoint.\n"
    "The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.\n"
)
STATUS_LONG = (
    "When --write-out is set to simple, this command prints out comma-separated status lists for each "
    "endpoint.\nThe items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, "
    "raft index, raft applied index, errors.\n"
)


def _cluster_flag() -> Flag:
    return Flag("cluster", "bool", False, "use all endpoints from the cluster member list")


def commands() -> list[Command]:
    member = Command("member <subcommand>", "Membership related commands").add(
        Command("add <memberName> [options]", "Adds a member into the cluster", _member_add, flags=[
            Flag("peer-urls", "string", "", "comma separated peer URLs for the new member."),
            Flag("learner", "bool", False, "indicates if the new member is raft learner"),
        ]),
        Command("remove <memberID>", "Removes a member from the cluster", _member_remove),
        Command("update <memberID> [options]", "Updates a member in the cluster", _member_update, flags=[
            Flag("peer-urls", "string", "", "comma separated peer URLs for the updated member."),
        ]),
        Command("list", "Lists all members in the cluster", _member_list, long=MEMBER_LIST_LONG),
        Command("promote <memberID>", "Promotes a non-voting member in the cluster", _member_promote,
                long="Promotes a non-voting learner member to a voting one in the cluster.\n"),
    )  # fmt: skip
    endpoint = Command("endpoint <subcommand>", "Endpoint related commands", persistent=[_cluster_flag()])
    endpoint.add(
        Command("health", "Checks the healthiness of endpoints specified in `--endpoints` flag", _ep_health),
        Command("status", "Prints out the status of endpoints specified in `--endpoints` flag", _ep_status,
                long=STATUS_LONG),
        Command("hashkv", "Prints the KV history hash for each endpoint in --endpoints", _ep_hashkv,
                persistent=[Flag("rev", "int64", 0, "maximum revision to hash (default: all revisions)")]),
    )  # fmt: skip
    alarm = Command("alarm <subcommand>", "Alarm related commands").add(
        Command("disarm", "Disarms all alarms", _alarm_disarm),
        Command("list", "Lists all alarms", _alarm_list),
    )
    return [
        member,
        endpoint,
        alarm,
        Command("defrag", "Defragments the storage of the etcd members with given endpoints", _defrag,
                persistent=[_cluster_flag()],
                flags=[Flag("data-dir", "string", "",
                            "Optional. If present, defragments a data directory not in use by etcd.")]),
        Command("move-leader <transferee-member-id>", "Transfers leadership to another etcd cluster member.",
                _move_leader),
        Command("version", "Prints the version of etcdctl", _version),
    ]  # fmt: skip


def _version(ctl: Ctl) -> None:
    sys.stdout.write(f"etcdctl version: {VERSION}\nAPI version: {API_VERSION}\n")


# --- member ---


def _member_id(arg: str) -> int:
    try:
        return parse_uint(arg, 16)
    except ValueError as e:
        fail(EXIT_BAD_ARGS, f"bad member ID arg ({e}), expecting ID in Hex")


def _unary(ctl: Ctl, client, method, request):
    return client.call_or_exit(method, request, ctl.command_timeout_s)


def _member_add(ctl: Ctl) -> None:
    if len(ctl.args) < 1:
        fail(EXIT_BAD_ARGS, "member name not provided")
    if len(ctl.args) > 1:
        text = "too many arguments"
        for arg in ctl.args:
            if arg.lower().startswith("http"):
                text += f", did you mean --peer-urls={arg}"
        fail(EXIT_BAD_ARGS, text)
    name, peer_urls = ctl.args[0], ctl.flag("peer-urls")
    if not peer_urls:
        fail(EXIT_BAD_ARGS, "member peer urls not provided")
    client = ctl.client()
    request = rpc_pb2.MemberAddRequest(peerURLs=peer_urls.split(","), isLearner=ctl.flag("learner"))
    resp = _unary(ctl, client, client.cluster.MemberAdd, request)
    ctl.display.member_add(resp)
    if ctl.display.name == "simple":
        conf = []
        for m in resp.members:
            for url in m.peerURLs:
                conf.append(f"{name if m.ID == resp.member.ID else m.name}={url}")
        sys.stdout.write(
            f"\nETCD_NAME={go_quote(name)}\nETCD_INITIAL_CLUSTER={go_quote(','.join(conf))}\n"
            f'ETCD_INITIAL_ADVERTISE_PEER_URLS={go_quote(peer_urls)}\nETCD_INITIAL_CLUSTER_STATE="existing"\n'
        )


def _one_member_id(ctl: Ctl) -> int:
    if len(ctl.args) != 1:
        fail(EXIT_BAD_ARGS, "member ID is not provided")
    return _member_id(ctl.args[0])


def _member_remove(ctl: Ctl) -> None:
    member_id = _one_member_id(ctl)
    client = ctl.client()
    resp = _unary(ctl, client, client.cluster.MemberRemove, rpc_pb2.MemberRemoveRequest(ID=member_id))
    ctl.display.member_remove(member_id, resp)


def _member_update(ctl: Ctl) -> None:
    member_id = _one_member_id(ctl)
    peer_urls = ctl.flag("peer-urls")
    if not peer_urls:
        fail(EXIT_BAD_ARGS, "member peer urls not provided")
    client = ctl.client()
    request = rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=peer_urls.split(","))
    resp = _unary(ctl, client, client.cluster.MemberUpdate, request)
    ctl.display.member_update(member_id, resp)


def _member_list(ctl: Ctl) -> None:
    client = ctl.client()
    resp = _unary(ctl, client, client.cluster.MemberList, rpc_pb2.MemberListRequest())
    ctl.display.member_list(resp)


def _member_promote(ctl: Ctl) -> None:
    member_id = _one_member_id(ctl)
    client = ctl.client()
    resp = _unary(ctl, client, client.cluster.MemberPromote, rpc_pb2.MemberPromoteRequest(ID=member_id))
    ctl.display.member_promote(member_id, resp)


# --- endpoint ---


def endpoints_from_cluster(ctl: Ctl) -> list[str]:
    """endpointsFromCluster: ``--endpoints``, or every member's client URLs with ``--cluster``."""
    if not ctl.flag("cluster"):
        return list(ctl.flag("endpoints"))
    config = ctl.config or ctl.client_config()
    from flotilla.etcdctl.v3.client import Client

    client = Client(config)
    try:
        resp = client.call(client.cluster.MemberList, rpc_pb2.MemberListRequest(), ctl.command_timeout_s)
    except RPCFailed as e:
        fail(EXIT_ERROR, f"failed to fetch endpoints from etcd cluster member list: {e}")
    finally:
        client.close()
    return [url for m in resp.members for url in m.clientURLs]


def _ep_health(ctl: Ctl) -> None:
    config = ctl.client_config()
    results: list[EndpointHealth] = []
    lock = threading.Lock()

    def check(endpoint: str) -> None:
        from flotilla.etcdctl.v3.client import Client

        client = Client(config, [endpoint])
        start = time.monotonic()
        try:
            client.call(client.kv.Range, rpc_pb2.RangeRequest(key=b"health"), ctl.command_timeout_s)
            error = ""
        except RPCFailed as e:
            error = "" if str(e) == "etcdserver: permission denied" else str(e)
        took = go_duration(time.monotonic() - start)
        client.close()
        with lock:  # etcdctl collects the answers in the order they arrive
            results.append(EndpointHealth(endpoint, not error, took, error))

    threads = [threading.Thread(target=check, args=(ep,)) for ep in endpoints_from_cluster(ctl)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ctl.display.endpoint_health(results)
    if any(h.error for h in results):
        fail(EXIT_ERROR, "unhealthy cluster")


def _per_endpoint(ctl: Ctl, call):
    """Run ``call(client)`` on each endpoint over its own connection, as clientv3's Maintenance does."""
    ctl.client().close()  # mustClientFromCmd: flags, environment and printer first
    for endpoint in endpoints_from_cluster(ctl):
        from flotilla.etcdctl.v3.client import Client

        client = Client(ctl.config, [endpoint], passthrough=True)
        try:
            yield endpoint, call(client), None
        except RPCFailed as e:
            yield endpoint, None, e
        finally:
            client.close()


def _per_endpoint_rows(ctl: Ctl, call, what: str) -> tuple[list, RPCFailed | None]:
    """``(endpoint, response)`` rows of ``call`` on each endpoint; a failing endpoint is reported on stderr
    as etcdctl words it ("Failed to get the <what> of endpoint ...") and the last error is returned."""
    rows, last_error = [], None
    for endpoint, resp, error in _per_endpoint(ctl, call):
        if error is not None:
            last_error = error
            sys.stderr.write(f"Failed to get the {what} of endpoint {endpoint} ({error})\n")
            continue
        rows.append((endpoint, resp))
    return rows, last_error


def _ep_status(ctl: Ctl) -> None:
    method = lambda c: c.call(c.maintenance.Status, rpc_pb2.StatusRequest(), ctl.command_timeout_s)  # noqa: E731
    rows, error = _per_endpoint_rows(ctl, method, "status")
    ctl.display.endpoint_status(rows)
    if error is not None:
        raise CtlExit(EXIT_ERROR)  # epStatus exits without a message of its own


def _ep_hashkv(ctl: Ctl) -> None:
    request = rpc_pb2.HashKVRequest(revision=ctl.flag("rev"))
    method = lambda c: c.call(c.maintenance.HashKV, request, ctl.command_timeout_s)  # noqa: E731
    rows, error = _per_endpoint_rows(ctl, method, "hash")
    ctl.display.endpoint_hashkv(rows)
    if error is not None:
        fail(EXIT_ERROR, str(error))


# --- alarm, defrag, move-leader ---


def _listed_alarms(ctl: Ctl, verb: str):
    """alarm list's and disarm's start: no arguments allowed, then the client and the listed alarms."""
    if ctl.args:
        fail(EXIT_BAD_ARGS, f"alarm {verb} command accepts no arguments")
    client = ctl.client()
    request = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
    return client, _unary(ctl, client, client.maintenance.Alarm, request)


def _alarm_list(ctl: Ctl) -> None:
    _client, resp = _listed_alarms(ctl, "list")
    ctl.display.alarm(resp)


def _alarm_disarm(ctl: Ctl) -> None:
    # clientv3's AlarmDisarm of "every alarm" lists them and disarms each; its answer has no header.
    client, listed = _listed_alarms(ctl, "disarm")
    result = rpc_pb2.AlarmResponse()
    for alarm in listed.alarms:
        request = rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=alarm.memberID, alarm=alarm.alarm
        )
        result.alarms.extend(_unary(ctl, client, client.maintenance.Alarm, request).alarms)
    ctl.display.alarm(result)


def _defrag(ctl: Ctl) -> None:
    data_dir = ctl.flag("data-dir")
    if data_dir:
        sys.stderr.write(f"Failed to defragment etcd data[{data_dir}] (offline defragmentation is not "
                         "supported by Flotilla's etcdctl)\n")  # fmt: skip
        raise CtlExit(EXIT_ERROR)
    failures = 0
    method = lambda c: c.call(c.maintenance.Defragment, rpc_pb2.DefragmentRequest(), ctl.command_timeout_s)  # noqa: E731
    for endpoint, _resp, error in _per_endpoint(ctl, method):
        if error is not None:
            sys.stderr.write(f"Failed to defragment etcd member[{endpoint}] ({error})\n")
            failures += 1
        else:
            sys.stdout.write(f"Finished defragmenting etcd member[{endpoint}]\n")
    if failures:
        raise CtlExit(EXIT_ERROR)


def _move_leader(ctl: Ctl) -> None:
    if len(ctl.args) != 1:
        fail(EXIT_BAD_ARGS, "move-leader command needs 1 argument")
    try:
        target = parse_uint(ctl.args[0], 16)
    except ValueError as e:
        fail(EXIT_BAD_ARGS, str(e))
    ctl.client().close()
    deadline = time.monotonic() + ctl.command_timeout_s
    from flotilla.etcdctl.v3.client import Client

    endpoints = [e.strip() for e in ctl.flag("endpoints")]
    for endpoint in endpoints:
        client = Client(ctl.config, [endpoint])
        try:
            status = client.call(client.maintenance.Status, rpc_pb2.StatusRequest(), _left(deadline))
        except RPCFailed as e:
            fail(EXIT_ERROR, str(e))
        if status.header.member_id == status.leader:
            request = rpc_pb2.MoveLeaderRequest(targetID=target)
            try:
                resp = client.call(client.maintenance.MoveLeader, request, _left(deadline))
            except RPCFailed as e:
                fail(EXIT_ERROR, str(e))
            ctl.display.move_leader(status.leader, target, resp)
            return
        client.close()
    fail(EXIT_BAD_ARGS, f"no leader endpoint given at [{' '.join(endpoints)}]")


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.001)
