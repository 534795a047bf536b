"""The soak's hostile clients (benches/soak.py), played one after another in a cycle for the
whole run. Each returns its outcome; the soak checks it against what docs/security.md
promises. The raw HTTP/2 ones write frames by hand (RFC 9113) over a plain socket."""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from soak_h2 import (
    DATA,
    END_HEADERS,
    HEADERS,
    MODEL_INFER,
    PREFACE,
    SETTINGS,
    UnreadStream,
    frame,
    grpc_headers,
    read_frames,
)
from soak_traffic import Recorder, code_name
from tritonclient.grpc import service_pb2

IDLE_CONNECTIONS = 300


@dataclass(frozen=True, slots=True)
class Abuse:
    """One hostile client: `play` returns its outcome, `expected` the outcomes allowed."""

    name: str
    play: Callable[[], str]
    expected: frozenset[str]


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the peer closed `sock`: end of file past what it sent (a SETTINGS frame, a
    GOAWAY), without waiting."""
    try:
        while chunk := sock.recv(65536, socket.MSG_DONTWAIT):
            del chunk
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset
    return True


class Abuser:
    """The hostile clients against one server."""

    def __init__(self, host: str, port: int, model: str, max_message_bytes: int, seed: int) -> None:
        self.host, self.port, self.model = host, port, model
        self.address = f"{host}:{port}"
        self.max_message_bytes = max_message_bytes
        self.rng = random.Random(seed)

    def abuses(self) -> list[Abuse]:
        refused = frozenset({"closed", "goaway", "answered", "reset"})
        return [
            Abuse("garbage bytes", self.garbage, frozenset({"closed", "goaway"})),
            Abuse("prefix declaring 4 GiB", lambda: self.declared(0xFFFFFFFF), refused),
            Abuse(
                "prefix under the limit, then silence",
                self.declared_under_limit,
                frozenset({"held 5 s, then left"}),
            ),
            Abuse("stream never read", self.never_read, frozenset({"paused"})),
            Abuse(
                f"{IDLE_CONNECTIONS} idle connections",
                self.idle_connections,
                frozenset({"all closed by the server"}),
            ),
            Abuse("malformed protobuf", self.malformed, frozenset({"INVALID_ARGUMENT"})),
            Abuse("gzip bomb", self.gzip_bomb, frozenset({"RESOURCE_EXHAUSTED"})),
            Abuse(
                "wrong shape", lambda: self.infer([1, 63], "FP32"), frozenset({"INVALID_ARGUMENT"})
            ),
            Abuse(
                "wrong datatype",
                lambda: self.infer([1, 64], "FP64"),
                frozenset({"INVALID_ARGUMENT"}),
            ),
            Abuse(
                "unknown model",
                lambda: self.infer([1, 64], "FP32", "no_such_model"),
                frozenset({"NOT_FOUND"}),
            ),
        ]

    def cycle(self, recorder: Recorder, only: Sequence[str] = (), pause_s: float = 0.5) -> None:
        """Plays every abuse (or those whose names contain one of `only`) in turn until the
        run stops."""
        chosen = [a for a in self.abuses() if not only or any(part in a.name for part in only)]
        while not recorder.stop.is_set():
            for abuse in chosen:
                if recorder.stop.is_set():
                    return
                try:
                    outcome = abuse.play()
                except OSError as error:
                    outcome = f"client error {type(error).__name__}"
                recorder.add(f"bad: {abuse.name}", outcome, None, outcome in abuse.expected)
                recorder.stop.wait(pause_s)

    def _connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=5.0)

    def garbage(self) -> str:
        with self._connect() as sock:
            sock.sendall(self.rng.randbytes(4096))
            return read_frames(sock, 5.0)

    def _open_call(self, sock: socket.socket, path: str, data: bytes) -> None:
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        sock.sendall(frame(HEADERS, END_HEADERS, 1, grpc_headers(self.address, path)))
        sock.sendall(frame(DATA, 0, 1, data))

    def declared(self, length: int) -> str:
        """A message prefix declaring `length` bytes, 100 of them sent, then silence."""
        with self._connect() as sock:
            self._open_call(sock, MODEL_INFER, b"\x00" + struct.pack(">I", length) + bytes(100))
            return read_frames(sock, 5.0)

    def declared_under_limit(self) -> str:
        outcome = self.declared(self.max_message_bytes // 2)
        return "held 5 s, then left" if outcome == "held" else outcome

    def never_read(self) -> str:
        """A stream sending as fast as the server takes it, never reading an answer (raw
        HTTP/2: grpcio reads ahead into large windows): `paused` when the server stopped
        taking its requests (none sent in the last second of 5)."""
        request = service_pb2.ModelInferRequest(model_name=self.model, id="u" * 40)
        request.inputs.add(name="input", datatype="FP32", shape=[1, 64])
        request.raw_input_contents.append(bytes(256))
        body = request.SerializeToString()
        message = b"\x00" + struct.pack(">I", len(body)) + body
        with self._connect() as sock:
            stream = UnreadStream(sock, self.address, message)
            stream.run_for(4.0)
            before = stream.sent
            stream.run_for(1.0)
        if stream.closed:
            return f"closed after {stream.sent} sent"
        return "paused" if stream.sent == before else f"still sending ({stream.sent} sent)"

    def idle_connections(self) -> str:
        """Connections that never send a byte, held past the handshake timeout (10 s)."""
        sockets = [self._connect() for _ in range(IDLE_CONNECTIONS)]
        try:
            time.sleep(12.0)
            closed = sum(_closed_by_peer(sock) for sock in sockets)
        finally:
            for sock in sockets:
                sock.close()
        return "all closed by the server" if closed == len(sockets) else f"{closed} closed"

    def _raw_call(self, payload: bytes) -> str:
        with grpc.insecure_channel(self.address) as channel:
            call = channel.unary_unary(MODEL_INFER, None, None)
            try:
                call(payload, timeout=10.0)
            except grpc.RpcError as error:
                return code_name(error)
        return "OK"

    def malformed(self) -> str:
        # A length-delimited field (1: model_name) declaring more bytes than follow.
        return self._raw_call(b"\x0a\xff\x01" + self.rng.randbytes(16))

    def gzip_bomb(self) -> str:
        """Zeros inflating to 4x the message limit, gzipped by grpcio (a few KB on the wire);
        refused by the server once inflated past the limit (its message says so)."""
        with grpc.insecure_channel(self.address, compression=grpc.Compression.Gzip) as channel:
            call = channel.unary_unary(MODEL_INFER, None, None)
            try:
                call(bytes(4 * self.max_message_bytes), timeout=10.0)
            except grpc.RpcError as error:
                said = error.details() if isinstance(error, grpc.Call) else ""
                return code_name(error) + ("" if "decompressed" in (said or "") else f": {said}")
        return "OK"

    def infer(self, shape: list[int], datatype: str, model: str = "") -> str:
        request = service_pb2.ModelInferRequest(model_name=model or self.model)
        request.inputs.add(name="input", datatype=datatype, shape=shape)
        width = 8 if datatype == "FP64" else 4
        request.raw_input_contents.append(bytes(width * shape[0] * shape[1]))
        return self._raw_call(request.SerializeToString())
