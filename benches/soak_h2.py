"""A raw HTTP/2 client for the soak's hostile clients (benches/soak_abuse.py): frames written
by hand (RFC 9113) over a plain socket, headers as HPACK literals, so a client can do what no
gRPC library lets it do (declare a length and go silent, never read its answers)."""

from __future__ import annotations

import select
import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
STREAM_INFER = "/inference.GRPCInferenceService/ModelStreamInfer"
WINDOW_UPDATE = 0x8
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
DEFAULT_WINDOW = 65_535


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def header_block(fields: list[tuple[str, str]]) -> bytes:
    """HPACK literals without indexing, new names, no Huffman (every length under 127)."""
    block = b""
    for name, value in fields:
        block += b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()
    return block


def grpc_headers(host: str, path: str) -> bytes:
    fields = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", host),
              ("content-type", "application/grpc"), ("te", "trailers")]  # fmt: skip
    return header_block(fields)


def read_frames(sock: socket.socket, within_s: float) -> str:
    """How the server ends the conversation within `within_s`: `answered` (the call's
    trailers), `reset`, `goaway`, `closed`, or `held` (still open, nothing said)."""
    deadline = time.monotonic() + within_s
    buffer = b""
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            break
        try:
            chunk = sock.recv(65536)
        except OSError:
            return "closed"
        if not chunk:
            return "closed"
        buffer += chunk
        while len(buffer) >= 9:
            length = int.from_bytes(buffer[:3], "big")
            if len(buffer) < 9 + length:
                break
            kind, flags, stream = buffer[3], buffer[4], int.from_bytes(buffer[5:9], "big")
            buffer = buffer[9 + length :]
            if kind == SETTINGS and not flags & ACK and not _send(sock, frame(SETTINGS, ACK, 0)):
                return "closed"
            elif kind == HEADERS and stream and flags & END_STREAM:
                return "answered"
            elif kind == RST_STREAM:
                return "reset"
            elif kind == GOAWAY:
                return "goaway"
    return "held"


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def _frames(buffer: bytearray) -> list[tuple[int, int, int, bytes]]:
    """The whole frames at the front of `buffer` (taken out): (type, flags, stream, payload)."""
    taken = []
    while len(buffer) >= 9:
        length = int.from_bytes(buffer[:3], "big")
        if len(buffer) < 9 + length:
            break
        kind, flags, stream = buffer[3], buffer[4], int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
        taken.append((kind, flags, stream, bytes(buffer[9 : 9 + length])))
        del buffer[: 9 + length]
    return taken


class UnreadStream:
    """A ModelStreamInfer call that sends `message` (a framed gRPC message) as fast as the
    server's flow-control windows allow and never grants the server any window back: its
    answers fill the 64 KiB HTTP/2 gives by default and stay unread, as from a client that
    never reads. Answers the server's SETTINGS, as any client must."""

    def __init__(self, sock: socket.socket, authority: str, message: bytes) -> None:
        self.sock = sock
        self.message = message
        self.sent = 0
        self.closed = False
        self._connection_window = DEFAULT_WINDOW
        self._stream_window = DEFAULT_WINDOW
        self._buffer = bytearray()
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        sock.sendall(frame(HEADERS, END_HEADERS, 1, grpc_headers(authority, STREAM_INFER)))

    def run_for(self, seconds: float) -> None:
        """Sends whenever the windows allow, for `seconds`."""
        deadline = time.monotonic() + seconds
        while not self.closed and (left := deadline - time.monotonic()) > 0:
            if min(self._connection_window, self._stream_window) >= len(self.message):
                if not _send(self.sock, frame(DATA, 0, 1, self.message)):
                    self.closed = True
                    return
                self.sent += 1
                self._connection_window -= len(self.message)
                self._stream_window -= len(self.message)
                self._read(0.0)
            else:
                self._read(min(left, 0.1))

    def _read(self, wait_s: float) -> None:
        if not select.select([self.sock], [], [], wait_s)[0]:
            return
        try:
            chunk = self.sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            return
        self._buffer += chunk
        for kind, flags, stream, payload in _frames(self._buffer):
            self._on_frame(kind, flags, stream, payload)

    def _on_frame(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        if kind == SETTINGS and not flags & ACK:
            for at in range(0, len(payload) - 5, 6):
                setting, value = struct.unpack(">HI", payload[at : at + 6])
                if setting == SETTINGS_INITIAL_WINDOW_SIZE:
                    self._stream_window += value - DEFAULT_WINDOW
            _send(self.sock, frame(SETTINGS, ACK, 0))
        elif kind == WINDOW_UPDATE:
            increment = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if stream == 0:
                self._connection_window += increment
            else:
                self._stream_window += increment
        elif kind in (RST_STREAM, GOAWAY) or (kind == HEADERS and flags & END_STREAM):
            self.closed = True
