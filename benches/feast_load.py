"""The closed-loop HTTP load of `feast serve` that benches/feast_serve.py runs as a child
process (`python benches/feast_load.py --port P --bodies FILE --concurrency N`), so that the
benchmark's own threads do not share its GIL: asyncio (uvloop when installed), one keep-alive
HTTP/1.1 connection per worker, each with one call in flight, requests built once; prints the
window's Measurement and the client's own CPU over it as one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from measurement import Call, Measurement, MeasurementFailed, summarize
from server_process import HOST

ANSWER_TIMEOUT_S = 30.0


async def _drive(
    port: int, bodies: list[bytes], concurrency: int, warmup_s: float, window_s: float
) -> tuple[Measurement, float]:
    requests = [
        b"POST /get-online-features HTTP/1.1\r\nHost: %s:%d\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (HOST.encode(), port, len(body), body)
        for body in bodies
    ]
    start_ns = time.time_ns() + int(warmup_s * 1e9)
    end_ns = start_ns + int(window_s * 1e9)
    calls: list[Call] = []

    # Worker n connects once worker n-1's first call is in flight: gunicorn's workers accept
    # from one socket and keep-alive connections stay where they landed, so a burst of
    # connects on idle workers may all land on one of them; a busy worker accepts later.
    connected = [asyncio.Event() for _ in range(concurrency)]

    async def worker(slot: int) -> None:
        if slot:
            await connected[slot - 1].wait()
        reader, writer = await asyncio.open_connection(HOST, port)
        index = slot  # the workers take the requests in turn
        try:
            while time.time_ns() < end_ns:
                began = time.perf_counter_ns()
                writer.write(requests[index % len(requests)])
                connected[slot].set()
                head = await reader.readuntil(b"\r\n\r\n")
                status, length = _parse_head(head)
                body = await reader.readexactly(length)
                if status != 200:
                    raise MeasurementFailed(f"feast serve answered {status}: {body[:300]!r}")
                calls.append(Call(time.time_ns(), time.perf_counter_ns() - began))
                index += concurrency
        finally:
            writer.close()

    async def client_cpu() -> float:
        await asyncio.sleep(max(0.0, (start_ns - time.time_ns()) / 1e9))
        before = time.process_time()
        await asyncio.sleep(max(0.0, (end_ns - time.time_ns()) / 1e9))
        return time.process_time() - before

    cpu = asyncio.ensure_future(client_cpu())
    await asyncio.wait_for(
        asyncio.gather(*(worker(n) for n in range(concurrency))),
        warmup_s + window_s + ANSWER_TIMEOUT_S,
    )
    return summarize(calls, start_ns, end_ns), await cpu


def _parse_head(head: bytes) -> tuple[int, int]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return status, int(value)
    raise MeasurementFailed(f"an answer without Content-Length: {head[:300]!r}")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description="closed-loop load of feast serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bodies", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--window-s", type=float, default=9.0)
    args = parser.parse_args(argv)
    run = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        run = uvloop.run
    bodies = [body.encode() for body in json.loads(args.bodies.read_text())]
    m, cpu_s = run(_drive(args.port, bodies, args.concurrency, args.warmup_s, args.window_s))
    fields = ("infer_per_s", "p50_ms", "p99_ms", "start_ns", "end_ns", "inferences")
    measurement = {name: getattr(m, name) for name in fields}
    print(json.dumps({"measurement": measurement, "client_cpu_s": cpu_s}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
