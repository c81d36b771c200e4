"""The block explorer: HTML pages served by every node at ``/``, rendered on the server with Jinja2.

Pages: status and latest blocks (``/``), ``/blocks``, ``/block/<hash>``, ``/height/<n>``,
``/tx/<txid>``, ``/address/<address>``, ``/mempool``, ``/peers``, ``/search?q=`` and
``/tree``, a picture of every block the node knows (stale and invalid branches
included) drawn as SVG on the server. Views only call the ``Node``'s query methods,
the same ones the JSON API uses, and hand their answers to templates; the one piece
of logic of their own is the layout of the block tree (``tree_picture``). Path
arguments take slashes too, so any mistyped block, tx or address URL gets an HTML
answer rather than the API's JSON 404. Every
page reads without JavaScript; ``static/explorer.js`` polls ``/api/status`` and
reloads the tree when the tip moves. Errors become friendly HTML pages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from chain.address import decode_address, encode_address
from chain.chainstate import BlockIndex, ChainState, Status
from chain.errors import AddressError, ValidationError
from chain.hashes import hash_to_hex
from chain.transaction import COIN
from node.args import int_arg, parse_hash, parse_height
from node.errors import BadRequest, NodeError, NotFound
from node.service import Node

log = logging.getLogger(__name__)

LATEST_BLOCKS = 10  # on the status page
BLOCKS_PAGE = 25  # on /blocks
TREE_HEIGHTS = 20  # heights drawn per page of the block tree
MAX_TREE_HEIGHTS = 200

explorer = Blueprint(
    "explorer",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/explorer-static",
)


def _node() -> Node:
    return current_app.extensions["cairn_node"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------- formatting (Jinja filters)


def format_coins(units: int) -> str:
    """Integer units as coins with 8 decimals, by integer division only: ``150000000`` -> ``1.50000000``."""
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), COIN)
    return f"{sign}{whole}.{fraction:08d}"


def format_time(timestamp: int | float | None) -> str:
    if timestamp is None:
        return "—"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def short_hash(text: str) -> str:
    """``0000ab12…9f3e``: enough to tell hashes apart in a table (the full hash is in the link's title)."""
    return text if len(text) <= 16 else f"{text[:8]}…{text[-6:]}"


@explorer.app_template_filter("coins")
def _coins_filter(units: int | None) -> str:
    return "—" if units is None else format_coins(units)


@explorer.app_template_filter("utc")
def _time_filter(timestamp: int | float | None) -> str:
    return format_time(timestamp)


@explorer.app_template_filter("short")
def _short_filter(text: str) -> str:
    return short_hash(text)


@explorer.app_context_processor
def _globals() -> dict[str, Any]:
    node = current_app.extensions.get("cairn_node")
    if node is None or request.blueprint != "explorer":
        return {}
    tip = node.chain.tip
    return {"network": node.params.name, "live_height": tip.height, "live_tip": tip.header.hash_hex}


# ---------------------------------------------------------------- decoding


def _address_of(pubkey_hash_hex: str) -> str:
    return encode_address(bytes.fromhex(pubkey_hash_hex), _node().params)


def block_state(chain: ChainState, index: BlockIndex) -> str:
    """``active``, ``stale``, ``invalid``, ``invalid-parent`` or ``header-only``: what the tree and block page show."""
    if index.status & Status.FAILED:
        return "invalid"
    if index.status & Status.FAILED_PARENT:
        return "invalid-parent"
    if chain.is_active(index.hash):
        return "active"
    if not index.status & Status.HAVE_DATA:
        return "header-only"
    return "stale"


STATE_TEXT = {
    "active": "in the active chain",
    "stale": "stale: valid so far, on a branch with less work than the active chain",
    "invalid": "invalid: it broke a consensus rule",
    "invalid-parent": "invalid: an ancestor broke a consensus rule",
    "header-only": "header only: the block's transactions have not arrived",
}


# ---------------------------------------------------------------- errors


def _error_page(status: int, code: str, message: str) -> tuple[str, int]:
    return render_template("explorer/error.html", status=status, code=code, message=message), status


@explorer.errorhandler(NodeError)
def _node_error(exc: NodeError) -> tuple[str, int]:
    return _error_page(exc.status, exc.code, exc.message)


@explorer.errorhandler(ValidationError)
def _validation_error(exc: ValidationError) -> tuple[str, int]:
    return _error_page(400, exc.reason, exc.message)


@explorer.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    return _error_page(exc.code or 500, "http-error", exc.description or exc.name)


@explorer.errorhandler(Exception)
def _unexpected_error(exc: Exception) -> tuple[str, int]:
    log.exception("unexpected error serving %s %s", request.method, request.path)
    return _error_page(500, "internal-error", f"{type(exc).__name__}: the node failed to answer")


# ---------------------------------------------------------------- pages


@explorer.get("/")
def home() -> str:
    node = _node()
    return render_template(
        "explorer/status.html",
        status=node.status(),
        blocks=node.blocks_json(None, LATEST_BLOCKS),
        tips=chain_tips(node.chain),
    )


@explorer.get("/blocks")
def blocks() -> str:
    node = _node()
    start = int_arg("start", None, 0, 2**31 - 1, empty_is_missing=True)
    page = node.blocks_json(start, BLOCKS_PAGE)
    tip = node.chain.height
    top = page[0]["height"] if page else tip
    bottom = page[-1]["height"] if page else 0
    return render_template(
        "explorer/blocks.html",
        blocks=page,
        newer=min(top + BLOCKS_PAGE, tip) if top < tip else None,
        older=bottom - 1 if bottom > 0 else None,
    )


@explorer.get("/block/<path:block_hash>")
def block(block_hash: str) -> str:
    node = _node()
    index = node.block_index(parse_hash(block_hash))
    state = block_state(node.chain, index)
    try:
        info = node.block_json(index.hash)
    except NotFound:  # known by its header only
        info = {**index.header.to_json(), "height": index.height, "chainwork": format(index.chainwork, "x")}
    for tx in info.get("transactions", ()):
        for output in tx["outputs"]:
            output["address"] = _address_of(output["pubkey_hash"])
        tx["total_out"] = sum(o["amount"] for o in tx["outputs"])
    following = node.chain.active_index(index.height + 1) if state == "active" else None
    return render_template(
        "explorer/block.html",
        block=info,
        state=state,
        state_text=STATE_TEXT[state],
        next_hash=following.header.hash_hex if following is not None else None,
        genesis=index.height == 0,
    )


@explorer.get("/height/<path:height>")
def height(height: str) -> Response:
    value = parse_height(height)
    block_hash = _node().hash_at(value)
    return redirect(url_for("explorer.block", block_hash=hash_to_hex(block_hash)))


@explorer.get("/tx/<path:txid>")
def transaction(txid: str) -> str:
    info = _node().transaction_json(parse_hash(txid))
    return render_template("explorer/tx.html", tx=info, total_out=sum(o["amount"] for o in info["outputs"]))


@explorer.get("/address/<path:address>")
def address(address: str) -> str:
    node = _node()
    balance = node.address_json(address)
    history = node.history_json(address)
    return render_template(
        "explorer/address.html",
        address=address,
        balance=balance,
        total=balance["confirmed"] + balance["immature"] + balance["unconfirmed"],
        history=history["transactions"],
    )


@explorer.get("/mempool")
def mempool() -> str:
    return render_template("explorer/mempool.html", mempool=_node().mempool_json())


@explorer.get("/peers")
def peers() -> str:
    return render_template("explorer/peers.html", peers=_node().peers_json())


@explorer.get("/search")
def search() -> Response:
    """A height, a block hash, a txid (active chain or mempool) or an address: redirect to its page."""
    node = _node()
    query = request.args.get("q", "").strip()
    if not query:
        raise BadRequest("type a height, a block hash, a transaction id or an address")
    if query.isdigit():
        return redirect(url_for("explorer.height", height=query))
    if len(query) == 64:
        value = parse_hash(query)
        if node.chain.get_index(value) is not None:
            return redirect(url_for("explorer.block", block_hash=query.lower()))
        if value in node.mempool or node.chain.find_transaction(value) is not None:
            return redirect(url_for("explorer.transaction", txid=query.lower()))
        raise NotFound(f"no block or transaction {query} is known to this node")
    try:
        decode_address(query, node.params)
    except AddressError as exc:
        raise BadRequest(
            f"{query!r:.80} is not a height, a 64-character hash or a {node.params.name} address ({exc.message})",
            exc.reason,
        ) from None
    return redirect(url_for("explorer.address", address=query))


# ---------------------------------------------------------------- the block tree


@dataclass(frozen=True)
class TreeNode:
    hash: str
    height: int
    state: str
    x: int
    y: int
    tip: bool  # the active tip


@dataclass(frozen=True)
class TreeEdge:
    x1: int
    y1: int
    x2: int
    y2: int
    active: bool


@dataclass(frozen=True)
class TreePicture:
    """Boxes and lines of the block tree between heights ``low`` and ``high``, in SVG user units."""

    nodes: tuple[TreeNode, ...]
    edges: tuple[TreeEdge, ...]
    low: int
    high: int
    best: int  # the highest height any known block has
    width: int
    height: int
    counts: dict[str, int]
    heights: tuple[tuple[int, int], ...]  # (height, x) of the axis labels


BOX_W, BOX_H = 52, 34
STEP_X, STEP_Y = 72, 56
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 28, 34, 16


def tree_picture(chain: ChainState, top: int | None, count: int) -> TreePicture:
    """Lay out every known block with ``top - count < height <= top`` (``top``: the highest known block).

    Heights go left to right. The active chain is lane 0; every other branch, from its
    leaf back to where it leaves the active chain (or an already drawn branch), gets the
    first lane below whose blocks it would not overlap.
    """
    indexes = chain.all_indexes()
    best = max(i.height for i in indexes)
    high = best if top is None else min(top, best)
    low = max(0, high - count + 1)
    window = {i.hash: i for i in indexes if low <= i.height <= high}
    active: set[bytes] = set()
    for h in range(low, high + 1):
        on_chain = chain.active_index(h)
        if on_chain is not None:
            active.add(on_chain.hash)
    tip_hash = chain.tip.hash
    lane = {block_hash: 0 for block_hash in active if block_hash in window}
    has_child = {i.prev.hash for i in window.values() if i.prev is not None}
    leaves = [i for i in window.values() if i.hash not in has_child and i.hash not in active]
    leaves.sort(key=lambda i: (-i.chainwork, i.seq))
    spans: dict[int, list[tuple[int, int]]] = {}
    for leaf in leaves:
        path: list[BlockIndex] = []
        walker: BlockIndex | None = leaf
        while walker is not None and walker.hash in window and walker.hash not in lane:
            path.append(walker)
            walker = walker.prev
        if not path:
            continue
        span = (path[-1].height - 1, path[0].height)  # one free column before the branch, for its fork line
        chosen = 1
        while any(a <= span[1] and span[0] <= b for a, b in spans.get(chosen, ())):
            chosen += 1
        spans.setdefault(chosen, []).append(span)
        for index in path:
            lane[index.hash] = chosen
    lanes = 1 + max(lane.values(), default=0)

    def position(index: BlockIndex) -> tuple[int, int]:
        return MARGIN_X + (index.height - low) * STEP_X, MARGIN_TOP + lane[index.hash] * STEP_Y

    nodes, edges = [], []
    for index in sorted(window.values(), key=lambda i: (i.height, lane[i.hash])):
        x, y = position(index)
        state = "active" if index.hash in active else block_state(chain, index)
        nodes.append(TreeNode(index.header.hash_hex, index.height, state, x, y, index.hash == tip_hash))
        parent = index.prev
        mid_y = y + BOX_H // 2
        if parent is not None and parent.hash in window:
            px, py = position(parent)
            edges.append(TreeEdge(px + BOX_W, py + BOX_H // 2, x, mid_y, index.hash in active))
        elif parent is not None:  # the parent is left of the window: a stub towards it
            edges.append(TreeEdge(x - (STEP_X - BOX_W), mid_y, x, mid_y, index.hash in active))
    counts: dict[str, int] = {}
    for node in nodes:
        counts[node.state] = counts.get(node.state, 0) + 1
    width = 2 * MARGIN_X + (high - low) * STEP_X + BOX_W
    height = MARGIN_TOP + (lanes - 1) * STEP_Y + BOX_H + MARGIN_BOTTOM
    axis = tuple((h, MARGIN_X + (h - low) * STEP_X + BOX_W // 2) for h in range(low, high + 1))
    return TreePicture(tuple(nodes), tuple(edges), low, high, best, width, height, counts, axis)


def chain_tips(chain: ChainState) -> list[dict[str, Any]]:
    """Every leaf of the block tree, the active tip first: its state, and how far back it leaves the active chain."""
    tips = []
    for index in chain.tips():
        walker: BlockIndex | None = index
        while walker is not None and not chain.is_active(walker.hash):
            walker = walker.prev
        fork_height = walker.height if walker is not None else 0
        tips.append(
            {
                "hash": index.header.hash_hex,
                "height": index.height,
                "state": block_state(chain, index),
                "branch_length": index.height - fork_height,
                "fork_height": fork_height,
            }
        )
    tips.sort(key=lambda t: (t["state"] != "active", -t["height"], t["hash"]))
    return tips


def _tree_args() -> tuple[int | None, int]:
    top = int_arg("top", None, 0, 2**31 - 1, empty_is_missing=True)
    count = int_arg("count", None, 1, MAX_TREE_HEIGHTS, empty_is_missing=True)
    return top, count or TREE_HEIGHTS


def _tree_context() -> dict[str, Any]:
    node = _node()
    top, count = _tree_args()
    picture = tree_picture(node.chain, top, count)
    return {
        "tree": picture,
        "tips": chain_tips(node.chain),
        "top": top,
        "count": count,
        "older": picture.low - 1 if picture.low > 0 else None,
        "newer": min(picture.high + count, picture.best) if picture.high < picture.best else None,
        "box_w": BOX_W,
        "box_h": BOX_H,
    }


@explorer.get("/tree")
def tree() -> str:
    return render_template("explorer/tree.html", **_tree_context())


@explorer.get("/tree/fragment")
def tree_fragment() -> str:
    """The body of ``/tree`` alone (picture, pager, chain tips), for the page's script to swap in as blocks arrive."""
    return render_template("explorer/_tree.html", **_tree_context())
