"""The explorer in headless Chromium (Debian's ``chromium`` and ``chromedriver``, driven by Selenium) on real nodes.

Two ``cairn-node`` processes share an 11-block history, then mine apart: node0 two
blocks, node1 three with a payment in the last. The browser opens node0's block tree,
the nodes are joined, and the open page must redraw itself (the polling script) with
node0's two blocks as a stale branch, and again when a block arrives that does not move
the tip. Then it follows links as a person would: the
tip, its payment, the payee's address, and a stale block from the tree. Screenshots go
to the test's tmp dir; with ``CAIRN_UPDATE_SCREENSHOTS=1`` the tree one also replaces
``docs/img/explorer-tree.png``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from chain.address import encode_address
from chain.block import Block
from chain.builder import ChainBuilder, Key
from chain.hashes import hash_to_hex, hex_to_hash
from chain.params import REGTEST
from chain.transaction import COIN
from devnet.process import connect, sync_blocks
from node.explorer import format_coins

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = REPO / "docs" / "img" / "explorer-tree.png"
WAIT = 60  # seconds, for things that happen over the network (no test asserts a duration)


def chromium(tmp_path: Path) -> webdriver.Chrome:
    """Headless Chromium with a fresh profile; fails (never skips) when the system browser is missing."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            pytest.fail(
                f"{path} is missing: install Debian's chromium and chromium-driver (scripts/test does, as root)"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1360,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT)
    return driver


# The page redraws the tree by replacing its HTML, so an element found a moment ago can be gone by the time it is
# read. Every look at the tree is therefore one script run in the page: a consistent snapshot.
TREE_SNAPSHOT = """
const tree = document.getElementById("tree");
const hashes = (state) =>
    Array.from(tree.querySelectorAll(`svg.tree a.block[data-state='${state}']`), (a) => a.dataset.hash);
const tip = tree.querySelector("a.block.tip");
const summary = tree.querySelector(".tree-summary");
const tips = tree.querySelector("table.tips");
return {
    active: hashes("active"),
    stale: hashes("stale"),
    tip: tip ? tip.dataset.hash : null,
    counts: summary ? summary.dataset.counts : null,
    tips_table: tips ? tips.innerText : "",
    height: document.getElementById("live-height").textContent,
};
"""


def tree(driver: webdriver.Chrome) -> dict:
    """The block tree as drawn in the page right now: boxes by state, the tip box, the summary, the tips table."""
    return driver.execute_script(TREE_SNAPSHOT)


def post_blocks(node, blocks) -> None:
    for block in blocks:
        assert node.submit_block(block.serialized.hex())["status"] == "active"


def test_explorer_follows_links_and_draws_the_fork(node_factory, tmp_path: Path) -> None:
    builder = ChainBuilder(REGTEST)
    history = builder.add_chain(11)  # the coinbase of block 1 is mature at height 11
    payee = Key()
    payee_address = encode_address(payee.pubkey_hash, REGTEST)
    node0 = node_factory()
    node1 = node_factory()
    post_blocks(node0, history)
    post_blocks(node1, history)

    # mine apart: node0 two blocks, node1 three, the last with a payment from its mempool. Each pays its
    # own address: two nodes mining on one parent in the same second to one address find the same block.
    stale = node0.generate(2, encode_address(Key().pubkey_hash, REGTEST))
    node1.generate(2, encode_address(Key().pubkey_hash, REGTEST))
    payment = builder.spend([builder.coinbase_spendable(history[0])], payee.pubkey_hash, 10 * COIN, fee=1000)
    txid = node1.send_transaction(payment.serialized.hex())
    assert txid == hash_to_hex(payment.txid)
    tip = node1.generate(1, encode_address(Key().pubkey_hash, REGTEST))[0]
    assert node0.height() == 13 and node1.height() == 14

    driver = chromium(tmp_path)
    try:
        # node0's tree before the join: one straight chain
        driver.get(node0.url + "/tree")
        assert driver.title.startswith("Block tree")
        before = tree(driver)
        assert len(before["active"]) == 14 and before["stale"] == []
        driver.save_screenshot(str(tmp_path / "tree-before.png"))

        # join the groups: node0 reorgs to node1's chain, and the open page redraws itself
        connect(node0, node1)
        assert sync_blocks([node0, node1]) == tip
        WebDriverWait(driver, WAIT).until(lambda d: sorted(tree(d)["stale"]) == sorted(stale))
        after = tree(driver)
        assert tip in after["active"] and len(after["active"]) == 15 and not set(stale) & set(after["active"])
        assert after["height"] == "14" and after["tip"] == tip and after["counts"] == "active=15 stale=2"
        assert "stale" in after["tips_table"] and "active" in after["tips_table"]  # the chain tips below follow too
        shot = tmp_path / "explorer-tree.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        if os.environ.get("CAIRN_UPDATE_SCREENSHOTS") == "1":
            DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, DOCS_SCREENSHOT)

        # a block that does not move the tip (a third on the stale branch: equal work, the first seen stays) is
        # drawn too, by the periodic reload
        for block_hash in stale:
            builder.record(Block.parse(bytes.fromhex(node0.api("GET", f"/api/blocks/{block_hash}/raw")["hex"])))
        rival = builder.add_block(parent=builder.blocks[hex_to_hash(stale[-1])])
        assert node0.submit_block(rival.serialized.hex())["status"] == "stored"
        WebDriverWait(driver, WAIT).until(lambda d: rival.hash_hex in tree(d)["stale"])
        assert tree(driver)["height"] == "14" and node0.tip() == tip

        # a stale box links to its block page, which says so
        # (found and clicked in one step, retried if a redraw replaced the box in between)
        WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: d.find_element(By.CSS_SELECTOR, f"#tree a.block[data-hash='{stale[-1]}']").click() or True
        )
        WebDriverWait(driver, WAIT).until(lambda d: stale[-1] in d.current_url)
        assert "stale" in driver.find_element(By.TAG_NAME, "h1").text
        assert "less work than the active chain" in driver.find_element(By.CLASS_NAME, "state-text").text

        # from the status page: the tip, its payment, the payee's address
        driver.get(node0.url + "/")
        driver.find_element(By.CSS_SELECTOR, "dl.facts a.hash").click()
        WebDriverWait(driver, WAIT).until(lambda d: d.current_url.endswith(f"/block/{tip}"))
        assert driver.find_element(By.TAG_NAME, "h1").text.startswith("Block 14")
        driver.find_element(By.CSS_SELECTOR, f"table.txs a[href='/tx/{txid}']").click()
        WebDriverWait(driver, WAIT).until(lambda d: d.current_url.endswith(f"/tx/{txid}"))
        page = driver.find_element(By.TAG_NAME, "main").text
        assert txid in page and format_coins(10 * COIN) in page and format_coins(1000) in page
        driver.find_element(By.LINK_TEXT, payee_address).click()
        WebDriverWait(driver, WAIT).until(lambda d: d.current_url.endswith(f"/address/{payee_address}"))
        page = driver.find_element(By.TAG_NAME, "main").text
        assert payee_address in page and format_coins(10 * COIN) in page and txid[:8] in page
        driver.save_screenshot(str(tmp_path / "address.png"))

        # the peers page shows the other node, connected
        driver.get(node0.url + "/peers")
        assert node1.url in driver.find_element(By.TAG_NAME, "table").text
        assert "connected" in driver.find_element(By.TAG_NAME, "table").text
    finally:
        driver.quit()
