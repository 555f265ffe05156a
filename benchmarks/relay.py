"""A byte relay: the least any Python proxy between client and upstream can cost.

Each client connection gets its own upstream connection and bytes are copied both ways
unchanged, with raw asyncio protocols on uvloop: no HTTP parsing, no SSE, no JSON. Its
CPU per response in the benchmark is the floor set by the event loop and the kernel
(wake-ups, reads, writes) for the same traffic, to read the gateway's numbers against.

    python benchmarks/relay.py --port 8002 --upstream-port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import signal

__all__ = ["main"]


class _Pipe(asyncio.Protocol):
    """One side of a relayed connection; writes what it receives to its peer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class _Client(_Pipe):
    def __init__(self, host: str, upstream_port: int) -> None:
        super().__init__()
        self._host = host
        self._port = upstream_port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(_Pipe, self._host, self._port)
        except OSError:
            assert self.transport is not None
            self.transport.close()
            return
        upstream.peer, self.peer = self, upstream
        assert upstream.transport is not None
        for data in self.pending:
            upstream.transport.write(data)
        self.pending.clear()


async def serve(host: str, port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(host, upstream_port), host, port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="byte relay (benchmark floor)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--upstream-port", type=int, default=8001)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port, args.upstream_port))
    else:
        uvloop.run(serve(args.host, args.port, args.upstream_port))


if __name__ == "__main__":
    main()
