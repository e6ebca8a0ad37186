"""A gRPC server that does nothing: KV.Range answers an empty response at once, on grpc.aio as the member
serves. bench/etcd_v3.py measures it with the same load to show the ceiling Python's gRPC server puts on
any member written on it (usage: grpc_echo_server.py PORT)."""

from __future__ import annotations

import asyncio
import sys

import grpc

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc


class _EchoKV(rpc_pb2_grpc.KVServicer):
    async def Range(self, request, context):
        return rpc_pb2.RangeResponse(header=rpc_pb2.ResponseHeader(revision=1))


async def _serve(port: int) -> None:
    server = grpc.aio.server()
    rpc_pb2_grpc.add_KVServicer_to_server(_EchoKV(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("serving", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
