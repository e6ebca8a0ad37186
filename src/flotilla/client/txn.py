"""Transaction builders: comparisons and operations, turned into etcd v3 protobuf requests.

Compare.create_revision("k") == 0        the key does not exist
Compare.mod_revision("k") == 42          nobody wrote it since revision 42
Compare.value("k") != b"x"
Compare.version("k") > 0                 the key exists
Op.put("k", "v", lease=7), Op.delete("dir/", prefix=True), Op.get("k")
"""

from __future__ import annotations

from dataclasses import dataclass

from flotilla.client.types import DeleteResult, KeyValue, PutResult, RangeResult, to_bytes
from flotilla.etcd.api import rpc_pb2

__all__ = ["Compare", "Op", "prefix_range_end", "response_from_pb"]

_C = rpc_pb2.Compare


def prefix_range_end(prefix: bytes) -> bytes:
    """The end of the range holding every key that starts with ``prefix`` (clientv3.GetPrefixRangeEnd);
    ``b"\\0"`` with an empty or all-0xff prefix means "to the end of the keyspace"."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


class _Target:
    """The left side of a comparison; an operator with a value makes the Compare."""

    def __init__(self, key: bytes, target: int, field: str, range_end: bytes) -> None:
        self._key, self._target, self._field, self._range_end = key, target, field, range_end

    def _make(self, result: int, value: int | str | bytes) -> Compare:
        if self._field == "value":
            value = to_bytes(value, "value")
        elif not isinstance(value, int):
            raise TypeError(f"Compare.{self._field} takes an int, not {value!r}")
        return Compare(self._key, self._target, result, value, self._range_end)

    def __eq__(self, value) -> Compare:  # type: ignore[override]
        return self._make(_C.EQUAL, value)

    def __ne__(self, value) -> Compare:  # type: ignore[override]
        return self._make(_C.NOT_EQUAL, value)

    def __lt__(self, value) -> Compare:
        return self._make(_C.LESS, value)

    def __gt__(self, value) -> Compare:
        return self._make(_C.GREATER, value)

    __hash__ = None  # type: ignore[assignment]


_FIELDS = {_C.VERSION: "version", _C.CREATE: "create_revision", _C.MOD: "mod_revision", _C.VALUE: "value"}
_FIELDS[_C.LEASE] = "lease"


@dataclass(frozen=True)
class Compare:
    """One condition of a transaction's ``if``; build it with the class methods and an operator."""

    key: bytes
    target: int
    result: int
    operand: int | bytes  # what the key's field is compared with
    range_end: bytes = b""

    @staticmethod
    def _target(key: str | bytes, target: int, prefix: bool) -> _Target:
        k = to_bytes(key)
        return _Target(k, target, _FIELDS[target], prefix_range_end(k) if prefix else b"")

    @classmethod
    def version(cls, key: str | bytes, *, prefix: bool = False) -> _Target:
        return cls._target(key, _C.VERSION, prefix)

    @classmethod
    def create_revision(cls, key: str | bytes, *, prefix: bool = False) -> _Target:
        return cls._target(key, _C.CREATE, prefix)

    @classmethod
    def mod_revision(cls, key: str | bytes, *, prefix: bool = False) -> _Target:
        return cls._target(key, _C.MOD, prefix)

    @classmethod
    def value(cls, key: str | bytes, *, prefix: bool = False) -> _Target:
        return cls._target(key, _C.VALUE, prefix)

    @classmethod
    def lease(cls, key: str | bytes, *, prefix: bool = False) -> _Target:
        return cls._target(key, _C.LEASE, prefix)

    def to_pb(self) -> rpc_pb2.Compare:
        pb = rpc_pb2.Compare(key=self.key, target=self.target, result=self.result, range_end=self.range_end)
        setattr(pb, _FIELDS[self.target], self.operand)
        return pb


@dataclass(frozen=True)
class Op:
    """One operation of a transaction branch; ``request`` is the RequestOp sent."""

    request: rpc_pb2.RequestOp

    @classmethod
    def put(cls, key: str | bytes, value: str | bytes, *, lease: int = 0, prev_kv: bool = False) -> Op:
        put = rpc_pb2.PutRequest(
            key=to_bytes(key), value=to_bytes(value, "value"), lease=lease, prev_kv=prev_kv
        )
        return cls(rpc_pb2.RequestOp(request_put=put))

    @classmethod
    def delete(cls, key: str | bytes, *, prefix: bool = False, prev_kv: bool = False) -> Op:
        k = to_bytes(key)
        end = prefix_range_end(k) if prefix else b""
        request = rpc_pb2.DeleteRangeRequest(key=k, range_end=end, prev_kv=prev_kv)
        return cls(rpc_pb2.RequestOp(request_delete_range=request))

    @classmethod
    def get(cls, key: str | bytes, *, prefix: bool = False, keys_only: bool = False, limit: int = 0) -> Op:
        k = to_bytes(key)
        end = prefix_range_end(k) if prefix else b""
        request = rpc_pb2.RangeRequest(key=k, range_end=end, keys_only=keys_only, limit=limit)
        return cls(rpc_pb2.RequestOp(request_range=request))


def response_from_pb(op: rpc_pb2.ResponseOp, revision: int) -> RangeResult | PutResult | DeleteResult:
    """The result of one transaction operation (the transaction's revision applies to all of them)."""
    kind = op.WhichOneof("response")
    if kind == "response_range":
        r = op.response_range
        return RangeResult([KeyValue.from_pb(kv) for kv in r.kvs], r.count, r.more, revision)
    if kind == "response_put":
        p = op.response_put
        return PutResult(revision, KeyValue.from_pb(p.prev_kv) if p.HasField("prev_kv") else None)
    if kind == "response_delete_range":
        d = op.response_delete_range
        return DeleteResult(revision, d.deleted, [KeyValue.from_pb(kv) for kv in d.prev_kvs])
    raise AssertionError(f"nested transactions are not built by this client: {kind}")
