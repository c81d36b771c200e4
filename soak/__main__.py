"""``python -m soak [--kills N] [--seed S] [--json FILE] [--keep DIR]``: the crash soak (see ``soak.crash``).

Exit status 0 when every check passed, 1 on any corruption or lost block.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from soak.crash import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description="SIGKILL cairn-node processes; lose nothing.")
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs to deliver (default 50)")
    parser.add_argument("--nodes", type=int, default=3, help="regtest nodes on loopback (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random moments and scenarios")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep datadirs and logs in DIR (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.kills < 1 or args.nodes < 2:
        parser.error("at least 1 kill and 2 nodes")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args.keep, args.kills, args.seed, args.nodes)
    else:
        with tempfile.TemporaryDirectory(prefix="cairn-soak-") as tmp:
            result = run(Path(tmp), args.kills, args.seed, args.nodes)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
