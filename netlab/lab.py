"""Build the lab's network namespaces, run the scenario inside them, and always tear everything down.

Topology (``N`` nodes, addresses in 10.77.0.0/24, which exist only inside the lab's
namespaces; nothing is added to the host's own network namespace but the TAP devices'
file descriptors, held by the scenario process)::

    <run>-n0  eth0 10.77.0.11 --\\
    <run>-n1  eth0 10.77.0.12 ---+-- switch (netlab.switch: delay, loss, partition between nodes)
    ...                          |
    <run>-ctl eth0 10.77.0.250 --/   (the scenario's control port: never delayed, dropped or cut)

Each ``eth0`` is a TAP device created here, moved into its namespace and renamed. The
scenario (``netlab.scenario``) runs under ``ip netns exec <run>-ctl`` with the TAP
descriptors, in its own session; on any exit (success, failure, Ctrl-C, SIGTERM) that
session is killed and the namespaces deleted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from netlab.switch import open_tap

log = logging.getLogger("netlab")

REPO = Path(__file__).resolve().parents[1]
SUBNET = "10.77.0"
CONTROL_ADDRESS = f"{SUBNET}.250"
PREFIX = "cairnlab"


class LabError(Exception):
    """The machine cannot host the lab; the message says why."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise LabError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


def preflight() -> None:
    """Refuse clearly unless root with ``ip`` (iproute2), network namespaces and /dev/net/tun."""
    if os.geteuid() != 0:
        raise LabError("netlab needs root (it creates network namespaces and TAP devices); run it as root")
    if shutil.which("ip") is None:
        raise LabError("netlab needs the ip command: apt-get install iproute2")
    if not os.path.exists("/dev/net/tun"):
        raise LabError("netlab needs /dev/net/tun (a kernel with CONFIG_TUN)")


def stale_namespaces() -> list[str]:
    """Lab namespaces whose creating process is gone (a lab killed with SIGKILL cannot clean up)."""
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    stale = []
    for line in done.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX) :].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            stale.append(name)
    return stale


class Lab:
    """The namespaces and TAP devices of one run."""

    def __init__(self, nodes: int) -> None:
        self.run_id = f"{PREFIX}{os.getpid()}"
        self.node_namespaces = [f"{self.run_id}-n{i}" for i in range(nodes)]
        self.control_namespace = f"{self.run_id}-ctl"
        self.namespaces: list[str] = []
        self.fds: list[int] = []

    def address(self, index: int) -> str:
        return f"{SUBNET}.{11 + index}"

    def build(self) -> None:
        for name in stale_namespaces():
            log.info("removing stale namespace %s", name)
            subprocess.run(["ip", "netns", "del", name], check=False)
        ports = [(ns, self.address(i)) for i, ns in enumerate(self.node_namespaces)]
        ports.append((self.control_namespace, CONTROL_ADDRESS))
        for number, (namespace, address) in enumerate(ports):
            _ip("netns", "add", namespace)
            self.namespaces.append(namespace)
            tap = f"cl{os.getpid() % 10**7}t{number}"
            self.fds.append(open_tap(tap))
            _ip("link", "set", tap, "netns", namespace)
            _ip("-n", namespace, "link", "set", tap, "name", "eth0")
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        log.info("built %d namespaces: %s", len(self.namespaces), ", ".join(self.namespaces))

    def teardown(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        for namespace in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)
        self.namespaces = []


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_lab(config: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Build the lab, run the scenario in it, tear it down; the scenario's figures."""
    preflight()
    lab = Lab(config["nodes_count"])
    scenario: subprocess.Popen[bytes] | None = None
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        lab.build()
        config = dict(config)
        config.update(
            workdir=str(workdir),
            result=str(workdir / "result.json"),
            fds=lab.fds,
            nodes=[{"namespace": ns, "address": lab.address(i)} for i, ns in enumerate(lab.node_namespaces)],
        )
        config_path = workdir / "config.json"
        config_path.write_text(json.dumps(config, indent=2))
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        command = ["ip", "netns", "exec", lab.control_namespace, sys.executable, "-m", "netlab.scenario"]
        scenario = subprocess.Popen(
            [*command, str(config_path)], cwd=REPO, env=env, pass_fds=lab.fds, start_new_session=True
        )
        scenario.wait()
        result_path = workdir / "result.json"
        if not result_path.exists():
            return {"ok": False, "error": f"the scenario exited with {scenario.returncode} and no result"}
        return json.loads(result_path.read_text())  # type: ignore[no-any-return]
    finally:
        if scenario is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(scenario.pid, signal.SIGKILL)  # the scenario and any node it left behind
            scenario.wait()
        lab.teardown()
        signal.signal(signal.SIGTERM, previous)


FULL = {"nodes_count": 6, "partition_seconds": 30.0, "transactions_per_side": 30, "tick_seconds": 1.0}
QUICK = {"nodes_count": 4, "partition_seconds": 8.0, "transactions_per_side": 8, "tick_seconds": 1.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m netlab",
        description="Cairn nodes in network namespaces with delay, loss and a partition; root only.",
    )
    parser.add_argument("--quick", action="store_true", help="4 nodes, an 8 s partition (the in-suite version)")
    parser.add_argument("--nodes", type=int, help="nodes (even, default 6; 4 with --quick)")
    parser.add_argument("--delay-ms", type=int, default=200, help="one-way delay between nodes (default 200)")
    parser.add_argument("--loss", type=float, default=0.05, help="frame loss between nodes, 0-1 (default 0.05)")
    parser.add_argument("--partition-seconds", type=float, help="how long the halves are cut apart (default 30)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep node datadirs and logs in DIR")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    config: dict[str, Any] = dict(QUICK if args.quick else FULL)
    if args.nodes is not None:
        config["nodes_count"] = args.nodes
    if args.partition_seconds is not None:
        config["partition_seconds"] = args.partition_seconds
    if config["nodes_count"] < 2 or config["nodes_count"] % 2 or config["nodes_count"] > 200:
        parser.error("--nodes must be an even number from 2 to 200")
    if not 0 <= args.loss < 1 or args.delay_ms < 0:
        parser.error("--loss is from 0 to below 1 and --delay-ms is not negative")
    config.update(delay_ms=args.delay_ms, loss=args.loss, seed=args.seed)
    try:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            result = run_lab(config, args.keep.resolve())
        else:
            with tempfile.TemporaryDirectory(prefix="cairn-netlab-") as tmp:
                result = run_lab(config, Path(tmp))
    except LabError as exc:
        print(f"netlab: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0 if result.get("ok") else 1
