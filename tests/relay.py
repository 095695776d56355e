"""A TCP relay for fault tests: forwards, refuses or black-holes a loopback service, or cuts
a connection at the service's next answer.

Usage::

    with Relay.in_front_of("postgresql://postgres@127.0.0.1:5432/test") as relay:
        url = relay.url            # the same URL, pointing at the relay's own port
        ...                        # connections through ``url`` reach the service
        relay.black_hole()         # connections stay open; nothing passes either way
        relay.refuse()             # every connection, open or new, is reset (RST)
        relay.forward()            # back to normal
        relay.cut_next_answer()    # the service's next answer is lost with its connection
        assert relay.cuts == 1     # how many connections were cut that way

``Relay(port, host="127.0.0.1")`` does the same for a bare port (``relay.port`` is where
to connect). Modes switch at once and may be switched from any thread, in any order; the
relay runs its own event loop in a daemon thread, so it serves synchronous tests, async
tests and server processes alike. Only loopback addresses are allowed, on both sides.

What each mode does to a connection:

- **forward**: bytes pass both ways. Connections accepted while black-holed are connected
  to the service now, and bytes held back during the black hole are delivered (like a
  healed partition, where TCP retransmits).
- **black_hole**: new connections are accepted and left waiting; open ones stop passing
  bytes both ways (the relay stops reading, so the sender's buffers fill). Nothing is
  closed: the clients see silence, as in a network partition.
- **refuse**: every open connection is closed with RST on both sides (``SO_LINGER`` 0),
  and each new one is accepted and reset at once.

And once, on demand:

- **cut_next_answer()**: arms a one-shot cut, in whatever mode. The next bytes the service
  sends, on any connection, are dropped instead of delivered, both sides of that connection
  are reset (RST), and ``relay.cuts`` goes up by one. The service has done whatever the
  client asked (a statement outside a transaction has committed); the client never hears
  of it. Other connections, and new ones, are forwarded as before. Arm it when the
  connection is idle, so that the next answer is the one to the request that follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

FORWARD, BLACK_HOLE, REFUSE = "forward", "black_hole", "refuse"
_CHUNK = 65536


def _loopback(host: str) -> str:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the relay only serves loopback addresses, not {host}")
    return host


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Relay:
    """A switchable TCP relay from ``127.0.0.1:<relay.port>`` to ``host:port`` (loopback)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.target = (_loopback(host), port)
        self.mode = FORWARD
        self.port = 0
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Future[None]] = set()
        self._template: SplitResult | None = None
        self._cut_armed = False
        self.cuts = 0

    @classmethod
    def in_front_of(cls, url: str) -> Relay:
        """A relay to the host and port of ``url``; ``relay.url`` is ``url`` through it."""
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError("the URL needs an explicit host and port")
        relay = cls(parts.port, parts.hostname)
        relay._template = parts
        return relay

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> Relay:
        self._thread.start()
        self._run(self._listen())
        if self._template is not None:
            userinfo = self._template.netloc.rpartition("@")[0]
            netloc = f"{userinfo}@" if userinfo else ""
            self.url = urlunsplit(self._template._replace(netloc=f"{netloc}127.0.0.1:{self.port}"))
        return self

    def stop(self) -> None:
        """Reset every connection, stop listening and end the relay's thread."""
        if not self._thread.is_alive():
            return
        self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- modes ------------------------------------------------------------------------------

    def forward(self) -> None:
        self._run(self._switch(FORWARD))

    def black_hole(self) -> None:
        self._run(self._switch(BLACK_HOLE))

    def refuse(self) -> None:
        self._run(self._switch(REFUSE))

    def cut_next_answer(self) -> None:
        """Lose the service's next answer, on whichever connection it comes, with that
        connection (see the module's docstring); ``relay.cuts`` counts the cuts made."""
        self._run(self._arm_cut())

    # -- inside the relay's loop --------------------------------------------------------------

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self._loop).result(10)

    async def _listen(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _switch(self, mode: str) -> None:
        self.mode = mode
        if mode == FORWARD:
            self._flowing.set()
            return
        self._flowing.clear()
        if mode == REFUSE:
            for writer in list(self._writers):
                _reset(writer)
            self._writers.clear()

    async def _arm_cut(self) -> None:
        self._cut_armed = True

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            _reset(writer)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == REFUSE:
            _reset(writer)
            return
        self._writers.add(writer)
        try:
            await self._flowing.wait()  # black-holed: accepted, and left waiting
            if writer.is_closing():
                return
            try:
                upstream_reader, upstream = await asyncio.open_connection(*self.target)
            except OSError:
                _reset(writer)
                return
            if writer.is_closing():  # refused while connecting
                _reset(upstream)
                return
            self._writers.add(upstream)
            pumps = [
                asyncio.ensure_future(self._pump(reader, upstream)),
                asyncio.ensure_future(self._pump(upstream_reader, writer, cut_with=upstream)),
            ]
            self._tasks.update(pumps)
            # One side closed (most protocols never half-close): close the other too.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)
            self._writers.discard(upstream)
            if not upstream.is_closing():
                upstream.close()
            if not writer.is_closing():
                writer.close()
        finally:
            self._writers.discard(writer)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        cut_with: asyncio.StreamWriter | None = None,
    ) -> None:
        """Copy ``source`` to ``sink``; ``cut_with`` (the service's side, given for the
        service's answers) is reset along with ``sink`` when an armed cut takes an answer."""
        while True:
            try:
                chunk = await source.read(_CHUNK)
            except OSError:
                return
            if not chunk:
                return
            await self._flowing.wait()  # black-holed: hold it, and stop reading meanwhile
            if sink.is_closing():
                return
            if cut_with is not None and self._cut_armed:
                self._cut_armed = False
                self.cuts += 1
                _reset(sink)
                _reset(cut_with)
                return
            sink.write(chunk)
            try:
                await sink.drain()
            except OSError:
                return
