"""A TCP proxy that injects network faults between a caller and a real server.

The proxy listens on a port of its own (port 0: a free one) and forwards every
connection to its upstream. Its mode is switched at run time (``proxy.set(...)``):

- ``PASS``: bytes go both ways as they come;
- ``STOPPED``: the listening socket is closed (a new connection is refused) and
  every open connection is reset, as when the downstream process dies; leaving
  this mode listens again on the same port, as a restarted downstream does;
- ``SLOW``: every chunk, both ways, is delivered ``delay`` seconds after it
  arrived (order kept): a downstream slowed past any deadline shorter than that;
- ``CUT``: connections are accepted and forwarded, but each is reset as soon as
  its upstream sends anything after its first chunk (the HTTP/2 handshake): the
  connection dies under the call it carries, before or in the middle of its answer;
- ``BLACKHOLE``: connections are accepted and read, nothing is delivered either
  way, as with a hung downstream or a partition; what was held is delivered when
  the mode changes (TCP would have retransmitted it).

``proxy.reroute(port)`` resets every open connection and sends the new ones to
another upstream (a server that answers errors, for instance); ``reroute(None)``
goes back to the first one. ``proxy.cut_open()`` resets the open connections once.

No dependency but asyncio; a test helper, closed with ``await proxy.close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import time

import grpc

__all__ = ["ErrorServer", "FaultProxy", "Mode"]

_CHUNK = 64 * 1024


class Mode(enum.Enum):
    PASS = "pass"
    STOPPED = "stopped"
    SLOW = "slow"
    CUT = "cut"
    BLACKHOLE = "blackhole"


class _Link:
    """One proxied connection: the caller's side, the upstream's side, two pumps."""

    def __init__(self, proxy: FaultProxy, client: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self, upstream_port: int) -> None:
        try:
            self.upstream = await asyncio.open_connection(self.proxy.upstream_host, upstream_port)
        except OSError:
            self.reset()
            return
        self.tasks = [
            asyncio.create_task(self._pump(self.client[0], self.upstream[1], from_upstream=False)),
            asyncio.create_task(self._pump(self.upstream[0], self.client[1], from_upstream=True)),
        ]
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.reset()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_upstream: bool
    ) -> None:
        """Reads chunks as they come and hands them to a writer task that delivers
        each when the proxy's mode lets it: no delay adds up across chunks."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        deliver = asyncio.create_task(self._deliver(queue, writer, from_upstream=from_upstream))
        try:
            while True:
                try:
                    data = await reader.read(_CHUNK)
                except OSError:
                    data = b""
                await queue.put((time.monotonic(), data))
                if not data:
                    break
            await deliver
        finally:
            deliver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deliver

    async def _deliver(
        self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter, *, from_upstream: bool
    ) -> None:
        chunks = 0
        while True:
            arrived, data = await queue.get()
            await self.proxy._gate(arrived)
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            if from_upstream and chunks and self.proxy.mode is Mode.CUT:
                self.reset()
                return
            chunks += 1
            try:
                writer.write(data)
                await writer.drain()
            except OSError:
                self.reset()
                return

    def reset(self) -> None:
        """Both sides closed with a reset (SO_LINGER 0), as a dying peer does."""
        for side in (self.client, self.upstream):
            if side is None:
                continue
            transport = side[1].transport
            if not transport.is_closing():
                transport.abort()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    """See the module docstring. ``await FaultProxy.start(port)`` proxies to
    ``127.0.0.1:port``; ``proxy.port`` is where callers connect."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream_host = upstream_host
        self._upstream_port = upstream_port
        self._reroute: int | None = None
        self.mode = Mode.PASS
        self.delay = 0.0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        #: Connections accepted since start (a test can tell a reconnect happened).
        self.accepted = 0

    @classmethod
    async def start(cls, upstream_port: int, upstream_host: str = "127.0.0.1") -> FaultProxy:
        proxy = cls(upstream_port, upstream_host)
        await proxy._listen()
        return proxy

    async def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            raise
        self._server = await asyncio.start_server(self._accept, sock=sock)
        self.port = sock.getsockname()[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def set(self, mode: Mode, delay: float = 0.0) -> None:
        """Switches the mode (``delay``: seconds per chunk, for ``SLOW``)."""
        previous, self.mode, self.delay = self.mode, mode, delay
        if mode is Mode.STOPPED and previous is not Mode.STOPPED:
            self.cut_open()
            await self._stop_listening()
        elif previous is Mode.STOPPED and mode is not Mode.STOPPED:
            await self._listen()
        self._changed.set()
        self._changed = asyncio.Event()

    def reroute(self, port: int | None) -> None:
        """New connections go to ``127.0.0.1:port`` (None: the first upstream);
        open ones are reset."""
        self._reroute = port
        self.cut_open()

    def cut_open(self) -> None:
        """Resets every open connection now."""
        for link in list(self._links):
            link.reset()

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def _gate(self, arrived: float) -> None:
        """Waits until a chunk that arrived at ``arrived`` may be delivered."""
        while True:
            if self.mode is Mode.BLACKHOLE:
                await self._changed.wait()
                continue
            if self.mode is Mode.SLOW:
                wait = arrived + self.delay - time.monotonic()
                if wait > 0:
                    changed = self._changed
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), wait)
                    continue
            return

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(self, (reader, writer))
        if self.mode is Mode.STOPPED:
            link.reset()
            return
        self._links.add(link)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await link.run(self._reroute or self._upstream_port)
        finally:
            self._links.discard(link)
            if task is not None:
                self._tasks.discard(task)
            link.reset()
            for side in (link.client, link.upstream):
                if side is not None:
                    side[1].close()
                    with contextlib.suppress(OSError, asyncio.CancelledError):
                        await side[1].wait_closed()

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def close(self) -> None:
        """Stops listening and resets every connection."""
        self.cut_open()
        await self._stop_listening()
        self._changed.set()
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=5)


class ErrorServer:
    """A gRPC server on a free port that answers every unary call, whatever its
    method, with one status and an ``ErrorInfo`` (reason ``INJECTED_FAULT``): a
    downstream that is up and answers errors (``FaultProxy.reroute`` to it)."""

    def __init__(self, server: grpc.aio.Server, port: int) -> None:
        self._server = server
        self.port = port

    @classmethod
    async def start(cls, code: grpc.StatusCode) -> ErrorServer:
        from creditscore.runtime import DomainError, to_status

        error = type("InjectedError", (DomainError,), {"code": code})(
            f"injected {code.name}", reason="INJECTED_FAULT"
        )
        status = to_status(error, "faults.test")

        async def fail(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            await context.abort(status.code, status.details, status.trailing_metadata)
            raise AssertionError("abort returned")

        class Handler(grpc.GenericRpcHandler):
            def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
                return grpc.unary_unary_rpc_method_handler(fail)

        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers((Handler(),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return cls(server, port)

    async def close(self) -> None:
        await self._server.stop(0)
