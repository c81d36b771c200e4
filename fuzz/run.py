"""Run one fuzz target under atheris: ``python -m fuzz.run TARGET [libFuzzer arguments ...]``.

The modules under test are imported inside ``atheris.instrument_imports`` so that
libFuzzer is guided by Python branch coverage. An input that makes the target raise
is a crash: atheris prints the traceback, libFuzzer writes the input to its artifact
prefix, and the process exits non-zero.
"""

from __future__ import annotations

import sys

import atheris


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m fuzz.run TARGET [libFuzzer arguments ...]")
    name = sys.argv[1]
    with atheris.instrument_imports(include=["chain", "node", "wallet", "fuzz"]):
        from fuzz import targets

        if name not in targets.TARGETS:
            raise SystemExit(f"unknown target {name!r}; choose from {', '.join(targets.TARGETS)}")
        if name == "http":
            targets.app()  # imports the node (and Flask) under instrumentation, and builds its chain once
        if name == "wallet":
            import wallet.keystore  # noqa: F401
    atheris.Setup([sys.argv[0], *sys.argv[2:]], targets.TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
