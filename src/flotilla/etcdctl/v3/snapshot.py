"""``snapshot save|status`` (ctlv3/command/snapshot_command.go, clientv3/snapshot).

``status`` reads the file read-only. A snapshot from etcd is a bbolt file: its pages are parsed here and
the hash, revision, key count and size are computed exactly as etcd 3.4 does (CRC-32C over every bucket
name, key and value in order; the revision of the last key of bucket ``key``; the size of the used pages).
A snapshot from Flotilla is an LMDB file: the same figures are computed over its named databases, the
size is the file's, and a note on stderr says so (etcd's etcdctl cannot read it at all).
"""

from __future__ import annotations

import datetime
import json
import os
import struct
import sys
import time
from dataclasses import dataclass

from flotilla.etcd.api import rpc_pb2
from flotilla.etcdctl.v3.cli import Ctl
from flotilla.etcdctl.v3.cmdline import Command
from flotilla.etcdctl.v3.errors import EXIT_BAD_ARGS, EXIT_ERROR, EXIT_INTERRUPTED, fail
from flotilla.etcdctl.v3.textfmt import humanize_bytes
from flotilla.etcdctl.v3.unsupported import restore_command


@dataclass
class DBStatus:
    hash: int
    revision: int
    total_keys: int
    total_size: int


def commands() -> list[Command]:
    status_long = (
        "When --write-out is set to simple, this command prints out comma-separated status lists for "
        "each endpoint.\nThe items in the lists are hash, revision, total keys, total size.\n"
    )
    snapshot = Command("snapshot <subcommand>", "Manages etcd node snapshots").add(
        Command("save <filename>", "Stores an etcd node backend snapshot to a given file", _save),
        restore_command(),
        Command(
            "status <filename>", "Gets backend snapshot status of a given file", _status, long=status_long
        ),
    )
    return [snapshot]


# --- save ---


def _zap(caller: str, msg: str, epoch: bool = True, **fields) -> None:
    # zap.NewProduction() logs epoch seconds; clientv3's own logger logs ISO-8601 times.
    if epoch:
        stamp: object = time.time()
    else:
        now = datetime.datetime.now().astimezone()
        zone = "Z" if now.utcoffset() == datetime.timedelta(0) else now.strftime("%z")
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}" + zone
    entry = {"level": "info", "ts": stamp, "caller": caller, "msg": msg, **fields}
    sys.stderr.write(json.dumps(entry, separators=(",", ":")) + "\n")


def _save(ctl: Ctl) -> None:
    if len(ctl.args) != 1:
        fail(EXIT_BAD_ARGS, "snapshot save expects one argument")
    config = ctl.client_config()
    path = ctl.args[0]
    if len(config.endpoints) != 1:
        fail(EXIT_INTERRUPTED, "snapshot must be requested to one selected node, not multiple "
             f"[{' '.join(config.endpoints)}]")  # fmt: skip
    part = path + ".part"
    try:
        f = open(part, "wb")  # noqa: SIM115 - closed below, removed on every failure
        os.chmod(part, 0o600)
    except OSError as e:
        fail(EXIT_INTERRUPTED, f"could not open {part} (open {part}: {_os_reason(e)})")
    try:
        _download(ctl, f, path, part, config.endpoints[0])
    finally:
        f.close()
        if os.path.exists(part):
            os.remove(part)
    sys.stdout.write(f"Snapshot saved at {path}\n")


def _download(ctl: Ctl, f, path: str, part: str, endpoint: str) -> None:
    _zap("snapshot/v3_snapshot.go:119", "created temporary db file", path=part)
    started = time.monotonic()
    client = ctl.client()
    timeout = ctl.command_timeout_s if ctl.changed("command-timeout") else None
    stream = client.maintenance.Snapshot(
        rpc_pb2.SnapshotRequest(), timeout=timeout, wait_for_ready=True, metadata=client.metadata or None
    )
    _zap("clientv3/maintenance.go:200", "opened snapshot stream; downloading", epoch=False)
    _zap("snapshot/v3_snapshot.go:127", "fetching snapshot", endpoint=endpoint)
    size = 0
    try:
        for message in stream:
            f.write(message.blob)
            size += len(message.blob)
    except Exception as e:  # grpc.RpcError
        fail(EXIT_INTERRUPTED, str(client.failure(e, log=False)))
    _zap("clientv3/maintenance.go:208", "completed snapshot read; closing", epoch=False)
    if size % 512 != 32:
        fail(EXIT_INTERRUPTED, f"sha256 checksum not found [bytes: {size}]")
    f.flush()
    os.fsync(f.fileno())
    _zap("snapshot/v3_snapshot.go:142", "fetched snapshot", endpoint=endpoint, size=humanize_bytes(size),
         took=round(time.monotonic() - started, 9))  # fmt: skip
    os.replace(part, path)
    _zap("snapshot/v3_snapshot.go:152", "saved", path=path)


def _os_reason(e: OSError) -> str:
    return (e.strerror or str(e)).lower()


# --- status ---


def _status(ctl: Ctl) -> None:
    if len(ctl.args) != 1:
        fail(EXIT_BAD_ARGS, "snapshot status requires exactly one argument")
    ctl.init_display()
    path = ctl.args[0]
    try:
        os.stat(path)
    except OSError as e:
        fail(EXIT_ERROR, f"stat {path}: {_os_reason(e)}")
    try:
        status = bolt_status(path)
    except BoltError as e:
        lmdb_found = _lmdb_status(path)
        if lmdb_found is None:
            fail(EXIT_ERROR, str(e))
        sys.stderr.write(
            f"note: {path} is a Flotilla (LMDB) snapshot, not a bbolt one: hash, revision and keys are "
            "computed over its databases as etcd does over buckets; size is the file size\n"
        )
        status = lmdb_found
    ctl.display.db_status(status)


class BoltError(Exception):
    """The file is not a bbolt database bbolt would open (the text is bbolt's)."""


_MAGIC = 0xED0CDAED
_BRANCH, _LEAF = 0x01, 0x02
_BUCKET_LEAF = 0x01


def bolt_status(path: str) -> DBStatus:
    """clientv3/snapshot's Status over a bbolt file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 0x1000:
        raise BoltError("invalid database")
    meta0 = _meta(data, 0, 4096)
    page_size = meta0["page_size"] if meta0["error"] is None else 4096
    if len(data) < 2 * page_size:
        raise BoltError("file size too small")
    metas = [meta0 if page_size == 4096 else _meta(data, 0, page_size), _meta(data, 1, page_size)]
    valid = [m for m in metas if m["error"] is None]
    if not valid:
        raise BoltError(metas[0]["error"])
    meta = max(valid, key=lambda m: m["txid"])
    digest = Crc32c()
    total_keys, revision = 0, 0
    for name, value, flags in _walk(data, page_size, meta["root"]):
        if not flags & _BUCKET_LEAF:
            raise BoltError(f"cannot get hash of bucket {name.decode('utf-8', 'replace')}")
        digest.update(name)
        for key, val, _ in _bucket(data, page_size, value):
            digest.update(key)
            digest.update(val)
            if name == b"key":
                revision = struct.unpack(">Q", key[:8])[0] if len(key) >= 8 else 0
            total_keys += 1
    return DBStatus(digest.value, revision, total_keys, meta["pgid"] * page_size)


def _meta(data: bytes, index: int, page_size: int) -> dict:
    offset = index * page_size + 16
    fields = struct.unpack_from("<IIIIQQQQQQ", data, offset)
    magic, version, size, _flags, root, _seq, _freelist, pgid, txid, checksum = fields
    error = None
    if magic != _MAGIC:
        error = "invalid database"
    elif version != 2:
        error = "version mismatch"
    elif checksum != _fnv64a(data[offset : offset + 56]):
        error = "checksum error"
    return {"error": error, "page_size": size, "root": root, "pgid": pgid, "txid": txid}


def _fnv64a(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _bucket(data: bytes, page_size: int, value: bytes):
    root = struct.unpack_from("<Q", value, 0)[0]
    if root == 0:  # an inline bucket: its one leaf page follows the bucket header
        yield from _page_elements(value, 16)
        return
    yield from _walk(data, page_size, root)


def _walk(data: bytes, page_size: int, pgid: int):
    """Every (key, value, flags) of the B+tree rooted at page ``pgid``, in key order."""
    offset = pgid * page_size
    flags, count = struct.unpack_from("<HH", data, offset + 8)
    if flags & _BRANCH:
        for i in range(count):
            elem = offset + 16 + i * 16
            child = struct.unpack_from("<Q", data, elem + 8)[0]
            yield from _walk(data, page_size, child)
    elif flags & _LEAF:
        yield from _page_elements(data, offset)
    else:
        raise BoltError(f"invalid page type: {pgid}: {flags}")


def _page_elements(data: bytes, offset: int):
    count = struct.unpack_from("<H", data, offset + 10)[0]
    for i in range(count):
        elem = offset + 16 + i * 16
        flags, pos, ksize, vsize = struct.unpack_from("<IIII", data, elem)
        start = elem + pos
        yield data[start : start + ksize], data[start + ksize : start + ksize + vsize], flags


def _lmdb_status(path: str) -> DBStatus | None:
    try:
        import lmdb

        env = lmdb.open(path, subdir=False, readonly=True, lock=False, max_dbs=128)
    except Exception:
        return None
    digest, total_keys, revision = Crc32c(), 0, 0
    try:
        with env.begin() as txn:
            names = [bytes(k) for k, _ in txn.cursor()]
            for name in names:
                digest.update(name)
                for key, value in txn.cursor(db=env.open_db(name, txn=txn, create=False)):
                    digest.update(key)
                    digest.update(value)
                    if name == b"key" and len(key) >= 8:
                        revision = struct.unpack(">Q", key[:8])[0]
                    total_keys += 1
    except Exception:
        return None
    finally:
        env.close()
    return DBStatus(digest.value, revision, total_keys, os.path.getsize(path))


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


class Crc32c:
    """hash/crc32 with the Castagnoli table, fed piece by piece."""

    def __init__(self) -> None:
        self._crc = 0xFFFFFFFF

    def update(self, data: bytes) -> None:
        crc, table = self._crc, _TABLE
        for byte in data:
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        self._crc = crc

    @property
    def value(self) -> int:
        return self._crc ^ 0xFFFFFFFF
