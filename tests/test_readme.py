"""README's library example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_readme_python_example_runs(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert blocks, "README lost its library example"
    code = blocks[0].replace("/tmp/cairn-regtest.sqlite", str(tmp_path / "readme.sqlite"))
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("12 [")  # height 12, one block connected
    assert printed[1] == "True"  # the UTXO check passed
