"""Keep docs/protocol.md and docs/consensus-rules.md honest.

- every reason code raised in ``chain/`` is in the rule table, and every code there is raised, by the functions named;
- the test vectors of protocol.md are recomputed here (partly with independent code: hashlib, struct, python-ecdsa,
  a textbook Base58Check) and by running the document's own snippet, and the vector transaction is mined into a real
  regtest chain;
- the constant, compact-bits, retarget and network-parameter tables match the code.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import inspect
import re
import struct
import subprocess
import sys
from pathlib import Path

import ecdsa
import pytest
from ecdsa.util import sigencode_string

from chain import errors
from chain.address import encode_address
from chain.block import Block
from chain.builder import ChainBuilder
from chain.chainstate import ChainState
from chain.crypto import HALF_ORDER, SECP256K1_ORDER, public_key, sign, verify
from chain.encoding import varint
from chain.errors import TransactionError, ValidationError
from chain.hashes import hash_to_hex
from chain.headerchain import HeaderChainVerifier
from chain.merkle import merkle_proof, merkle_root
from chain.mining import build_block, solve_block
from chain.params import BITCOIN, DEVNET, NETWORKS, REGTEST, NetworkParams, get_network
from chain.pow import block_work, decode_compact, encode_compact, next_work_required
from chain.transaction import COIN, OutPoint, Transaction, TxIn, TxOut, signature_hash
from chain.utxo import Coin, CoinView
from chain.validation import check_block, check_tx_inputs, connect_block

REPO = Path(__file__).resolve().parents[1]
CHAIN = REPO / "chain"
PROTOCOL = REPO / "docs" / "protocol.md"
RULES = REPO / "docs" / "consensus-rules.md"


# ---------------------------------------------------------------- reading the markdown


def _section(path: Path, name: str) -> str:
    """The text between ``<!-- name:begin -->`` and ``<!-- name:end -->``."""
    match = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", path.read_text(), re.DOTALL)
    assert match, f"{path.name} has no section {name}"
    return match.group(1)


def _rows(section: str) -> list[list[str]]:
    """Cells of a markdown table's body rows (header and separator dropped)."""
    lines = [line.strip() for line in section.splitlines() if line.strip().startswith("|")]
    assert len(lines) > 2, "an empty table"
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def _code(cell: str) -> str:
    """The first `backticked` text of a cell."""
    match = re.search(r"`([^`]+)`", cell)
    assert match, f"no `value` in the cell {cell!r}"
    return match.group(1)


def _doc_vectors() -> dict[str, str]:
    """``<!-- vector: name -->`` code blocks; comments (``#`` to end of line) and whitespace dropped."""
    text = PROTOCOL.read_text()
    vectors = {}
    for name, body in re.findall(r"<!-- vector: ([a-z0-9-]+) -->\n```[a-z]*\n(.*?)```", text, re.DOTALL):
        assert name not in vectors, f"vector {name} appears twice"
        vectors[name] = "".join("".join(line.split("#", 1)[0].split()) for line in body.splitlines())
    return vectors


def _doc_snippet() -> str:
    match = re.search(r"<!-- vector-snippet -->\n```python\n(.*?)```", PROTOCOL.read_text(), re.DOTALL)
    assert match, "protocol.md has no vector snippet"
    return match.group(1)


# ---------------------------------------------------------------- (a) reason codes


def _error_classes() -> dict[str, list[inspect.Parameter]]:
    """Every ValidationError class of chain.errors (and HeaderChainVerifier._fail) with its parameters after self."""
    found = {
        name: list(inspect.signature(cls.__init__).parameters.values())[1:]
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, ValidationError)
    }
    found["_fail"] = list(inspect.signature(HeaderChainVerifier._fail).parameters.values())[1:]
    return found


def reasons_by_regex() -> set[str]:
    """Reason codes in chain/*.py by regular expression: literal first arguments, ``reason=`` and defaults."""
    reason_first = [name for name, params in _error_classes().items() if params[0].name == "reason"]
    patterns = [
        re.compile(r"\b(?:" + "|".join(reason_first) + r")\(\s*\"([^\"]+)\""),  # BlockError("bad-cb-amount", ...)
        re.compile(r"\b_fail\(\s*\w+,\s*\"([^\"]+)\""),  # self._fail(height, "bad-prevblk", ...)
        re.compile(r"\breason(?::\s*str)?\s*=\s*\"([^\"]+)\""),  # reason="..." and reason: str = "bad-encoding"
    ]
    codes = set()
    for path in sorted(CHAIN.glob("*.py")):
        source = path.read_text()
        for pattern in patterns:
            codes.update(pattern.findall(source))
    return codes


class _RaiseFinder(ast.NodeVisitor):
    """Calls of ValidationError classes: their literal reason codes and the functions holding them."""

    def __init__(self, module: str, classes: dict[str, list[inspect.Parameter]]) -> None:
        self.scope = [module]
        self.classes = classes
        self.raisers: dict[str, set[str]] = {}
        self.unreadable: list[str] = []

    def _nested(self, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _nested

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name in self.classes:
            params = self.classes[name]
            position = [p.name for p in params].index("reason")
            arg = node.args[position] if position < len(node.args) else None
            arg = next((kw.value for kw in node.keywords if kw.arg == "reason"), arg)
            if arg is None:
                code = params[position].default
            elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                code = arg.value
            elif (isinstance(arg, ast.Attribute) and arg.attr == "reason") or (
                isinstance(arg, ast.Name) and arg.id == "reason"
            ):
                code = None  # a caught error's reason, or a function's own reason parameter, passed on
            else:
                code = None
                self.unreadable.append(f"{'.'.join(self.scope)} line {node.lineno}")
            if code is not None:
                self.raisers.setdefault(code, set()).add(".".join(self.scope))
        self.generic_visit(node)


def raisers_by_syntax_tree() -> tuple[dict[str, set[str]], list[str]]:
    """``{code: {"module.Class.function", ...}}`` for each literal reason in chain/, and calls of unclear reason."""
    classes = _error_classes()
    raisers: dict[str, set[str]] = {}
    unreadable: list[str] = []
    for path in sorted(CHAIN.glob("*.py")):
        finder = _RaiseFinder(path.stem, classes)
        finder.visit(ast.parse(path.read_text()))
        for code, where in finder.raisers.items():
            raisers.setdefault(code, set()).update(where)
        unreadable += finder.unreadable
    return raisers, unreadable


def _rule_rows() -> dict[str, list[str]]:
    rows = {}
    for cells in _rows(_section(RULES, "reason-codes")):
        assert len(cells) == 5, f"a reason row needs 5 cells: {cells}"
        code = _code(cells[0])
        assert code not in rows, f"{code} is listed twice"
        rows[code] = cells
    return rows


def test_reason_regex_agrees_with_the_syntax_tree():
    raisers, unreadable = raisers_by_syntax_tree()
    assert unreadable == [], "reason codes must be literal strings (or a caught error's .reason)"
    assert reasons_by_regex() == set(raisers)
    assert {"bad-encoding", "bad-txnmrklroot", "time-too-new", "trusted-tip-not-found"} <= set(raisers)


def test_every_reason_code_is_documented_and_every_documented_code_is_raised():
    raised = reasons_by_regex()
    documented = set(_rule_rows())
    assert sorted(raised - documented) == [], "raised in chain/ but missing from docs/consensus-rules.md"
    assert sorted(documented - raised) == [], "in docs/consensus-rules.md but raised nowhere in chain/"


def _resolve(dotted: str) -> object:
    """``module.Class.attr`` under ``chain``, or AssertionError."""
    module_name, *attrs = dotted.split(".")
    obj: object = importlib.import_module(f"chain.{module_name}")
    for attr in attrs:
        assert hasattr(obj, attr), f"chain.{dotted} does not exist"
        obj = getattr(obj, attr)
    return obj


def test_documented_raisers_exist_and_include_every_raising_function():
    raisers, _ = raisers_by_syntax_tree()
    for code, cells in _rule_rows().items():
        named = set(re.findall(r"`([a-z_]+(?:\.[A-Za-z_]+)+)`", cells[1]))
        for dotted in named:
            _resolve(dotted)
        missing = raisers[code] - named
        assert not missing, f"{code}: the 'raised by' column does not name {sorted(missing)}"


def test_documented_test_files_assert_their_codes():
    for code, cells in _rule_rows().items():
        files = re.findall(r"`(tests/[\w/]+\.py)`", cells[4])
        assert files or cells[4] == "—", f"{code}: the tests column is neither files nor —"
        for name in files:
            path = REPO / name
            assert path.is_file(), f"{code}: {name} does not exist"
            text = path.read_text()
            assert f'"{code}"' in text or f"'{code}'" in text, f"{name} never mentions {code}"


# ---------------------------------------------------------------- (b) test vectors


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


def _base58check(payload: bytes) -> str:
    """Textbook Base58Check, independent of the base58 package."""
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    data = payload + _sha256d(payload)[:4]
    number, text = int.from_bytes(data, "big"), ""
    while number:
        number, digit = divmod(number, 58)
        text = alphabet[digit] + text
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + text


def _display(h: bytes) -> str:
    return h[::-1].hex()


def compute_vectors() -> dict[str, str]:
    """The vectors of protocol.md §9 and §14, built field by field with hashlib and struct where possible."""
    secret1, secret2 = bytes([1]) * 32, bytes([2]) * 32
    pubkey1 = public_key(secret1)
    pkh1, pkh2 = _hash160(pubkey1), _hash160(public_key(secret2))
    genesis = REGTEST.genesis_block
    assert genesis is not None

    block1 = solve_block(build_block(genesis.hash, 1, genesis.header.time + 1, genesis.header.bits, pkh1, 50 * COIN))
    coinbase = block1.transactions[0]
    expected_coinbase = (
        struct.pack("<I", 1)
        + varint(1)
        + bytes(32)
        + struct.pack("<I", 0xFFFFFFFF)
        + bytes(33)
        + struct.pack("<IQ", 1, 0)
        + bytes(52)
        + varint(1)
        + struct.pack("<q", 50 * COIN)
        + pkh1
    )
    assert coinbase.serialize() == expected_coinbase
    funding_txid = _sha256d(expected_coinbase)

    outpoint = funding_txid + struct.pack("<I", 0)
    amounts = ((20 * COIN, pkh2), (30 * COIN - 10_000, pkh1))
    outputs = b"".join(struct.pack("<q", amount) + pkh for amount, pkh in amounts)
    preimage = (
        REGTEST.magic
        + struct.pack("<I", 1)
        + _sha256d(outpoint)
        + _sha256d(outputs)
        + struct.pack("<I", 0)
        + outpoint
        + struct.pack("<q", 50 * COIN)
        + pkh1
    )
    digest = _sha256d(preimage)
    signature = sign(secret1, digest)
    spend = struct.pack("<I", 1) + varint(1) + outpoint + pubkey1 + signature + varint(2) + outputs

    tx = Transaction(
        1,
        (TxIn(OutPoint(funding_txid, 0), pubkey1, signature),),
        tuple(TxOut(amount, pkh) for amount, pkh in amounts),
    )
    assert tx.serialize() == spend
    assert signature_hash(tx, 0, coinbase.outputs[0], REGTEST.magic) == digest

    leaves = [_sha256d(bytes([i])) for i in range(3)]
    left, right = _sha256d(leaves[0] + leaves[1]), _sha256d(leaves[2] + leaves[2])
    return {
        "merkle-leaves": "".join(_display(leaf) for leaf in leaves),
        "merkle-root": _display(_sha256d(left + right)),
        "merkle-branch-2": _display(leaves[2]) + _display(left),
        "regtest-genesis-block": genesis.serialize().hex(),
        "regtest-genesis-hash": _display(_sha256d(genesis.serialize()[:80])),
        "secret-1": secret1.hex(),
        "pubkey-1": pubkey1.hex(),
        "pubkey-hash-1": pkh1.hex(),
        "pubkey-hash-2": pkh2.hex(),
        "address-1-regtest": _base58check(b"\x6f" + pkh1),
        "address-1-devnet": _base58check(b"\x1c" + pkh1),
        "address-1-bitcoin": _base58check(b"\x00" + pkh1),
        "regtest-block-1": block1.serialize().hex(),
        "regtest-block-1-hash": _display(_sha256d(block1.serialize()[:80])),
        "funding-txid": _display(funding_txid),
        "sighash-preimage-0": preimage.hex(),
        "sighash-digest-0": digest.hex(),
        "signature-0": signature.hex(),
        "spend-tx": spend.hex(),
        "spend-txid": _display(_sha256d(spend)),
    }


@pytest.fixture(scope="module")
def doc_vectors() -> dict[str, str]:
    return _doc_vectors()


def test_vectors_in_protocol_md_match_the_code(doc_vectors):
    assert doc_vectors == compute_vectors()


def test_vectors_agree_with_chain_functions(doc_vectors):
    pkh1 = bytes.fromhex(doc_vectors["pubkey-hash-1"])
    for network in (REGTEST, DEVNET, BITCOIN):
        assert encode_address(pkh1, network) == doc_vectors[f"address-1-{network.name}"]
    leaves = [_sha256d(bytes([i])) for i in range(3)]
    assert hash_to_hex(merkle_root(leaves)) == doc_vectors["merkle-root"]
    assert merkle_root(leaves) == merkle_root([*leaves, leaves[2]])  # the CVE-2012-2459 ambiguity
    proof = merkle_proof(leaves, 2)
    assert "".join(hash_to_hex(h) for h in proof.branch) == doc_vectors["merkle-branch-2"]
    assert proof.verify(merkle_root(leaves))
    block1 = Block.parse(bytes.fromhex(doc_vectors["regtest-block-1"]))
    assert block1.hash_hex == doc_vectors["regtest-block-1-hash"]
    check_block(block1, REGTEST)
    tx = Transaction.parse(bytes.fromhex(doc_vectors["spend-tx"]))
    assert hash_to_hex(tx.txid) == doc_vectors["spend-txid"]
    assert len(bytes.fromhex(doc_vectors["sighash-preimage-0"])) == 140
    verify(tx.inputs[0].pubkey, tx.inputs[0].signature, bytes.fromhex(doc_vectors["sighash-digest-0"]))


def test_snippet_in_protocol_md_prints_the_vectors(doc_vectors):
    result = subprocess.run(
        [sys.executable, "-c", _doc_snippet()], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    printed = {}
    for line in result.stdout.splitlines():
        name, _, value = line.partition(": ")
        printed[name] = "".join(value.split())
    assert printed == doc_vectors


def test_signature_vector_is_rfc6979_and_low_s(doc_vectors):
    """python-ecdsa's RFC 6979 signer (not libsecp256k1) gives the same signature once s is made low."""
    key = ecdsa.SigningKey.from_string(bytes.fromhex(doc_vectors["secret-1"]), curve=ecdsa.SECP256k1)
    digest = bytes.fromhex(doc_vectors["sighash-digest-0"])
    raw = key.sign_digest_deterministic(digest, hashfunc=hashlib.sha256, sigencode=sigencode_string)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    s = min(s, SECP256K1_ORDER - s)
    assert r.to_bytes(32, "big") + s.to_bytes(32, "big") == bytes.fromhex(doc_vectors["signature-0"])
    assert s <= HALF_ORDER


def test_vector_transaction_is_spendable_from_height_11_on_regtest(tmp_path, doc_vectors):
    """The worked transaction, mined for real: refused at height 10 (maturity), connected at height 11."""
    genesis_time = REGTEST.genesis_header.time
    chain = ChainState(REGTEST, tmp_path / "chain.sqlite", clock=lambda: float(genesis_time + 3600))
    try:
        builder = ChainBuilder(REGTEST)
        block1 = builder.record(Block.parse(bytes.fromhex(doc_vectors["regtest-block-1"])))
        chain.accept_block(block1)
        for block in builder.add_chain(8):
            chain.accept_block(block)
        assert chain.height == 9
        tx = Transaction.parse(bytes.fromhex(doc_vectors["spend-tx"]))

        too_early = builder.next_block(transactions=[tx], fees=10_000)
        with pytest.raises(ValidationError) as exc:
            chain.accept_block(too_early)
        assert exc.value.reason == "bad-txns-premature-spend-of-coinbase"
        assert chain.height == 9

        chain.accept_block(builder.add_block())
        block11 = builder.add_block(transactions=[tx], fees=10_000)
        update = chain.accept_block(block11)
        assert [b.hash for b in update.connected] == [block11.hash]
        assert chain.height == 11
        pkh2 = bytes.fromhex(doc_vectors["pubkey-hash-2"])
        assert chain.get_coin(OutPoint(tx.txid, 0)) == Coin(20 * COIN, pkh2, 11, False)
        assert chain.get_coin(OutPoint(block1.transactions[0].txid, 0)) is None
    finally:
        chain.close()


def test_coinbase_maturity_boundary_matches_the_text(doc_vectors):
    """protocol.md §11: a coinbase of height c is spendable at height h exactly when h - c >= coinbase_maturity."""
    tx = Transaction.parse(bytes.fromhex(doc_vectors["spend-tx"]))
    coin = Coin(50 * COIN, bytes.fromhex(doc_vectors["pubkey-hash-1"]), 1, True)
    with pytest.raises(TransactionError) as exc:
        check_tx_inputs(tx, [coin], 1 + REGTEST.coinbase_maturity - 1, REGTEST)
    assert exc.value.reason == "bad-txns-premature-spend-of-coinbase"
    assert check_tx_inputs(tx, [coin], 1 + REGTEST.coinbase_maturity, REGTEST) == 10_000


def test_vector_block_1_connects_with_its_coinbase_height(doc_vectors):
    block1 = Block.parse(bytes.fromhex(doc_vectors["regtest-block-1"]))
    view = CoinView(lambda _: None)
    assert connect_block(block1, 1, view, REGTEST) == []
    with pytest.raises(ValidationError) as exc:
        connect_block(block1, 2, CoinView(lambda _: None), REGTEST)
    assert exc.value.reason == "bad-cb-height"


def test_merkle_root_is_checked_before_the_other_block_rules(tmp_path):
    """consensus-rules.md: a transaction list not committed to by the header cannot condemn the header."""
    genesis_time = REGTEST.genesis_header.time
    builder = ChainBuilder(REGTEST)
    genuine = builder.add_block()
    coinbase = genuine.transactions[0]
    other_coinbase = builder.next_block().transactions[0]
    mutations = [(), (coinbase, coinbase), (coinbase, other_coinbase), (other_coinbase,)]
    chain = ChainState(REGTEST, tmp_path / "chain.sqlite", clock=lambda: float(genesis_time + 3600))
    try:
        for transactions in mutations:
            with pytest.raises(ValidationError) as exc:
                chain.accept_block(Block(genuine.header, transactions))
            assert exc.value.reason == "bad-txnmrklroot"
        chain.accept_block(genuine)
        assert chain.height == 1
    finally:
        chain.close()


def test_no_transaction_is_64_bytes():
    """protocol.md §6 and §9: the size formula, and 64 is not a possible size."""
    txin = TxIn(OutPoint(bytes(range(32)), 7), bytes(33), bytes(64))
    txout = TxOut(1, bytes(20))
    sizes = set()
    for n_in in range(3):
        for n_out in range(6):
            tx = Transaction(1, (txin,) * n_in, (txout,) * n_out)
            assert tx.size == 4 + len(varint(n_in)) + 133 * n_in + len(varint(n_out)) + 28 * n_out
            sizes.add(tx.size)
    assert sorted(s for s in sizes if s < 139) == [6, 34, 62, 90, 118]
    assert min(s for s in sizes if s >= 139) == 139
    assert 64 not in sizes


# ---------------------------------------------------------------- (c) tables


def test_constants_table_matches_the_code():
    rows = _rows(_section(PROTOCOL, "constants"))
    assert len(rows) >= 10
    for cells in rows:
        dotted, value = _code(cells[0]), _code(cells[1])
        module, _, name = dotted.rpartition(".")
        assert getattr(importlib.import_module(module), name) == int(value, 0), dotted


def _parse_target(cell: str) -> int | None:
    if cell == "-":
        return None
    match = re.fullmatch(r"(0x[0-9a-f]+)(?: << (\d+))?", cell)
    assert match, f"cannot read target {cell!r}"
    return int(match.group(1), 16) << int(match.group(2) or 0)


def test_compact_examples_match_the_code():
    rows = _rows(_section(PROTOCOL, "compact-examples"))
    assert len(rows) >= 8
    for cells in rows:
        bits = int(_code(cells[0]), 16)
        target, negative, overflow = decode_compact(bits)
        expected_target = _parse_target(_code(cells[1]))
        if expected_target is not None:
            assert target == expected_target, cells
        assert negative == (cells[2] == "yes") and overflow == (cells[3] == "yes"), cells
        encoded = _code(cells[4])
        if encoded != "-":
            assert encode_compact(target) == int(encoded, 16), cells
        assert block_work(bits) == int(_code(cells[5])), cells


def test_retarget_examples_match_the_code():
    rows = _rows(_section(PROTOCOL, "retarget-examples"))
    assert len(rows) >= 6
    for cells in rows:
        params = get_network(_code(cells[0]))
        prev_height, prev_bits = int(_code(cells[1])), int(_code(cells[2]), 16)
        first, last = int(_code(cells[3])), int(_code(cells[4]))
        times = {prev_height - (params.retarget_interval - 1): first, prev_height: last}
        assert next_work_required(params, prev_height, prev_bits, times.__getitem__) == int(_code(cells[5]), 16), cells


def _param_value(params: NetworkParams, label: str) -> object:
    if label == "genesis_block":
        if params.genesis_block is None:
            return None
        return params.genesis_block.transactions[0].inputs[0].signature[12:].rstrip(b"\0").decode("ascii")
    value: object = params
    for attr in label.split("."):
        value = getattr(value, attr)
    return value


def _matches(value: object, cell: str) -> bool:
    if value is None:
        return cell == "None"
    if isinstance(value, bytes):
        return cell == (hash_to_hex(value) if len(value) == 32 else value.hex())
    if isinstance(value, bool) or not isinstance(value, int):
        return cell == str(value)
    return int(cell, 0) == value


def test_network_parameter_table_matches_chain_params():
    section = _section(PROTOCOL, "params")
    header = [cell.strip() for cell in section.splitlines()[0].strip("|").split("|")]
    assert header[1:4] == list(NETWORKS)
    rows = _rows(section)
    labels = set()
    for cells in rows:
        label = _code(cells[0])
        labels.add(label)
        for params, cell in zip(NETWORKS.values(), cells[1:4], strict=True):
            value = _param_value(params, label)
            assert _matches(value, _code(cell)), f"{label} of {params.name}: table says {cell}, code has {value!r}"
    fields = {field.name for field in dataclasses.fields(NetworkParams)}
    assert fields <= {label.split(".")[0] for label in labels}, "every NetworkParams field needs a row"
    required = {"genesis_header.hash", "magic", "address_version", "max_future_block_time", "coinbase_maturity"}
    assert required | {"retarget_interval"} <= labels
