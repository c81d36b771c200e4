"""Peers: the table of nodes we talk to, handshakes, bans, and the gossip queues.

Every peer is identified by the URL it listens on (sent in the handshake and in the
``X-Cairn-Peer`` header of every p2p request). Outbound requests go through one
``requests.Session`` with a timeout on every call. A peer that cannot be reached is
retried with exponential backoff; one that sends invalid data gains misbehaviour
points and at ``ban_threshold`` is disconnected and banned for ``ban_seconds``
(bans survive restarts in ``<datadir>/bans.json``). Announcements to a peer go
through its own bounded queue and sender thread, so an API request never waits on a
slow peer; a full queue drops announcements (the periodic sync makes up for them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from chain.block import HEADER_SIZE, Block, BlockHeader
from chain.encoding import Reader, varint
from chain.errors import DecodeError
from chain.hashes import hash_to_hex, hex_to_hash
from chain.transaction import Transaction
from node import PROTOCOL_VERSION, VERSION
from node.errors import BadRequest, Conflict, Forbidden, NotFound, PeerError

if TYPE_CHECKING:
    from node.service import Node

log = logging.getLogger(__name__)

PEER_HEADER = "X-Cairn-Peer"
MAX_HEADERS = 2000  # per /p2p/headers answer, as Bitcoin's MAX_HEADERS_RESULTS
MAX_INV = 1000  # hashes per announcement
MAX_GETDATA = 1000  # txids per batched transaction fetch (POST /p2p/transactions), as Bitcoin's MAX_INV_SZ
QUEUE_SIZE = 1000  # announcements waiting per peer
KNOWN_SIZE = 5000  # hashes remembered per peer as already known to it
BACKOFF_BASE = 0.5
BACKOFF_MAX = 60.0
MAINTENANCE_INTERVAL = 0.5
RESYNC_INTERVAL = 5.0


def normalize_url(url: object) -> str:
    """``http://host:port`` with no path; BadRequest for anything else."""
    if not isinstance(url, str) or len(url) > 200:
        raise BadRequest("a peer URL is a string like http://127.0.0.1:8701")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"{url!r:.80} is not an http(s) URL with a host")
    try:
        port = parts.port
    except ValueError:
        raise BadRequest(f"{url!r:.80} has an invalid port") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BadRequest(f"{url!r:.80} must not have a path, query or fragment")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


@dataclass(eq=False)
class Peer:
    """One remote node and what we know of it. Mutable bookkeeping, guarded by the manager's lock."""

    id: int
    url: str
    outbound: bool
    state: str = "connecting"  # connecting | connected | unreachable
    score: int = 0
    failures: int = 0
    next_attempt: float = 0.0
    retry_delay: float = 0.0  # seconds between the last failure and the next attempt
    last_seen: float = 0.0
    version: str = ""
    height: int = -1
    tip: str = ""
    chainwork: int = 0
    known: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    queue: queue.Queue[tuple[str, bytes]] = field(default_factory=lambda: queue.Queue(QUEUE_SIZE))
    sender: threading.Thread | None = None
    dropped: int = 0

    def remember(self, item: bytes) -> bool:
        """Mark ``item`` as known to this peer; False when it already was."""
        if item in self.known:
            self.known.move_to_end(item)
            return False
        self.known[item] = None
        while len(self.known) > KNOWN_SIZE:
            self.known.popitem(last=False)
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "outbound": self.outbound,
            "state": self.state,
            "score": self.score,
            "failures": self.failures,
            "retry_delay": round(self.retry_delay, 3),
            "version": self.version,
            "height": self.height,
            "tip": self.tip,
            "queued": self.queue.qsize(),
            "dropped": self.dropped,
        }


class PeerManager:
    """The peer table: connect, handshake, ban, learn addresses, and send announcements."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.config = node.config
        self.max_peers = node.config.max_peers
        self.session = requests.Session()
        retry = Retry(total=1, connect=1, read=0, status=0, other=0, backoff_factor=0.05, allowed_methods=None)
        adapter = HTTPAdapter(max_retries=retry, pool_connections=16, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers[PEER_HEADER] = node.config.url
        self.timeout = node.config.request_timeout
        self._lock = threading.RLock()
        self._peers: dict[str, Peer] = {}
        self._next_id = 1
        self._learned: OrderedDict[str, None] = OrderedDict()  # addresses heard of, not yet tried
        self._bans_path = node.config.datadir / "bans.json"
        self._bans: dict[str, dict[str, Any]] = self._load_bans()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_resync = 0.0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._maintain, name="peers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            peers = list(self._peers.values())
        for peer in peers:
            self._stop_sender(peer)
        if self._thread is not None:
            self._thread.join()
        self.session.close()

    # ------------------------------------------------------------ table

    def peers(self) -> list[Peer]:
        with self._lock:
            return list(self._peers.values())

    def connected(self) -> list[Peer]:
        with self._lock:
            return [p for p in self._peers.values() if p.state == "connected"]

    def get(self, url: str) -> Peer | None:
        with self._lock:
            return self._peers.get(url)

    def by_id(self, peer_id: int) -> Peer:
        with self._lock:
            for peer in self._peers.values():
                if peer.id == peer_id:
                    return peer
        raise NotFound(f"no peer with id {peer_id}")

    def add(self, url: str, *, outbound: bool = True) -> Peer:
        """Add a peer to connect to (the handshake happens in the background); idempotent."""
        url = normalize_url(url)
        if url == normalize_url(self.config.url):
            raise BadRequest("that is this node's own URL", "self-connection")
        with self._lock:
            self._check_ban(url)
            peer = self._peers.get(url)
            if peer is not None:
                if peer.state == "unreachable":
                    peer.next_attempt = 0.0
                return peer
            if len(self._peers) >= self.max_peers:
                raise Conflict(f"already {len(self._peers)} peers, the maximum", "too-many-peers")
            peer = Peer(self._next_id, url, outbound)
            self._next_id += 1
            self._peers[url] = peer
            self._learned.pop(url, None)
        log.info("peer %d added: %s (%s)", peer.id, url, "outbound" if outbound else "inbound")
        return peer

    def remove(self, peer: Peer, *, ban: bool = False, reason: str = "disconnected by admin") -> None:
        with self._lock:
            self._peers.pop(peer.url, None)
            if ban:
                until = time.time() + self.config.ban_seconds
                self._bans[peer.url] = {"until": until, "reason": reason}
                self._save_bans()
        self._stop_sender(peer)
        if ban:
            log.warning("peer %d banned for %ds: %s (%s)", peer.id, self.config.ban_seconds, peer.url, reason)
        else:
            log.info("peer %d removed: %s (%s)", peer.id, peer.url, reason)

    def misbehave(self, peer: Peer, points: int, reason: str) -> None:
        """Add misbehaviour points; ban at the threshold."""
        with self._lock:
            peer.score += points
            score = peer.score
        log.warning("peer %d (%s) misbehaved: %s (+%d, score %d)", peer.id, peer.url, reason, points, score)
        if score >= self.config.ban_threshold:
            self.remove(peer, ban=True, reason=reason)

    # ------------------------------------------------------------ bans

    def _load_bans(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self._bans_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self._bans_path, exc)
            return {}
        now = time.time()
        return {url: ban for url, ban in data.items() if isinstance(ban, dict) and ban.get("until", 0) > now}

    def _save_bans(self) -> None:
        tmp = self._bans_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._bans, indent=1, sort_keys=True))
        tmp.replace(self._bans_path)

    def bans(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        with self._lock:
            return {url: dict(ban) for url, ban in self._bans.items() if ban["until"] > now}

    def is_banned(self, url: str) -> bool:
        with self._lock:
            ban = self._bans.get(url)
            return ban is not None and ban["until"] > time.time()

    def _check_ban(self, url: str) -> None:
        if self.is_banned(url):
            raise Forbidden(f"{url} is banned: {self._bans[url]['reason']}", "banned")

    # ------------------------------------------------------------ handshake

    def hello(self) -> dict[str, Any]:
        """What we tell a peer about ourselves."""
        chain, params = self.node.chain, self.node.params
        tip = chain.tip
        return {
            "network": params.name,
            "magic": params.magic.hex(),
            "genesis": hash_to_hex(params.genesis_hash),
            "version": VERSION,
            "protocol": PROTOCOL_VERSION,
            "url": self.config.url,
            "nonce": self.node.nonce,
            "height": tip.height,
            "tip": tip.header.hash_hex,
            "chainwork": format(tip.chainwork, "x"),
        }

    def check_hello(self, hello: Any) -> None:
        """Refuse a peer of another network, genesis or protocol, or ourselves (Forbidden with a code)."""
        if not isinstance(hello, dict):
            raise BadRequest("a handshake is a JSON object")
        params = self.node.params
        if hello.get("network") != params.name or hello.get("magic") != params.magic.hex():
            raise Forbidden(f"peer is on {hello.get('network')!r:.40}, not {params.name}", "wrong-network")
        if hello.get("genesis") != hash_to_hex(params.genesis_hash):
            raise Forbidden("peer has another genesis block", "wrong-genesis")
        if hello.get("protocol") != PROTOCOL_VERSION:
            raise Forbidden(
                f"peer speaks protocol {hello.get('protocol')!r:.20}, not {PROTOCOL_VERSION}", "bad-version"
            )
        if hello.get("nonce") == self.node.nonce:
            raise Forbidden("that is this node itself", "self-connection")
        for key, kind in (("height", int), ("chainwork", str), ("tip", str), ("url", str)):
            if not isinstance(hello.get(key), kind):
                raise BadRequest(f"handshake field {key!r} is missing or not a {kind.__name__}")
        try:
            int(hello["chainwork"], 16)
        except ValueError:
            raise BadRequest("handshake chainwork is not hex") from None

    def _note_hello(self, peer: Peer, hello: dict[str, Any]) -> None:
        with self._lock:
            peer.version = str(hello.get("version", ""))[:40]
            peer.height = hello["height"]
            peer.tip = hello["tip"][:64]
            peer.chainwork = int(hello["chainwork"], 16)
            peer.last_seen = time.time()
            was = peer.state
            peer.state = "connected"
            peer.failures = 0
            if peer.sender is None or not peer.sender.is_alive():
                peer.sender = threading.Thread(
                    target=self._send_loop, args=(peer,), name=f"peer-{peer.id}", daemon=True
                )
                peer.sender.start()
        if was != "connected":
            log.info("peer %d connected: %s at height %d", peer.id, peer.url, peer.height)
            self.node.on_peer_connected(peer)

    def inbound_handshake(self, hello: Any) -> dict[str, Any]:
        """A peer called us: check it, add it to the table (it listens at ``hello['url']``), answer our hello."""
        self.check_hello(hello)
        url = normalize_url(hello["url"])
        with self._lock:
            self._check_ban(url)
            peer = self._peers.get(url) or self.add(url, outbound=False)
        self._note_hello(peer, hello)
        return self.hello()

    def handshake(self, peer: Peer) -> None:
        """Call the peer's handshake; on failure back off exponentially (or drop it if it is of another network)."""
        try:
            answer = self.request(peer, "POST", "/p2p/handshake", json=self.hello())
            self.check_hello(answer)
        except Forbidden as exc:
            log.warning("peer %d (%s) refused: %s", peer.id, peer.url, exc.message)
            self.remove(peer, reason=exc.code)
            return
        except (PeerError, BadRequest) as exc:
            self._failed(peer, str(exc))
            return
        self._note_hello(peer, answer)
        self._learn_addresses(peer)

    def _failed(self, peer: Peer, why: str) -> None:
        with self._lock:
            peer.failures += 1
            delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (peer.failures - 1)) * random.uniform(0.8, 1.2)
            peer.next_attempt = time.time() + delay
            peer.retry_delay = delay
            was, peer.state = peer.state, "unreachable"
        if was != "unreachable" or peer.failures in (1, 5, 10):
            log.info("peer %d (%s) unreachable (%s); retry %d in %.1fs", peer.id, peer.url, why, peer.failures, delay)

    def _learn_addresses(self, peer: Peer) -> None:
        try:
            answer = self.request(peer, "GET", "/p2p/addresses")
        except PeerError:
            return
        urls = answer.get("peers") if isinstance(answer, dict) else None
        if not isinstance(urls, list):
            self.misbehave(peer, 10, "malformed address list")
            return
        with self._lock:
            for url in urls[:100]:
                try:
                    url = normalize_url(url)
                except BadRequest:
                    continue
                if url not in self._peers and url != self.config.url and not self.is_banned(url):
                    self._learned[url] = None
            while len(self._learned) > 1000:
                self._learned.popitem(last=False)

    def check_caller(self, url: str | None) -> None:
        """A p2p request from ``url``: refuse a banned sender, and ask an unknown one to handshake first."""
        if url is None:
            return
        url = normalize_url(url)
        self._check_ban(url)
        if self.get(url) is None:  # a peer in the table (even mid-handshake) is let through
            raise Forbidden(f"{url} is not a peer of this node: handshake first", "handshake-required")

    def _handshake_again(self, peer: Peer) -> None:
        with self._lock:
            peer.state = "connecting"
            peer.next_attempt = 0.0
        log.info("peer %d (%s) forgot us: handshaking again", peer.id, peer.url)

    def addresses(self) -> list[str]:
        """URLs of connected peers, to share with others."""
        return [p.url for p in self.connected()]

    # ------------------------------------------------------------ background upkeep

    def _maintain(self) -> None:
        while not self._stopping.wait(MAINTENANCE_INTERVAL):
            try:
                self._maintain_once()
            except Exception:
                log.exception("peer maintenance failed")

    def _maintain_once(self) -> None:
        now = time.time()
        with self._lock:
            due = [p for p in self._peers.values() if p.state != "connected" and p.next_attempt <= now]
            room = self.max_peers - len(self._peers)
            learned = list(self._learned)[:room] if room > 0 else []
        for url in learned:
            try:
                self.add(url)
            except (BadRequest, Conflict, Forbidden):
                with self._lock:
                    self._learned.pop(url, None)
        for peer in due:
            if self._stopping.is_set():
                return
            self.handshake(peer)
        if now - self._last_resync >= RESYNC_INTERVAL:
            self._last_resync = now
            for peer in self.connected():
                self.node.syncer.request_sync(peer)

    # ------------------------------------------------------------ requests

    def request(self, peer: Peer, method: str, path: str, **kwargs: Any) -> Any:
        """One JSON request to a peer with a timeout; PeerError on any failure, Forbidden if it refuses us."""
        response = self._raw(peer, method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise PeerError(f"{peer.url}{path} answered something that is not JSON") from None

    def _raw(self, peer: Peer, method: str, path: str, **kwargs: Any) -> requests.Response:
        self.node.faults.before_outbound(peer.url)  # fault injection: partitioned (PeerError) or delayed
        try:
            response = self.session.request(method, peer.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise PeerError(f"{method} {peer.url}{path} failed: {type(exc).__name__}") from None
        if response.status_code == 403:
            code = _error_code(response)
            if code == "handshake-required":
                self._handshake_again(peer)
            raise Forbidden(f"{peer.url} refused {path}: {code}", code or "forbidden")
        if response.status_code == 404:
            raise NotFound(f"{peer.url} does not have {path}")
        if response.status_code != 200:
            raise PeerError(f"{method} {peer.url}{path} answered HTTP {response.status_code}")
        with self._lock:
            peer.last_seen = time.time()
        return response

    def fetch_headers(self, peer: Peer, locator: list[bytes]) -> list[BlockHeader]:
        """Headers after ``locator`` on the peer's active chain; DecodeError when they are malformed."""
        locator_text = ",".join(hash_to_hex(h) for h in locator[:64])
        answer = self.request(peer, "GET", "/p2p/headers", params={"locator": locator_text})
        raw = answer.get("headers") if isinstance(answer, dict) else None
        if not isinstance(raw, list) or len(raw) > MAX_HEADERS:
            raise DecodeError("headers answer is not a list of at most 2000 headers")
        headers = []
        for text in raw:
            if not isinstance(text, str) or len(text) != 2 * HEADER_SIZE:
                raise DecodeError("a header is 160 hex characters")
            try:
                headers.append(BlockHeader.parse(bytes.fromhex(text)))
            except ValueError:
                raise DecodeError("a header is not hex") from None
        return headers

    def fetch_block(self, peer: Peer, block_hash: bytes) -> Block:
        response = self._raw(peer, "GET", f"/p2p/blocks/{hash_to_hex(block_hash)}")
        return Block.parse(response.content)

    def fetch_transaction(self, peer: Peer, txid: bytes) -> Transaction:
        """One mempool transaction of the peer (``GET /p2p/transactions/<txid>``); NotFound when it lacks it."""
        self.node.metrics.on_transaction_fetch("one")
        response = self._raw(peer, "GET", f"/p2p/transactions/{hash_to_hex(txid)}")
        tx = Transaction.parse(response.content)
        self.node.metrics.on_transactions_fetched(1)
        return tx

    def fetch_transactions(self, peer: Peer, txids: list[bytes]) -> list[Transaction]:
        """The peer's mempool transactions among ``txids``, in one request (``POST /p2p/transactions``).

        Those it lacks are absent from the answer. DecodeError when the answer is anything but
        distinct asked-for transactions: ``bad-encoding`` (truncated, trailing bytes),
        ``too-many-transactions`` (a count above the number asked for), ``unrequested-transaction``
        or ``duplicate-transaction``.
        """
        if not 1 <= len(txids) <= MAX_GETDATA:
            raise ValueError(f"fetch 1 to {MAX_GETDATA} transactions per request, not {len(txids)}")
        self.node.metrics.on_transaction_fetch("batch")
        response = self._raw(peer, "POST", "/p2p/transactions", json={"txids": [hash_to_hex(t) for t in txids]})
        txs = decode_transactions(response.content, txids)
        self.node.metrics.on_transactions_fetched(len(txs))
        return txs

    # ------------------------------------------------------------ gossip

    def mark_known(self, peer: Peer, item: bytes) -> None:
        """``peer`` has ``item`` (it announced it): never announce it back."""
        with self._lock:
            peer.remember(item)

    def announce(self, kind: str, item: bytes, *, exclude: Peer | None = None, only: Peer | None = None) -> int:
        """Queue an announcement of a block or transaction to every connected peer but ``exclude`` (or to ``only``)."""
        sent = 0
        for peer in [only] if only is not None else self.connected():
            if peer is exclude:
                continue
            with self._lock:
                if not peer.remember(item):
                    continue
            try:
                peer.queue.put_nowait((kind, item))
                sent += 1
            except queue.Full:
                with self._lock:
                    peer.dropped += 1
        return sent

    def _send_loop(self, peer: Peer) -> None:
        while not self._stopping.is_set():
            try:
                kind, item = peer.queue.get(timeout=0.5)
            except queue.Empty:
                if peer.url not in self._peers:
                    return
                continue
            if kind == "stop":
                return
            batch = {"blocks": [], "transactions": []}
            batch[kind].append(hash_to_hex(item))
            while sum(len(v) for v in batch.values()) < MAX_INV:
                try:
                    kind, item = peer.queue.get_nowait()
                except queue.Empty:
                    break
                if kind == "stop":
                    return
                batch[kind].append(hash_to_hex(item))
            try:
                self.request(peer, "POST", "/p2p/inv", json=batch)
            except Forbidden as exc:
                log.warning("peer %d (%s) refused our announcement: %s", peer.id, peer.url, exc.message)
                if exc.code in ("banned", "wrong-network", "wrong-genesis"):
                    self.remove(peer, reason=exc.code)
                    return
                if exc.code != "handshake-required":
                    self._failed(peer, exc.message)
                self._forget(peer, batch)
            except (PeerError, NotFound) as exc:
                self._failed(peer, str(exc))
                self._forget(peer, batch)
            with self._lock:
                if self._peers.get(peer.url) is not peer:
                    return

    def _forget(self, peer: Peer, batch: dict[str, list[str]]) -> None:
        """An announcement that did not arrive: the peer does not know its items, so they may be announced again.

        (Items are marked known when queued; without this, a transaction whose announcement
        failed during a partition would never reach that peer after the heal, not even when
        a reorg puts it back in the mempool or the peer reconnects.)
        """
        with self._lock:
            for hashes in batch.values():
                for text in hashes:
                    peer.known.pop(hex_to_hash(text), None)

    def _stop_sender(self, peer: Peer) -> None:
        with contextlib.suppress(queue.Full):
            peer.queue.put_nowait(("stop", b""))


def _error_code(response: requests.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


def encode_transactions(txs: list[Transaction]) -> bytes:
    """An answer to ``POST /p2p/transactions``: a varint count, then the transactions serialized back to back."""
    return varint(len(txs)) + b"".join(tx.serialized for tx in txs)


def decode_transactions(data: bytes, asked: list[bytes]) -> list[Transaction]:
    """Decode an answer to a request for ``asked``, strictly; DecodeError (with the reason codes of
    ``PeerManager.fetch_transactions``) unless it holds only distinct transactions that were asked for."""
    reader = Reader(data)
    count = reader.varint()
    if count > len(asked):
        raise DecodeError(f"{count} transactions for {len(asked)} txids asked", "too-many-transactions")
    wanted = set(asked)
    txs: list[Transaction] = []
    seen: set[bytes] = set()
    for _ in range(count):
        tx = Transaction.read(reader)
        if tx.txid not in wanted:
            raise DecodeError(f"transaction {hash_to_hex(tx.txid)} was not asked for", "unrequested-transaction")
        if tx.txid in seen:
            raise DecodeError(f"transaction {hash_to_hex(tx.txid)} sent twice", "duplicate-transaction")
        seen.add(tx.txid)
        txs.append(tx)
    reader.finish()
    return txs


def parse_hash_list(value: Any, what: str, limit: int = MAX_INV) -> list[bytes]:
    """Decode a JSON list of reversed-hex hashes; BadRequest when anything is off."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > limit:
        raise BadRequest(f"{what} must be a list of at most {limit} hashes")
    try:
        return [hex_to_hash(v) for v in value]
    except ValueError as exc:
        raise BadRequest(f"{what}: {exc}") from None
