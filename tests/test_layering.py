"""Dependencies point one way: chain/ imports nothing web- or CLI-related, nor node/ or wallet/.

And every reason code that chain/ raises is asserted by some test, so no rule goes untested.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BLOCKER = """
import importlib.abc, sys
FORBIDDEN = {"flask", "werkzeug", "waitress", "click", "requests", "urllib3", "node", "wallet"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"chain/ must not import {name}")
sys.meta_path.insert(0, Block())
import pkgutil, importlib, chain
for module in pkgutil.iter_modules(chain.__path__):
    importlib.import_module(f"chain.{module.name}")
print("ok", len(list(pkgutil.iter_modules(chain.__path__))))
"""


def test_chain_imports_nothing_from_the_web_or_cli_world() -> None:
    result = subprocess.run([sys.executable, "-c", BLOCKER], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")
    assert int(result.stdout.split()[1]) >= 15


REASON = re.compile(r'(?:Error\(|_fail\(\s*\w+,)\s*"([a-z0-9-]+)"')


def reason_codes() -> set[str]:
    codes = set()
    for source in (REPO / "chain").glob("*.py"):
        codes |= set(REASON.findall(source.read_text()))
    return codes


def test_every_reason_code_is_asserted_by_a_test() -> None:
    codes = reason_codes()
    assert {"bad-txnmrklroot", "high-hash", "bad-cb-amount", "bad-header-length"} <= codes  # the regex still works
    tests = "".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py") if p.name != "test_layering.py")
    untested = sorted(code for code in codes if f'"{code}"' not in tests)
    assert not untested, f"reason codes no test asserts: {untested}"
