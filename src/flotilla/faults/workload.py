"""Concurrent clients that record every operation they make, for the linearizability check.

Each client loops over put / linearizable get / compare-and-swap (a Txn) / delete on a handful of keys,
each write with a value no other write uses, sending each request to the next member in turn. A write that
fails or times out has an unknown outcome (it may still commit): recorded with ``end_ns=None``. A read that
fails is dropped (it changed nothing). Times are ``time.monotonic_ns()`` of the runner's process.
"""

from __future__ import annotations

import asyncio
import random
import time

import grpc

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc
from flotilla.linearizability import Operation

__all__ = ["Workload"]

REQUEST_TIMEOUT_S = 1.0


class Workload:
    def __init__(self, addresses_of, *, clients: int = 6, keys: int = 5, seed: int = 0,
                 serializable_reads: bool = False) -> None:  # fmt: skip
        """``addresses_of()``: the client addresses to use now (members change during a run)."""
        self.addresses_of = addresses_of
        self.clients = clients
        self.keys = [f"key-{i}" for i in range(keys)]
        self.rng = random.Random(seed)
        self.serializable_reads = serializable_reads
        self.history: list[Operation] = []
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stopping = False

    def _stub(self, address: str) -> rpc_pb2_grpc.KVStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(address)
        return rpc_pb2_grpc.KVStub(channel)

    async def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(self._client(i, deadline) for i in range(self.clients)))

    def stop(self) -> None:
        self._stopping = True

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def _client(self, client_id: int, deadline: float) -> None:
        rng = random.Random(self.rng.randrange(1 << 30))
        seq = 0
        turn = client_id
        while time.monotonic() < deadline and not self._stopping:
            addresses = self.addresses_of()
            if not addresses:
                await asyncio.sleep(0.05)
                continue
            turn += 1
            stub = self._stub(addresses[turn % len(addresses)])
            key = rng.choice(self.keys)
            seq += 1
            value = f"c{client_id}-{seq}"
            kind = rng.choices(("put", "get", "cas", "delete"), (4, 4, 2, 1))[0]
            await self.one(stub, client_id, kind, key, value)

    async def one(self, stub, client_id: int, kind: str, key: str, value: str) -> None:
        k = key.encode()
        expected = self._expected(key) if kind == "cas" else None
        written = None if kind in ("get", "delete") else value
        start = time.monotonic_ns()
        seen, ok = None, True
        try:
            if kind == "get":
                request = rpc_pb2.RangeRequest(key=k, serializable=self.serializable_reads)
                resp = await stub.Range(request, timeout=REQUEST_TIMEOUT_S)
                seen = resp.kvs[0].value.decode() if resp.kvs else None
            elif kind == "put":
                await stub.Put(rpc_pb2.PutRequest(key=k, value=value.encode()), timeout=REQUEST_TIMEOUT_S)
            elif kind == "delete":
                await stub.DeleteRange(rpc_pb2.DeleteRangeRequest(key=k), timeout=REQUEST_TIMEOUT_S)
            else:
                ok = (await stub.Txn(_cas(k, expected, value), timeout=REQUEST_TIMEOUT_S)).succeeded
        except (TimeoutError, grpc.aio.AioRpcError):
            if kind != "get":  # a write that may or may not have taken effect
                self.history.append(Operation(client_id, kind, key, written, expected, start, None, None))
            await asyncio.sleep(0.02)
            return
        end = time.monotonic_ns()
        value_field = seen if kind == "get" else written
        self.history.append(Operation(client_id, kind, key, value_field, expected, start, end, ok))

    def _expected(self, key: str) -> str | None:
        """A plausible current value: the last value some client saw or wrote for ``key``."""
        for op in reversed(self.history[-50:]):
            if op.key == key and op.known and op.kind in ("get", "put"):
                return op.value
        return None


def _cas(key: bytes, expected: str | None, value: str) -> rpc_pb2.TxnRequest:
    if expected is None:
        compare = rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.EQUAL,
                                  create_revision=0)  # fmt: skip
    else:
        compare = rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.VALUE, result=rpc_pb2.Compare.EQUAL,
                                  value=expected.encode())  # fmt: skip
    put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value.encode()))
    return rpc_pb2.TxnRequest(compare=[compare], success=[put])
