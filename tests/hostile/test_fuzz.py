"""Bounded fuzzing inside the suite: hypothesis drives the targets of fuzz/targets.py, and one short atheris run.

Every deserializer (transactions, blocks, headers, undo data, varints, addresses,
hex hashes, wallet files) gets arbitrary bytes and mutations of valid objects; the
HTTP API gets arbitrary methods, paths, query strings, peer headers and bodies
through Flask's test client on a real node. The only acceptable outcomes are a
result that round-trips or a clean rejection (our exception types; a 4xx with a
JSON error): the targets raise ``Finding`` or let anything else escape otherwise.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import targets
from tests.conftest import REPO

SEEDS = targets.seeds()
BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn, name: str) -> bytes:
    """A valid object of the target, then a few byte flips, insertions, deletions or truncations."""
    data = bytearray(draw(st.sampled_from(SEEDS[name])))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "extend"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=9))
        elif kind == "delete" and data:
            del data[position : position + draw(st.integers(1, 9))]
        elif kind == "truncate":
            del data[position:]
        else:
            data += draw(st.binary(min_size=1, max_size=9))
    return bytes(data)


BYTE_TARGETS = ["transaction", "block", "header", "undo", "varint", "address", "hash", "wallet"]


@pytest.mark.parametrize("name", BYTE_TARGETS)
def test_arbitrary_bytes_are_rejected_cleanly(name: str) -> None:
    target: Callable[[bytes], None] = targets.TARGETS[name]

    @BOUNDED
    @given(st.binary(max_size=400))
    def run(data: bytes) -> None:
        target(data)

    run()


@pytest.mark.parametrize("name", BYTE_TARGETS)
def test_mutated_valid_objects_are_rejected_cleanly_or_round_trip(name: str) -> None:
    target = targets.TARGETS[name]

    @BOUNDED
    @given(mutated(name))
    def run(data: bytes) -> None:
        target(data)

    run()


def test_every_seed_is_accepted_by_its_decoder() -> None:
    """The seeds are valid objects, so mutations of them explore the decoders' accepting paths too."""
    from chain.address import decode_address
    from chain.block import Block, BlockHeader
    from chain.hashes import hex_to_hash
    from chain.params import REGTEST
    from chain.transaction import Transaction
    from chain.utxo import parse_undo

    decoders: dict[str, Callable[[bytes], Any]] = {
        "transaction": Transaction.parse,
        "block": Block.parse,
        "header": BlockHeader.parse,
        "undo": parse_undo,
        "address": lambda d: decode_address(d.decode(), REGTEST),
        "hash": lambda d: hex_to_hash(d.decode()),
    }
    for name, decode in decoders.items():
        for data in SEEDS[name]:
            decode(data)


def test_a_finding_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The targets do fail on what they must find: here an encoder that disagrees with the decoder."""
    monkeypatch.setattr(targets, "varint", lambda n: b"\xfd" + n.to_bytes(2, "little"))
    with pytest.raises(targets.Finding, match="non-canonical"):
        targets.varints(b"\x05")


# ---------------------------------------------------------------- HTTP

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
FIELDS = ["hex", "url", "blocks", "transactions", "address", "network", "magic", "genesis", "protocol", "nonce"]
json_objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), json_values, max_size=6)
bodies = (
    json_objects.map(lambda o: json.dumps(o).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=300)
)
QUERY_KEYS = ["start", "limit", "locator", "ban", "x"]
queries = st.lists(
    st.tuples(st.sampled_from(QUERY_KEYS), st.text(max_size=40) | st.integers().map(str)), max_size=4
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)) | st.text(max_size=60)
segments = st.text(max_size=80) | st.sampled_from(["0", "-1", "99999999999999999999", "ab" * 32, "00" * 32, "x/raw"])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(targets.METHODS),
    route=st.sampled_from(targets.ROUTES),
    segment=segments,
    query=queries,
    body=bodies,
    peer=st.none() | st.text(max_size=60) | st.just("http://127.0.0.1:9"),
)
def test_http_requests_get_an_answer_or_a_json_error(
    method: str, route: str, segment: str, query: str, body: bytes, peer: str | None
) -> None:
    targets.http_request(method, route, segment, query.replace("\0", ""), body, peer)


# ---------------------------------------------------------------- atheris


@pytest.mark.slow
def test_atheris_bounded_run_finds_no_crash() -> None:
    """``python -m fuzz`` (what scripts/fuzz runs): every target under atheris for 2 seconds."""
    done = subprocess.run(
        [sys.executable, "-m", "fuzz", "--seconds", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,  # only so a hung run fails; no assertion on speed
        check=False,
    )
    assert done.returncode == 0, f"fuzz exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    lines = [line for line in done.stdout.splitlines() if " executions " in line]
    assert [line.split()[0] for line in lines] == list(targets.TARGETS)
    assert all(line.split()[-1] == "ok" and int(line.split()[1]) > 0 for line in lines), done.stdout
    assert "no crash" in done.stdout.splitlines()[-1]
