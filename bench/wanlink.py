"""Emulated WAN links on loopback: a TCP proxy per registry with a one-way delay and a rate.

    links = WanLinks().start()                       # one asyncio loop in a daemon thread
    link = links.add("r1", upstream_port=5000, rtt=0.040, rate=12_500_000)
    link.host                                        "127.0.0.1:41236": give this to the client
    link.snapshot()                                  {"connections": 3, "bytes_up": ..., ...}
    links.remove(link); links.stop()

Each link is one listening port in front of one upstream port. Everything the client sends
(up) and everything the upstream answers (down) goes through that direction's shaper:

  * rate: a token bucket shared by every connection of the link in that direction (one
    link, however many connections the client opens), of `burst` bytes depth. A chunk of n
    bytes leaves when the bucket holds n tokens; tokens come back at `rate` bytes/s. With an
    idle link, up to `burst` bytes pass at once, then the link runs at exactly `rate`.
  * delay: every chunk is delivered rtt/2 after it left the bucket (propagation), so a
    request/answer exchange costs one RTT plus its bytes over the rate, as on a real link.
  * the TCP handshake: the client's connect() completes at once on loopback, so the first
    byte it sends is held until one RTT after the connection was accepted (SYN, SYN-ACK),
    then sent as above (arriving 1.5 RTT after connect, as on a real link).
  * backpressure: a connection holds at most `window` bytes in flight per direction (sent
    by one side, not yet delivered to the other); beyond that the proxy stops reading, so
    the sender's TCP fills up and waits, as on a slow link, instead of the proxy
    buffering a whole blob.

Not modelled: packet loss, TCP slow start and congestion control (the rate is available
from the first byte), TLS (the upstreams are plain HTTP). A TCP proxy does not parse HTTP,
so it is transparent to any client (the Docker daemon's TLS probe of an insecure registry
reaches the registry, which answers it as usual). Host headers pass unchanged, so a
registry (distribution without `http.host`) builds its upload Location URLs with the
proxy's address and clients keep going through the link.

Counters per link (bytes up/down, connections) are what the bench reads to know how many
bytes each tool put on the wire. Only the standard library.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import threading
import time

CHUNK = 64 * 1024


class Shaper:
    """One direction of one link: a token bucket (rate, burst) followed by a fixed delay.

    `schedule(n, now, not_before)` returns when a chunk of n bytes read at `now` reaches the
    other side. Virtual-time form of the token bucket: `self.free` is when the bucket is back
    to zero debt; a chunk may start `burst/rate` before that."""

    def __init__(self, rate: float, delay: float, burst: int):
        self.rate = float(rate)
        self.delay = float(delay)
        self.depth = burst / self.rate
        self.free = 0.0

    def schedule(self, n: int, now: float, not_before: float = 0.0) -> float:
        start = max(now, not_before)
        self.free = max(self.free, start) + n / self.rate
        leaves = max(start, self.free - self.depth)   # the bucket has the n tokens then
        return leaves + self.delay


class Link:
    """One emulated link: 127.0.0.1:port -> 127.0.0.1:upstream_port, both directions shaped."""

    def __init__(self, name: str, upstream_port: int, rtt: float, rate: float, burst: int,
                 window: int | None):
        self.name = name
        self.upstream_port = upstream_port
        self.rtt = rtt
        self.rate = rate
        self.up = Shaper(rate, rtt / 2, burst)
        self.down = Shaper(rate, rtt / 2, burst)
        # In flight per connection and direction: at least 4 bandwidth-delay products.
        self.window = window or max(1024 * 1024, int(4 * rate * max(rtt, 0.001)))
        self.port = 0
        self.server: asyncio.base_events.Server | None = None
        self.connections = 0
        self.open_connections = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.errors = 0
        self.up_marks: list[tuple[float, int]] = []   # (time.monotonic(), bytes_up) per chunk
        self._tasks: set[asyncio.Task] = set()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def snapshot(self) -> dict:
        return {"connections": self.connections, "bytes_up": self.bytes_up,
                "bytes_down": self.bytes_down, "errors": self.errors}

    def when_up_reached(self, nbytes: int) -> float | None:
        """time.monotonic() at which bytes_up first reached nbytes (None: not yet)."""
        marks = self.up_marks
        lo, hi = 0, len(marks)
        while lo < hi:
            mid = (lo + hi) // 2
            if marks[mid][1] >= nbytes:
                hi = mid
            else:
                lo = mid + 1
        return marks[lo][0] if lo < len(marks) else None

    def describe(self) -> str:
        return (f"{self.name}: {self.host} -> 127.0.0.1:{self.upstream_port}, "
                f"rtt {self.rtt * 1000:.0f} ms, {self.rate * 8 / 1e6:g} Mbit/s")

    # -- in the loop's thread ---------------------------------------------------------------
    async def open(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0,
                                                 limit=CHUNK, backlog=256)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        self.connections += 1
        self.open_connections += 1
        uwriter = None
        try:
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", self.upstream_port,
                                                             limit=CHUNK)
            for w in (cwriter, uwriter):
                sock = w.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pipes = [asyncio.ensure_future(self._pipe(creader, uwriter, self.up, "bytes_up",
                                                      accepted + self.rtt)),
                     asyncio.ensure_future(self._pipe(ureader, cwriter, self.down, "bytes_down",
                                                      0.0))]
            try:
                done, _ = await asyncio.wait(pipes, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for p in pipes:
                    p.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
            for p in done:
                if not p.cancelled() and p.exception() is not None:
                    raise p.exception()
        except (OSError, asyncio.IncompleteReadError):
            self.errors += 1
        except asyncio.CancelledError:
            pass
        finally:
            self.open_connections -= 1
            for w in (cwriter, uwriter):
                if w is not None:
                    w.close()
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    shaper: Shaper, counter: str, not_before: float) -> None:
        """Read from one side, deliver to the other at the shaper's times, in order."""
        loop = asyncio.get_running_loop()
        queue: collections.deque[tuple[float, bytes | None]] = collections.deque()
        ready = asyncio.Event()
        room = asyncio.Event()
        in_flight = 0

        async def deliver() -> None:
            nonlocal in_flight
            while True:
                while not queue:
                    ready.clear()
                    await ready.wait()
                at, data = queue.popleft()
                wait = at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:            # EOF from the sender, after everything before it
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
                setattr(self, counter, getattr(self, counter) + len(data))
                if counter == "bytes_up":
                    self.up_marks.append((time.monotonic(), self.bytes_up))
                in_flight -= len(data)
                room.set()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                try:
                    data = await reader.read(CHUNK)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                now = loop.time()
                if not data:
                    queue.append((max(now, not_before) + shaper.delay, None))
                    ready.set()
                    break
                queue.append((shaper.schedule(len(data), now, not_before), data))
                in_flight += len(data)
                ready.set()
                while in_flight > self.window and not sender.done():
                    room.clear()
                    await room.wait()
                if sender.done():
                    break
            await sender
        finally:
            if not sender.done():
                sender.cancel()


class WanLinks:
    """The links of one bench run, served by one asyncio loop in a daemon thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="wan-links", daemon=True)
        self.links: list[Link] = []

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> "WanLinks":
        self.thread.start()
        return self

    def _call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add(self, name: str, upstream_port: int, *, rtt: float, rate: float,
            burst: int = CHUNK, window: int | None = None) -> Link:
        """A new link (new listening port) to 127.0.0.1:upstream_port; rate in bytes/s."""
        link = Link(name, upstream_port, rtt, rate, burst, window)
        self._call(link.open())
        self.links.append(link)
        return link

    def remove(self, link: Link) -> None:
        if link in self.links:
            self.links.remove(link)
            try:
                self._call(link.close())
            except Exception:  # noqa: BLE001 - closing on the way out: nothing left to save
                pass

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        for link in list(self.links):
            self.remove(link)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def measure_link(rtt: float, rate: float, nbytes: int = 8 * 1024 * 1024) -> dict:
    """Self-check: one echo-less upload through a link to a sink; (seconds, expected)."""
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(1)
    port = sink.getsockname()[1]
    got = 0

    def drain():
        nonlocal got
        conn, _ = sink.accept()
        with conn:
            while True:
                data = conn.recv(CHUNK)
                if not data:
                    break
                got += len(data)
            conn.sendall(b"ok")

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    links = WanLinks().start()
    try:
        link = links.add("check", port, rtt=rtt, rate=rate)
        payload = b"\0" * CHUNK
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", link.port)) as c:
            left = nbytes
            while left:
                n = min(left, CHUNK)
                c.sendall(payload[:n])
                left -= n
            c.shutdown(socket.SHUT_WR)
            answer = c.recv(16)
        seconds = time.perf_counter() - start
    finally:
        links.stop()
        sink.close()
        t.join(timeout=5)
    return {"seconds": seconds, "expected": 1.5 * rtt + nbytes / rate + rtt / 2,
            "bytes": got, "answer": answer.decode(errors="replace")}


if __name__ == "__main__":   # python3 bench/wanlink.py: the link model checked on its own
    for rtt_ms, mbit in ((40, 100), (40, 20), (0, 100)):
        r = measure_link(rtt_ms / 1000, mbit * 1e6 / 8)
        print(f"rtt {rtt_ms:3d} ms, {mbit:3d} Mbit/s: 8 MiB up + answer in {r['seconds']:.3f} s "
              f"(model {r['expected']:.3f} s), {r['bytes']} bytes, answer {r['answer']!r}")
