"""etcdctl 3.4's output formats (``-w simple|json|fields|table|protobuf``), one class each.

Each printer has one method per kind of result (``get``, ``put``, ``member_list``, ...). A method a format
lacks ends etcdctl with ``Error: <format> not supported as output format`` (exit 4), as ctlv3's
``printerUnsupported`` does; where etcdctl 3.4 dereferences nil (``member promote`` outside the simple
format, ``alarm list -w fields`` with no alarm) it panics, and so do we (exit 2).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from flotilla.etcd.api import rpc_pb2
from flotilla.etcdctl.v3 import gojson
from flotilla.etcdctl.v3.errors import EXIT_BAD_FEATURE, fail, go_panic_nil
from flotilla.etcdctl.v3.textfmt import humanize_bytes, render_table
from flotilla.gotext import go_json, go_quote

_EVENT_TYPES = {0: "PUT", 1: "DELETE"}
_ALARMS = {0: "NONE", 1: "NOSPACE", 2: "CORRUPT"}


@dataclass
class WatchBatch:
    """clientv3's WatchResponse: what one watch message delivered."""

    header: rpc_pb2.ResponseHeader
    events: list = field(default_factory=list)
    compact_revision: int = 0
    canceled: bool = False
    created: bool = False


@dataclass
class EndpointHealth:
    endpoint: str
    health: bool
    took: str = ""
    error: str = ""


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def err(text: str) -> None:
    sys.stderr.write(text + "\n")


def new_printer(kind: str, hex_bytes: bool):
    """NewPrinter: None for an unknown format."""
    return {
        "simple": lambda: SimplePrinter(hex_bytes),
        "json": JSONPrinter,
        "fields": FieldsPrinter,
        "table": TablePrinter,
        "protobuf": ProtobufPrinter,
    }.get(kind, lambda: None)()


class Unsupported:
    """Every method refuses; formats override what they support."""

    name = "unsupported"

    def _refuse(self, *_args, **_kwargs):
        fail(EXIT_BAD_FEATURE, f"{self.name} not supported as output format")

    get = put = delete = txn = watch = _refuse
    grant = revoke = keep_alive = time_to_live = leases = _refuse
    member_add = member_remove = member_update = member_list = _refuse
    endpoint_health = endpoint_status = endpoint_hashkv = move_leader = alarm = db_status = _refuse

    def member_promote(self, member_id: int, resp) -> None:
        go_panic_nil()  # printerRPC lacks MemberPromote: a nil embedded printer in etcdctl 3.4


# --- shared rows (printer.go) ---


def member_rows(resp) -> tuple[list[str], list[list[str]]]:
    header = ["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"]
    rows = [
        [
            f"{m.ID:x}",
            "started" if m.name else "unstarted",
            m.name,
            ",".join(m.peerURLs),
            ",".join(m.clientURLs),
            "true" if m.isLearner else "false",
        ]
        for m in resp.members
    ]
    return header, rows


def health_rows(items: list[EndpointHealth]):
    header = ["endpoint", "health", "took", "error"]
    return header, [[h.endpoint, _go_bool(h.health), h.took, h.error] for h in items]


def status_rows(items):
    header = ["endpoint", "ID", "version", "db size", "is leader", "is learner", "raft term", "raft index",
              "raft applied index", "errors"]  # fmt: skip
    rows = [
        [
            ep,
            f"{r.header.member_id:x}",
            r.version,
            humanize_bytes(r.dbSize),
            _go_bool(r.leader == r.header.member_id),
            _go_bool(r.isLearner),
            str(r.raftTerm),
            str(r.raftIndex),
            str(r.raftAppliedIndex),
            ", ".join(r.errors),
        ]
        for ep, r in items
    ]
    return header, rows


def hashkv_rows(items):
    return ["endpoint", "hash"], [[ep, str(r.hash)] for ep, r in items]


def db_status_rows(status):
    row = [
        f"{status.hash:x}",
        str(status.revision),
        str(status.total_keys),
        humanize_bytes(status.total_size),
    ]
    return ["hash", "revision", "total keys", "total size"], [row]


def _go_bool(value: bool) -> str:
    return "true" if value else "false"


# --- simple ---


def _print_op(printer, op) -> bool:
    """Prints one response of a txn with the printer's own get/put/delete; False for an unknown kind."""
    kind = op.WhichOneof("response")
    if kind == "response_delete_range":
        printer.delete(op.response_delete_range)
    elif kind == "response_put":
        printer.put(op.response_put)
    elif kind == "response_range":
        printer.get(op.response_range)
    else:
        return False
    return True


class SimplePrinter(Unsupported):
    name = "simple"

    def __init__(self, hex_bytes: bool = False) -> None:
        self.hex = hex_bytes
        self.value_only = False

    def _kv(self, kv) -> None:
        key, value = kv.key, kv.value
        if self.hex:
            shown_key, shown_value = _hex(key), _hex(value)
        else:
            shown_key, shown_value = _text(key), _text(value)
        if not self.value_only:
            _write_line(shown_key)
        _write_line(shown_value)

    def delete(self, resp) -> None:
        out(str(resp.deleted))
        for kv in resp.prev_kvs:
            self._kv(kv)

    def get(self, resp) -> None:
        for kv in resp.kvs:
            self._kv(kv)

    def put(self, resp) -> None:
        out("OK")
        if resp.HasField("prev_kv"):
            self._kv(resp.prev_kv)

    def txn(self, resp) -> None:
        out("SUCCESS" if resp.succeeded else "FAILURE")
        for op in resp.responses:
            out("")
            if not _print_op(self, op):
                out(f"unexpected response {op}")

    def watch(self, batch: WatchBatch) -> None:
        for ev in batch.events:
            out(_EVENT_TYPES.get(ev.type, str(ev.type)))
            if ev.HasField("prev_kv"):
                self._kv(ev.prev_kv)
            self._kv(ev.kv)

    def grant(self, resp) -> None:
        out(f"lease {_lease_hex(resp.ID)} granted with TTL({resp.TTL}s)")

    def revoke(self, lease_id: int, resp) -> None:
        out(f"lease {_lease_hex(lease_id)} revoked")

    def keep_alive(self, resp) -> None:
        out(f"lease {_lease_hex(resp.ID)} keepalived with TTL({resp.TTL})")

    def time_to_live(self, resp, keys: bool) -> None:
        if resp.grantedTTL == 0 and resp.TTL == -1:
            out(f"lease {_lease_hex(resp.ID)} already expired")
            return
        text = f"lease {_lease_hex(resp.ID)} granted with TTL({resp.grantedTTL}s), remaining({resp.TTL}s)"
        if keys:
            text += ", attached keys([" + " ".join(_text(k) for k in resp.keys) + "])"
        _write_line(text)

    def leases(self, resp) -> None:
        out(f"found {len(resp.leases)} leases")
        for item in resp.leases:
            out(_lease_hex(item.ID))

    def alarm(self, resp) -> None:
        for a in resp.alarms:
            text = ""
            if a.memberID:
                text += f"memberID:{a.memberID} "
            if a.alarm:
                text += f"alarm:{_ALARMS.get(a.alarm, a.alarm)} "
            out(text)

    def member_add(self, resp) -> None:
        out(f"Member {resp.member.ID:16x} added to cluster {resp.header.cluster_id:16x}")

    def member_remove(self, member_id: int, resp) -> None:
        out(f"Member {member_id:16x} removed from cluster {resp.header.cluster_id:16x}")

    def member_update(self, member_id: int, resp) -> None:
        out(f"Member {member_id:16x} updated in cluster {resp.header.cluster_id:16x}")

    def member_promote(self, member_id: int, resp) -> None:
        out(f"Member {member_id:16x} promoted in cluster {resp.header.cluster_id:16x}")

    def member_list(self, resp) -> None:
        for row in member_rows(resp)[1]:
            out(", ".join(row))

    def endpoint_health(self, items: list[EndpointHealth]) -> None:
        for h in items:
            if not h.error:
                err(f"{h.endpoint} is healthy: successfully committed proposal: took = {h.took}")
            else:
                err(f"{h.endpoint} is unhealthy: failed to commit proposal: {h.error}")

    def endpoint_status(self, items) -> None:
        for row in status_rows(items)[1]:
            out(", ".join(row))

    def endpoint_hashkv(self, items) -> None:
        for row in hashkv_rows(items)[1]:
            out(", ".join(row))

    def db_status(self, status) -> None:
        for row in db_status_rows(status)[1]:
            out(", ".join(row))

    def move_leader(self, leader: int, target: int, resp) -> None:
        out(f"Leadership transferred from {leader:x} to {target:x}")


def _lease_hex(lease_id: int) -> str:
    return f"{lease_id & 0xFFFFFFFFFFFFFFFF:016x}" if lease_id < 0 else f"{lease_id:016x}"


def _hex(data: bytes) -> str:
    return "".join(f"\\x{b:02x}" for b in data)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _write_line(text: str) -> None:
    # Keys and values are bytes: write them back unchanged, whatever their encoding.
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape") + b"\n")
    sys.stdout.buffer.flush()


# --- json ---


def _header_inline(resp) -> dict:
    # clientv3's lease responses embed *pb.ResponseHeader: its fields appear inline.
    return gojson.to_go(resp.header) if resp.HasField("header") else {}


class JSONPrinter(Unsupported):
    name = "json"

    def _print(self, value) -> None:
        out(go_json(value))

    def _message(self, message) -> None:
        self._print(gojson.to_go(message))

    def get(self, resp) -> None:
        self._message(resp)

    put = delete = txn = get

    def watch(self, batch: WatchBatch) -> None:
        self._print(
            {
                "Header": gojson.to_go(batch.header),
                "Events": [gojson.to_go(e) for e in batch.events],
                "CompactRevision": batch.compact_revision,
                "Canceled": batch.canceled,
                "Created": batch.created,
            }
        )

    def grant(self, resp) -> None:
        self._print({**_header_inline(resp), "ID": resp.ID, "TTL": resp.TTL, "Error": resp.error})

    def revoke(self, lease_id: int, resp) -> None:
        self._message(resp)

    def keep_alive(self, resp) -> None:
        self._print({**_header_inline(resp), "ID": resp.ID, "TTL": resp.TTL})

    def time_to_live(self, resp, keys: bool) -> None:
        attached = [gojson.b64(k) for k in resp.keys] if len(resp.keys) else None
        body = {"id": resp.ID, "ttl": resp.TTL, "granted-ttl": resp.grantedTTL, "keys": attached}
        self._print({**_header_inline(resp), **body})

    def leases(self, resp) -> None:
        self._print({**_header_inline(resp), "leases": [{"id": item.ID} for item in resp.leases]})

    def member_add(self, resp) -> None:
        self._message(resp)

    def member_remove(self, member_id: int, resp) -> None:
        self._message(resp)

    member_update = member_remove

    def member_list(self, resp) -> None:
        self._message(resp)

    alarm = member_list

    def move_leader(self, leader: int, target: int, resp) -> None:
        self._message(resp)

    def endpoint_health(self, items: list[EndpointHealth]) -> None:
        rows = []
        for h in items:
            row = {"endpoint": h.endpoint, "health": h.health, "took": h.took}
            if h.error:
                row["error"] = h.error
            rows.append(row)
        self._print(rows)

    def endpoint_status(self, items) -> None:
        self._print([{"Endpoint": ep, "Status": gojson.to_go(r)} for ep, r in items])

    def endpoint_hashkv(self, items) -> None:
        self._print([{"Endpoint": ep, "HashKV": gojson.to_go(r)} for ep, r in items])

    def db_status(self, status) -> None:
        self._print(
            {"hash": status.hash, "revision": status.revision, "totalKey": status.total_keys,
             "totalSize": status.total_size}
        )  # fmt: skip


# --- fields ---


class FieldsPrinter(Unsupported):
    name = "fields"

    def _kv(self, prefix: str, kv) -> None:
        _write_line(f'"{prefix}Key" : {go_quote(kv.key)}')
        out(f'"{prefix}CreateRevision" : {kv.create_revision}')
        out(f'"{prefix}ModRevision" : {kv.mod_revision}')
        out(f'"{prefix}Version" : {kv.version}')
        _write_line(f'"{prefix}Value" : {go_quote(kv.value)}')
        out(f'"{prefix}Lease" : {kv.lease}')

    def _hdr(self, h) -> None:
        out(f'"ClusterID" : {h.cluster_id}')
        out(f'"MemberID" : {h.member_id}')
        out(f'"Revision" : {h.revision}')
        out(f'"RaftTerm" : {h.raft_term}')

    def delete(self, resp) -> None:
        self._hdr(resp.header)
        out(f'"Deleted" : {resp.deleted}')
        for kv in resp.prev_kvs:
            self._kv("Prev", kv)

    def get(self, resp) -> None:
        self._hdr(resp.header)
        for kv in resp.kvs:
            self._kv("", kv)
        out(f'"More" : {_go_bool(resp.more)}')
        out(f'"Count" : {resp.count}')

    def put(self, resp) -> None:
        self._hdr(resp.header)
        if resp.HasField("prev_kv"):
            self._kv("Prev", resp.prev_kv)

    def txn(self, resp) -> None:
        self._hdr(resp.header)
        out(f'"Succeeded" : {_go_bool(resp.succeeded)}')
        for op in resp.responses:
            if not _print_op(self, op):
                out(f'"Unknown" : {go_quote(str(op))}')

    def watch(self, batch: WatchBatch) -> None:
        self._hdr(batch.header)
        for ev in batch.events:
            out(f'"Type" : {_EVENT_TYPES.get(ev.type, ev.type)}')
            if ev.HasField("prev_kv"):
                self._kv("Prev", ev.prev_kv)
            self._kv("", ev.kv)

    def grant(self, resp) -> None:
        self._hdr(resp.header)
        out(f'"ID" : {resp.ID}')
        out(f'"TTL" : {resp.TTL}')

    keep_alive = grant

    def revoke(self, lease_id: int, resp) -> None:
        self._hdr(resp.header)

    def time_to_live(self, resp, keys: bool) -> None:
        self._hdr(resp.header)
        out(f'"ID" : {resp.ID}')
        out(f'"TTL" : {resp.TTL}')
        out(f'"GrantedTTL" : {resp.grantedTTL}')
        for k in resp.keys:
            _write_line(f'"Key" : {go_quote(k)}')

    def leases(self, resp) -> None:
        self._hdr(resp.header)
        for item in resp.leases:
            out(f'"ID" : {item.ID}')

    def member_list(self, resp) -> None:
        self._hdr(resp.header)
        for m in resp.members:
            out(f'"ID" : {m.ID}')
            out(f'"Name" : {go_quote(m.name)}')
            for u in m.peerURLs:
                out(f'"PeerURL" : {go_quote(u)}')
            for u in m.clientURLs:
                out(f'"ClientURL" : {go_quote(u)}')
            out(f'"IsLearner" : {_go_bool(m.isLearner)}')
            out()

    def endpoint_health(self, items: list[EndpointHealth]) -> None:
        for h in items:
            out(f'"Endpoint" : {go_quote(h.endpoint)}')
            out(f'"Health" : {_go_bool(h.health)}')
            out(f'"Took" : {h.took}')
            out(f'"Error" : {h.error}')
            out()

    def endpoint_status(self, items) -> None:
        for ep, r in items:
            self._hdr(r.header)
            out(f'"Version" : {go_quote(r.version)}')
            out(f'"DBSize" : {r.dbSize}')
            out(f'"Leader" : {r.leader}')
            out(f'"IsLearner" : {_go_bool(r.isLearner)}')
            out(f'"RaftIndex" : {r.raftIndex}')
            out(f'"RaftTerm" : {r.raftTerm}')
            out(f'"RaftAppliedIndex" : {r.raftAppliedIndex}')
            out(f'"Errors" : [{" ".join(r.errors)}]')
            out(f'"Endpoint" : {go_quote(ep)}')
            out()

    def endpoint_hashkv(self, items) -> None:
        for ep, r in items:
            self._hdr(r.header)
            out(f'"Endpoint" : {go_quote(ep)}')
            out(f'"Hash" : {r.hash}')
            out()

    def alarm(self, resp) -> None:
        if not resp.HasField("header"):
            go_panic_nil()  # etcdctl 3.4 prints the header without checking it (empty alarm list)
        self._hdr(resp.header)
        for a in resp.alarms:
            out(f'"MemberID" : {a.memberID}')
            out(f'"AlarmType" : {_ALARMS.get(a.alarm, a.alarm)}')
            out()

    def db_status(self, status) -> None:
        out(f'"Hash" : {status.hash}')
        out(f'"Revision" : {status.revision}')
        out(f'"Keys" : {status.total_keys}')
        out(f'"Size" : {status.total_size}')


# --- table ---


class TablePrinter(Unsupported):
    name = "table"

    def _render(self, header_rows) -> None:
        sys.stdout.write(render_table(*header_rows))

    def member_list(self, resp) -> None:
        self._render(member_rows(resp))

    def endpoint_health(self, items) -> None:
        self._render(health_rows(items))

    def endpoint_status(self, items) -> None:
        self._render(status_rows(items))

    def endpoint_hashkv(self, items) -> None:
        self._render(hashkv_rows(items))

    def db_status(self, status) -> None:
        self._render(db_status_rows(status))


# --- protobuf ---


class ProtobufPrinter(Unsupported):
    name = "protobuf"

    def _print(self, message) -> None:
        sys.stdout.flush()
        sys.stdout.buffer.write(message.SerializeToString())
        sys.stdout.buffer.flush()

    def get(self, resp) -> None:
        self._print(resp)

    put = delete = txn = get

    def member_add(self, resp) -> None:
        self._print(resp)

    def member_remove(self, member_id: int, resp) -> None:
        self._print(resp)

    member_update = member_remove
    member_list = alarm = member_add

    def watch(self, batch: WatchBatch) -> None:
        self._print(
            rpc_pb2.WatchResponse(
                header=batch.header, events=batch.events, compact_revision=batch.compact_revision,
                canceled=batch.canceled, created=batch.created,
            )
        )  # fmt: skip

    def _no_marshal(self, go_type: str):
        fail(EXIT_BAD_FEATURE, f"marshal unsupported for type {go_type} ({{...}})")

    def grant(self, resp) -> None:
        # clientv3's lease responses embed *pb.ResponseHeader, whose Marshal is promoted: etcdctl prints
        # the header alone.
        self._print(resp.header)

    keep_alive = grant

    def time_to_live(self, resp, keys: bool) -> None:
        self._print(resp.header)

    def leases(self, resp) -> None:
        self._print(resp.header)

    def revoke(self, lease_id: int, resp) -> None:
        self._no_marshal("clientv3.LeaseRevokeResponse")
