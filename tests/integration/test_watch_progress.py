"""Periodic watch progress notifications (WatchCreateRequest.progress_notify) at the interval set by
--experimental-watch-progress-notify-interval, on Flotilla and on real etcd 3.4: an empty response carrying
the current revision, for the watch that asked and only for it."""

from __future__ import annotations

import queue
import threading

import grpc
import pytest
from processes import real_etcd_available, start_member

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc

KINDS = ["flotilla", "etcd"] if real_etcd_available() else ["flotilla"]


@pytest.mark.parametrize("kind", KINDS)
def test_progress_notify_every_interval(tmp_path, kind):
    member = start_member(kind, tmp_path, "--experimental-watch-progress-notify-interval", "1s")
    channel = grpc.insecure_channel(member.address)
    try:
        kv = rpc_pb2_grpc.KVStub(channel)
        kv.Put(rpc_pb2.PutRequest(key=b"p", value=b"1"), timeout=5)
        requests: queue.Queue = queue.Queue()
        requests.put(
            rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"p", progress_notify=True))
        )
        requests.put(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"q")))
        stream = rpc_pb2_grpc.WatchStub(channel).Watch(iter(requests.get, None), timeout=10)
        responses = []

        def read() -> None:
            try:
                for response in stream:
                    responses.append(response)
            except grpc.RpcError:
                pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(4.5)  # the interval is 1 s: several notifications by now
        stream.cancel()
        requests.put(None)
        created = [r for r in responses if r.created]
        progress = [r for r in responses if not r.created and not r.canceled and not r.events]
        assert len(created) == 2
        progress_watch = created[0].watch_id
        assert len(progress) >= 2, responses
        assert {r.watch_id for r in progress} == {progress_watch}
        assert all(r.header.revision == 2 for r in progress)
    finally:
        channel.close()
        member.stop()
