"""A userspace Ethernet switch between TAP devices: the lab's wire, with delay, loss and partitions.

Each namespace's ``eth0`` is a TAP device whose file descriptor this switch holds. A
frame read from one port goes to the port that owns its destination MAC (learned from
source addresses) or, for broadcasts and unknown destinations, to every other port.
Between two *lossy* ports (the nodes) each frame is dropped with probability ``loss``
and otherwise delivered ``delay`` seconds later, in order (netem's ``delay`` and
``loss``); frames to or from other ports (the control namespace) pass at once. While a
partition is set, frames between ports of different groups are dropped, so the halves
cannot exchange a single packet, in either direction, ARP included.

Why not ``tc qdisc ... netem``: the kernel the lab was built on has no ``sch_netem``
(``CONFIG_NET_SCH_NETEM`` is not set). TAP devices are in every kernel with
``CONFIG_TUN``, and the kernel segments and checksums what it hands to a TAP reader
(no offloads are requested here), so every frame is a real, complete Ethernet frame
of a real TCP/IP stack, and what is delayed or dropped is exactly that frame.
"""

from __future__ import annotations

import fcntl
import heapq
import logging
import os
import random
import selectors
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence

log = logging.getLogger(__name__)

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def open_tap(name: str) -> int:
    """Create the TAP device ``name`` (in the caller's namespace) and return its non-blocking descriptor."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class Switch:
    """Forward frames between ``fds`` (port number = position); ports in ``lossy`` get delay and loss between them."""

    def __init__(self, fds: Sequence[int], lossy: Iterable[int], *, delay: float, loss: float, seed: int = 0) -> None:
        self.fds = list(fds)
        self.lossy = frozenset(lossy)
        self.delay = delay
        self.loss = loss
        self.rng = random.Random(seed)
        self.stats: Counter[str] = Counter()
        self._macs: dict[bytes, int] = {}
        self._groups: dict[int, int] = {}
        self._lock = threading.Lock()
        self._queue: list[tuple[float, int, int, bytes]] = []
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ control

    def partition(self, groups: Sequence[Iterable[int]]) -> None:
        """Cut every link between ports of different ``groups`` (ports in no group still reach everyone)."""
        with self._lock:
            self._groups = {port: number for number, ports in enumerate(groups) for port in ports}
        log.info("partition: %s", " | ".join(",".join(map(str, sorted(g))) for g in groups))

    def heal(self) -> None:
        with self._lock:
            self._groups = {}
        log.info("partition healed")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="switch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    # ------------------------------------------------------------ forwarding

    def _cut(self, a: int, b: int) -> bool:
        group_a, group_b = self._groups.get(a), self._groups.get(b)
        return group_a is not None and group_b is not None and group_a != group_b

    def _write(self, port: int, frame: bytes) -> None:
        try:
            os.write(self.fds[port], frame)
            self.stats["delivered"] += 1
        except OSError:  # the interface is down or its queue is full: the frame is lost, as on a wire
            self.stats["write_failed"] += 1

    def forward(self, port: int, frame: bytes, now: float) -> None:
        if len(frame) < 14:
            return
        destination, source = frame[:6], frame[6:12]
        self._macs[source] = port
        known = self._macs.get(destination)
        if destination[0] & 1 or known is None:
            outs = [p for p in range(len(self.fds)) if p != port]
        else:
            outs = [] if known == port else [known]
        with self._lock:
            for out in outs:
                if self._cut(port, out):
                    self.stats["partitioned"] += 1
                elif port in self.lossy and out in self.lossy:
                    if self.rng.random() < self.loss:
                        self.stats["lost"] += 1
                        continue
                    self._seq += 1
                    heapq.heappush(self._queue, (now + self.delay, self._seq, out, frame))
                    self.stats["delayed"] += 1
                else:
                    self._write(out, frame)

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        for port, fd in enumerate(self.fds):
            selector.register(fd, selectors.EVENT_READ, port)
        try:
            while not self._stop.is_set():
                timeout = 0.05
                if self._queue:
                    timeout = min(timeout, max(0.0, self._queue[0][0] - time.monotonic()))
                for key, _ in selector.select(timeout):
                    while True:
                        try:
                            frame = os.read(key.fd, 65536)
                        except BlockingIOError:
                            break
                        except OSError:
                            self.stats["read_failed"] += 1
                            break
                        self.forward(key.data, frame, time.monotonic())
                now = time.monotonic()
                with self._lock:
                    while self._queue and self._queue[0][0] <= now:
                        _, _, out, frame = heapq.heappop(self._queue)
                        self._write(out, frame)
        finally:
            selector.close()
