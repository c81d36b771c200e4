"""Every explorer page through Flask's test client on a real in-process node: good and bad input, links, escaping.

The world: a 13-block active chain with a payment in block 13 and its follow-up in the
mempool, plus every kind of block the tree can hold: a stale branch (with a header-only
block on it), an invalid block and a block whose parent is invalid.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from chain.address import encode_address
from chain.builder import ChainBuilder, Key, Spendable
from chain.errors import ValidationError
from chain.hashes import hash_to_hex
from chain.params import DEVNET, REGTEST
from chain.transaction import COIN, MAX_MONEY, OutPoint, TxOut
from devnet.process import free_port
from node.app import create_app
from node.config import NodeConfig
from node.explorer import BOX_H, BOX_W, MARGIN_TOP, format_coins, tree_picture
from node.service import Node

PAYEE = Key()
OTHER = Key()
PAYEE_ADDRESS = encode_address(PAYEE.pubkey_hash, REGTEST)
OTHER_ADDRESS = encode_address(OTHER.pubkey_hash, REGTEST)
HOSTILE = "<script>alert(1)</script>"
REPO = Path(__file__).resolve().parents[2]


class World:
    def __init__(self, datadir) -> None:
        self.node = Node(NodeConfig(network="regtest", datadir=datadir, port=free_port(), synchronous="OFF"))
        self.app = create_app(self.node)
        self.builder = builder = ChainBuilder(REGTEST)
        self.miner_address = encode_address(builder.miner.pubkey_hash, REGTEST)
        self.blocks = builder.add_chain(12)
        for block in self.blocks:
            self.node.submit_block(block)
        self.t_conf = builder.spend([builder.coinbase_spendable(self.blocks[0])], PAYEE.pubkey_hash, 10 * COIN, 1000)
        self.blocks.append(builder.add_block(transactions=[self.t_conf], fees=1000))
        self.node.submit_block(self.blocks[-1])
        paid = Spendable(OutPoint(self.t_conf.txid, 0), self.t_conf.outputs[0], PAYEE)
        self.t_pool = builder.spend([paid], OTHER.pubkey_hash, 3 * COIN, fee=500)
        self.node.submit_transaction(self.t_pool)
        # a stale branch at heights 11-12 (less work), then a header-only block at 13 on it (equal work: not best)
        self.stale = builder.add_chain(2, parent=self.blocks[9])
        for block in self.stale:
            self.node.submit_block(block)
        self.header_only = builder.add_block(parent=self.stale[-1])
        self.node.chain.accept_header(self.header_only.header)
        # an invalid branch: 12 and 13 valid (13 ties: first seen wins), 14 spends a coin that never existed,
        # 15 on top of it arrives first, so it is marked FAILED_PARENT when 14 fails
        self.side = builder.add_chain(2, parent=self.blocks[10])
        for block in self.side:
            self.node.submit_block(block)
        ghost = OutPoint(bytes(range(32)), 0)
        bad_tx = builder.spend([Spendable(ghost, TxOut(COIN, PAYEE.pubkey_hash), PAYEE)], OTHER.pubkey_hash, COIN // 2)
        self.invalid = builder.add_block(parent=self.side[-1], transactions=[bad_tx])
        self.invalid_child = builder.add_block(parent=self.invalid)
        self.node.chain.accept_header(self.invalid.header)
        self.node.submit_block(self.invalid_child)
        try:
            self.node.submit_block(self.invalid)
        except ValidationError as exc:
            self.invalid_reason = exc.reason
        else:
            self.invalid_reason = ""
        self.node.peers.add("http://127.0.0.1:9")
        banned = self.node.peers.add("http://127.0.0.2:9")
        self.node.peers.remove(banned, ban=True, reason=f"misbehaved {HOSTILE}")

    @property
    def tip(self):
        return self.blocks[-1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("explorer") / "data")
    yield world
    world.node.stop()


@pytest.fixture
def client(world):
    return world.app.test_client()


class Links(HTMLParser):
    """Every href of a page, and the text of the page outside tags."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.hrefs += [value for name, value in attrs if name == "href" and value]

    def handle_data(self, data) -> None:
        self.text.append(data)


def parse(response) -> Links:
    links = Links()
    links.feed(response.get_data(as_text=True))
    return links


def page(client, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def block_href(block) -> str:
    return f"/block/{block.hash_hex}"


def tx_href(tx) -> str:
    return f"/tx/{hash_to_hex(tx.txid)}"


# ---------------------------------------------------------------- the world is what the tests think it is


def test_world_holds_every_kind_of_block(world) -> None:
    chain = world.node.chain
    assert chain.height == 13 and chain.tip.hash == world.tip.hash
    assert world.invalid_reason == "bad-txns-inputs-missingorspent"
    assert chain.get_block(world.header_only.hash) is None


# ---------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (0, "0.00000000"),
        (1, "0.00000001"),
        (99_999_999, "0.99999999"),
        (COIN, "1.00000000"),
        (150_000_000, "1.50000000"),
        (-2 * COIN - 5, "-2.00000005"),
        (MAX_MONEY, "21000000.00000000"),
        (MAX_MONEY - 1, "20999999.99999999"),  # a float would round this to 21000000.0
    ],
)
def test_format_coins_is_exact(units: int, text: str) -> None:
    assert format_coins(units) == text


# ---------------------------------------------------------------- status and blocks


def test_status_page(client, world) -> None:
    html = page(client, "/")
    links = parse(client.get("/"))
    assert "<h1>Node status</h1>" in html and "regtest" in html
    assert "<dt>Height</dt><dd>13</dd>" in html
    assert block_href(world.tip) in links.hrefs
    assert "/mempool" in links.hrefs and "/peers" in links.hrefs and "/tree" in links.hrefs
    # the latest 10 blocks, newest first, each linked
    for block in world.blocks[-10:]:
        assert block_href(block) in links.hrefs
    assert block_href(world.blocks[-11]) not in links.hrefs  # height 3: not among the latest 10
    # the chain tips table: the active tip and the leaves of the stale (header-only) and invalid branches
    for leaf in (world.header_only, world.invalid_child):
        assert block_href(leaf) in links.hrefs
    assert "1 transaction, " in html  # the mempool


def test_blocks_paging(client, world) -> None:
    links = parse(client.get("/blocks"))
    assert block_href(world.tip) in links.hrefs
    assert "/blocks?start=" not in " ".join(h for h in links.hrefs if "newer" in h)
    paged = client.get("/blocks?start=5")
    html = paged.get_data(as_text=True)
    hrefs = parse(paged).hrefs
    assert block_href(world.blocks[4]) in hrefs  # height 5
    assert block_href(world.blocks[5]) not in hrefs  # height 6 is newer than the page
    assert f"/block/{REGTEST.genesis_hash[::-1].hex()}" in hrefs
    assert "/blocks?start=13" in hrefs and "older →" not in html


@pytest.mark.parametrize("start", ["abc", "-1", "99999999999", HOSTILE])
def test_blocks_bad_start(client, start: str) -> None:
    html = page(client, f"/blocks?start={start}", 400)
    assert "bad-request" in html and "<script>alert" not in html


# ---------------------------------------------------------------- a block


def test_block_page_of_the_tip(client, world) -> None:
    response = client.get(block_href(world.tip))
    html = response.get_data(as_text=True)
    hrefs = parse(response).hrefs
    assert response.status_code == 200
    assert "Block 13" in html and world.tip.hash_hex in html and 'class="badge active"' in html
    assert "in the active chain" in html
    assert "<dt>Confirmations</dt><dd>1</dd>" in html
    assert block_href(world.blocks[-2]) in hrefs  # previous
    assert hash_to_hex(world.tip.header.merkle_root) in html
    assert f"{world.tip.header.bits:08x}" in html and f"<dd>{world.tip.header.nonce}</dd>" in html
    for tx in world.tip.transactions:
        assert tx_href(tx) in hrefs
    assert tx_href(world.blocks[0].transactions[0]) in hrefs  # the coin t_conf spends
    assert f"/address/{PAYEE_ADDRESS}" in hrefs and f"/address/{world.miner_address}" in hrefs
    assert format_coins(10 * COIN) in html
    assert format_coins(REGTEST.block_subsidy(13) + 1000) in html  # the coinbase collects the fee
    assert "2 transactions" in html


def test_block_page_links_forward_on_the_active_chain(client, world) -> None:
    hrefs = parse(client.get(block_href(world.blocks[5]))).hrefs
    assert block_href(world.blocks[6]) in hrefs and block_href(world.blocks[4]) in hrefs
    assert "<dt>Confirmations</dt><dd>8</dd>" in page(client, block_href(world.blocks[5]))


def test_genesis_block_page(client) -> None:
    html = page(client, f"/block/{REGTEST.genesis_hash[::-1].hex()}")
    assert "Block 0" in html and "this is the genesis block" in html


@pytest.mark.parametrize(
    ("which", "state", "text"),
    [
        ("stale", "stale", "on a branch with less work"),
        ("invalid", "invalid", "it broke a consensus rule"),
        ("invalid_child", "invalid-parent", "an ancestor broke a consensus rule"),
        ("header_only", "header-only", "have not arrived"),
    ],
)
def test_block_page_of_blocks_off_the_active_chain(client, world, which: str, state: str, text: str) -> None:
    block = getattr(world, which)
    block = block[-1] if isinstance(block, list) else block
    html = page(client, block_href(block))
    assert f'<span class="badge {state}">{state}</span>' in html
    assert text in html
    if state != "header-only":
        assert "not in the active chain" in html  # confirmations
        assert tx_href(block.transactions[0]) in parse(client.get(block_href(block))).hrefs
    else:
        assert "Only the header of this block is known" in html
    assert block_href(world.blocks[0]) not in html or block.header.prev_hash == world.blocks[0].hash


def test_unknown_block_is_a_friendly_404(client) -> None:
    html = page(client, "/block/" + "ab" * 32, 404)
    assert "Not found" in html and "not-found" in html and "ab" * 32 in html
    assert "Traceback" not in html and '{"error"' not in html


@pytest.mark.parametrize("bad", ["xyz", "00" * 31, "g" * 64, HOSTILE, "%3Cimg%20src=x%20onerror=alert(1)%3E"])
def test_bad_block_hash_is_a_friendly_400(client, bad: str) -> None:
    html = page(client, f"/block/{bad}", 400)
    assert "bad-hash" in html and "That does not look right" in html
    assert "<script>alert" not in html and "<img src=x" not in html


def test_hostile_input_is_escaped(client) -> None:
    html = page(client, "/block/" + HOSTILE, 400)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and HOSTILE not in html


def test_height_redirects_to_the_active_block(client, world) -> None:
    response = client.get("/height/5")
    assert response.status_code == 302 and response.headers["Location"] == block_href(world.blocks[4])
    assert page(client, "/height/14", 404).count("no block at height 14") == 1
    for bad in ("-1", "abc", HOSTILE):
        html = page(client, f"/height/{bad}", 400)
        assert "<script>alert" not in html


# ---------------------------------------------------------------- a transaction


def test_confirmed_transaction(client, world) -> None:
    response = client.get(tx_href(world.t_conf))
    html, hrefs = response.get_data(as_text=True), parse(response).hrefs
    assert response.status_code == 200 and hash_to_hex(world.t_conf.txid) in html
    assert block_href(world.tip) in hrefs and "/height/13" in hrefs
    assert "<dt>Confirmations</dt><dd>1</dd>" in html
    # the input: the coinbase of block 1, with its address and amount
    assert f"{tx_href(world.blocks[0].transactions[0])}" in hrefs
    assert f"/address/{world.miner_address}" in hrefs and format_coins(REGTEST.block_subsidy(1)) in html
    # the outputs
    assert f"/address/{PAYEE_ADDRESS}" in hrefs and format_coins(10 * COIN) in html
    assert format_coins(REGTEST.block_subsidy(1) - 10 * COIN - 1000) in html  # change
    assert format_coins(1000) in html  # the fee


def test_mempool_transaction(client, world) -> None:
    response = client.get(tx_href(world.t_pool))
    html, hrefs = response.get_data(as_text=True), parse(response).hrefs
    assert "in mempool" in html and "in the mempool, waiting to be mined" in html
    assert tx_href(world.t_conf) in hrefs and f"/address/{OTHER_ADDRESS}" in hrefs
    assert format_coins(500) in html and format_coins(3 * COIN) in html


def test_coinbase_transaction(client, world) -> None:
    html = page(client, tx_href(world.blocks[2].transactions[0]))
    assert "coinbase" in html and "new coins" in html and format_coins(REGTEST.block_subsidy(3)) in html
    assert "none (a coinbase collects fees)" in html
    assert "/tx/" + "00" * 32 not in html  # the null outpoint is not a link


def test_transaction_errors(client, world) -> None:
    assert "not-found" in page(client, "/tx/" + "cd" * 32, 404)
    # a transaction of a stale block only is not in the active chain
    assert "not-found" in page(client, tx_href(world.stale[0].transactions[0]), 404)
    html = page(client, "/tx/" + HOSTILE, 400)
    assert "bad-hash" in html and HOSTILE not in html


# ---------------------------------------------------------------- an address


def test_address_page(client, world) -> None:
    response = client.get(f"/address/{PAYEE_ADDRESS}")
    html, hrefs = response.get_data(as_text=True), parse(response).hrefs
    assert response.status_code == 200 and PAYEE_ADDRESS in html
    change = 10 * COIN - 3 * COIN - 500
    # 10 coins confirmed, all spent by the pooled t_pool, which pays back its change
    assert f'<dd class="amount big">{format_coins(change)}</dd>' in html
    assert f'<dd class="amount">{format_coins(10 * COIN)}</dd>' in html
    assert format_coins(change - 10 * COIN) in html  # unconfirmed, negative
    assert "spent in mempool" in html
    assert tx_href(world.t_conf) in hrefs and tx_href(world.t_pool) in hrefs and block_href(world.tip) in hrefs


def test_address_of_a_miner_shows_immature_coinbases(client, world) -> None:
    html = page(client, f"/address/{world.miner_address}")
    assert "immature" in html and "coinbase" in html
    assert tx_href(world.blocks[-1].transactions[0]) in parse(client.get(f"/address/{world.miner_address}")).hrefs


def test_address_errors(client) -> None:
    assert "bad-address" in page(client, "/address/notanaddress", 400)
    devnet = encode_address(PAYEE.pubkey_hash, DEVNET)
    html = page(client, f"/address/{devnet}", 400)
    assert "wrong-network" in html and "devnet address" in html
    html = page(client, "/address/" + HOSTILE, 400)
    assert "bad-address" in html and HOSTILE not in html


def test_empty_address(client) -> None:
    html = page(client, f"/address/{encode_address(Key().pubkey_hash, REGTEST)}")
    assert "no unspent outputs" in html and "no transactions" in html and format_coins(0) in html


# ---------------------------------------------------------------- mempool, peers, search, static


def test_mempool_page(client, world) -> None:
    response = client.get("/mempool")
    html = response.get_data(as_text=True)
    assert "1 transaction waiting to be mined" in html
    assert tx_href(world.t_pool) in parse(response).hrefs and format_coins(500) in html


def test_peers_page(client) -> None:
    html = page(client, "/peers")
    assert 'href="http://127.0.0.1:9/"' in html and "outbound" in html and "connecting" in html
    assert "http://127.0.0.2:9" in html and "misbehaved &lt;script&gt;" in html and HOSTILE not in html


@pytest.mark.parametrize(
    ("query", "target"),
    [
        ("7", "/height/7"),
        (" 13 ", "/height/13"),
        ("block:tip", "/block/{tip}"),
        ("block:TIP", "/block/{tip}"),
        ("tx:conf", "/tx/{conf}"),
        ("tx:pool", "/tx/{pool}"),
        ("address", f"/address/{PAYEE_ADDRESS}"),
    ],
)
def test_search_redirects(client, world, query: str, target: str) -> None:
    values = {
        "tip": world.tip.hash_hex,
        "conf": hash_to_hex(world.t_conf.txid),
        "pool": hash_to_hex(world.t_pool.txid),
    }
    if query.startswith("block:"):
        query = values["tip"].upper() if query.endswith("TIP") else values["tip"]
    elif query.startswith("tx:"):
        query = values[query[3:]]
    elif query == "address":
        query = PAYEE_ADDRESS
    response = client.get("/search", query_string={"q": query})
    assert response.status_code == 302
    assert response.headers["Location"] == target.format(**values)


def test_search_errors(client) -> None:
    assert "type a height" in page(client, "/search?q=", 400)
    assert "not-found" in page(client, "/search?q=" + "ef" * 32, 404)
    assert "type a height" in page(client, "/search", 400)
    html = page(client, "/search?q=%3Cb%3Ehi", 400)
    assert "bad-address" in html and "<b>hi" not in html and "&lt;b&gt;hi" in html


def test_static_files(client) -> None:
    with client.get("/explorer-static/explorer.css") as css, client.get("/explorer-static/explorer.js") as js:
        assert css.status_code == 200 and css.mimetype == "text/css" and "svg.tree" in css.get_data(as_text=True)
        assert js.status_code == 200 and "dataset.statusUrl" in js.get_data(as_text=True)
    html = page(client, "/")
    assert 'href="/explorer-static/explorer.css"' in html and 'src="/explorer-static/explorer.js"' in html
    assert 'data-status-url="/api/status"' in html


def test_api_errors_stay_json(client) -> None:
    response = client.get("/api/blocks/xyz")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad-hash"
    response = client.get("/api/nothing-here")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not-found"


# ---------------------------------------------------------------- the block tree


def svg_blocks(html: str) -> dict[str, tuple[str, int, int]]:
    """hash -> (state, x, y) of every box in the tree's SVG."""
    found = {}
    for match in re.finditer(
        r'data-hash="([0-9a-f]{64})" data-state="([a-z-]+)">.*?<rect x="(\d+)" y="(\d+)"', html, re.S
    ):
        found[match.group(1)] = (match.group(2), int(match.group(3)), int(match.group(4)))
    return found


def test_tree_draws_every_known_block(client, world) -> None:
    response = client.get("/tree")
    html = response.get_data(as_text=True)
    boxes = svg_blocks(html)
    chain = world.node.chain
    assert set(boxes) == {i.header.hash_hex for i in chain.all_indexes()}  # 14 heights fit in one page
    expected = {block.hash_hex: "active" for block in world.blocks}
    expected[REGTEST.genesis_hash[::-1].hex()] = "active"
    expected |= {b.hash_hex: "stale" for b in world.stale + world.side}
    expected |= {world.header_only.hash_hex: "header-only", world.invalid.hash_hex: "invalid"}
    expected[world.invalid_child.hash_hex] = "invalid-parent"
    assert {h: state for h, (state, _, _) in boxes.items()} == expected
    # the active chain runs along the top, every other branch below it, no two boxes in one place
    assert {y for h, (state, _, y) in boxes.items() if state == "active"} == {MARGIN_TOP}
    assert all(y > MARGIN_TOP for state, _, y in boxes.values() if state != "active")
    assert len({(x, y) for _, x, y in boxes.values()}) == len(boxes)
    # boxes are links to their blocks, the tip is marked, the summary counts by state
    hrefs = parse(response).hrefs
    assert all(f"/block/{h}" in hrefs for h in boxes)
    assert f'class="block active tip" data-hash="{world.tip.hash_hex}"' in html
    assert 'data-counts="active=14 header-only=1 invalid=1 invalid-parent=1 stale=4"' in html
    assert html.count('class="cross"') == 2


def test_tree_branches_share_no_lane_where_they_overlap(world) -> None:
    picture = tree_picture(world.node.chain, None, 20)
    by_hash = {n.hash: n for n in picture.nodes}
    stale_lane = {by_hash[b.hash_hex].y for b in [*world.stale, world.header_only]}
    side_lane = {by_hash[b.hash_hex].y for b in [*world.side, world.invalid, world.invalid_child]}
    assert len(stale_lane) == 1 and len(side_lane) == 1 and stale_lane != side_lane
    # edges join a box's right side to its child's left side
    assert all(e.x2 - e.x1 == 72 - BOX_W for e in picture.edges)
    assert picture.height >= max(n.y for n in picture.nodes) + BOX_H


def test_tree_paging(client, world) -> None:
    html = page(client, "/tree?top=5&count=3")
    boxes = svg_blocks(html)
    assert {world.node.chain.get_index(bytes.fromhex(h)[::-1]).height for h in boxes} == {3, 4, 5}
    hrefs = parse(client.get("/tree?top=5&count=3")).hrefs
    assert "/tree?top=2&count=3" in hrefs and "/tree?top=8&count=3" in hrefs and "/tree?count=3" in hrefs
    assert 'data-fragment="/tree/fragment?top=5&amp;count=3"' in html
    # the oldest page has no older link; the newest has no newer one
    assert "/tree?top=" not in " ".join(h for h in parse(client.get("/tree?top=1&count=3")).hrefs if "top=-" in h)
    assert "← older" not in page(client, "/tree?top=1&count=3")
    assert "newer →" not in page(client, "/tree")
    # a window above the highest block is the highest window
    assert set(svg_blocks(page(client, "/tree?top=1000&count=2"))) == set(svg_blocks(page(client, "/tree?count=2")))


@pytest.mark.parametrize("query", ["count=0", "count=201", "count=x", "top=-1", "top=" + HOSTILE])
def test_tree_bad_arguments(client, query: str) -> None:
    html = page(client, f"/tree?{query}", 400)
    assert "bad-request" in html and "<script>alert" not in html


def test_tree_fragment_is_the_picture_and_tips_alone(client, world) -> None:
    response = client.get("/tree/fragment")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith('<div class="tree-box">\n<svg class="tree"')
    assert "<html" not in html and "<header" not in html and "<script" not in html
    assert set(svg_blocks(html)) == set(svg_blocks(page(client, "/tree")))
    assert "<h2>Chain tips</h2>" in html and block_href(world.invalid_child) in parse(response).hrefs


def test_pages_without_javascript_carry_the_live_tip(client, world) -> None:
    for path in ("/", "/blocks", "/tree", "/mempool", "/peers", block_href(world.tip)):
        html = page(client, path)
        assert f'data-tip="{world.tip.hash_hex}"' in html
        assert f'id="live-tip" class="hash" href="{block_href(world.tip)}"' in html


# ---------------------------------------------------------------- the docs


def test_docs_list_every_page(world) -> None:
    text = (REPO / "docs" / "explorer.md").read_text()
    table = re.search(r"<!-- pages:begin -->\n(.*?)<!-- pages:end -->", text, re.S)
    assert table, "docs/explorer.md lost its pages table"
    documented = {
        re.sub(r"<[a-z]+>", "<>", m.split("?")[0]) for m in re.findall(r"^\| `([^`]+)`", table.group(1), re.M)
    }
    routes = {
        re.sub(r"<(?:path:)?[a-z_]+>", "<>", rule.rule)
        for rule in world.app.url_map.iter_rules()
        if rule.endpoint.startswith("explorer.") and rule.endpoint != "explorer.static"
    }
    assert documented == routes
    assert (REPO / "docs" / "img" / "explorer-tree.png").stat().st_size > 10_000
