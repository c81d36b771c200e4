"""Scenario files (TOML) and the deterministic schedule they expand to.

A scenario names its nodes (with hash shares and roles), a topology, timed events and
what to measure. ``schedule(scenario, seed)`` turns it into a list of ``Step`` s, every
one at a fixed offset from the start: the lab-driven miner's blocks (exponential
inter-block times of mean ``block_interval``, each block given to a node drawn by hash
share) merged with the scenario's events (``every`` expanded). Only ``random.Random(seed)``
is used, so the same scenario and seed give the same schedule, byte for byte.

A ``[quick]`` table overrides top-level keys for the shortened form the test suite runs.
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("network", "double-spend", "selfish")
ROLES = ("honest", "attacker", "byzantine", "skewed", "observer")
TOPOLOGIES = ("full", "line", "ring", "star")
ACTIONS = (
    "partition",
    "heal",
    "delay",
    "skew",
    "crash",
    "restart",
    "byzantine",
    "honest",
    "sync",
    "mine",
    "pay",
)


class ScenarioError(ValueError):
    """A scenario file that cannot be run, with what is wrong in it."""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    hash_share: float = 1.0
    role: str = "honest"
    fork_choice: str = "work"


@dataclass(frozen=True)
class Event:
    at: float
    action: str
    args: tuple[tuple[str, Any], ...] = ()
    every: float = 0.0
    until: float = 0.0

    def arg(self, name: str, default: Any = None) -> Any:
        return dict(self.args).get(name, default)


@dataclass(frozen=True)
class Step:
    """One thing the runner does at ``at`` seconds after the start: ``mine`` a block on ``node``, or an event."""

    at: float
    action: str
    node: str = ""
    args: tuple[tuple[str, Any], ...] = ()

    def arg(self, name: str, default: Any = None) -> Any:
        return dict(self.args).get(name, default)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    kind: str
    network: str
    seed: int
    duration: float
    block_interval: float
    nodes: tuple[NodeSpec, ...]
    topology: str
    links: tuple[tuple[str, str], ...]
    events: tuple[Event, ...]
    prefix_blocks: int
    settle: float
    measure: tuple[tuple[str, Any], ...] = ()
    experiment: tuple[tuple[str, Any], ...] = ()
    path: Path | None = field(default=None, compare=False)

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise ScenarioError(f"{self.name}: no node named {name!r}")

    @property
    def honest(self) -> list[str]:
        return [n.name for n in self.nodes if n.role == "honest"]

    def measure_value(self, name: str, default: Any) -> Any:
        return dict(self.measure).get(name, default)

    def experiment_value(self, name: str, default: Any) -> Any:
        return dict(self.experiment).get(name, default)

    def link_pairs(self) -> list[tuple[str, str]]:
        """Who connects to whom (the first of each pair makes the outbound connection)."""
        if self.links:
            return list(self.links)
        names = [n.name for n in self.nodes if n.role != "attacker" or self.kind == "network"]
        if self.topology == "full":
            return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        if self.topology == "line":
            return list(zip(names[1:], names[:-1], strict=True))
        if self.topology == "ring":
            return list(zip(names, names[1:] + names[:1], strict=True)) if len(names) > 2 else self._line(names)
        return [(b, names[0]) for b in names[1:]]  # star around the first node

    @staticmethod
    def _line(names: list[str]) -> list[tuple[str, str]]:
        return list(zip(names[1:], names[:-1], strict=True))


def _frozen(table: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    def freeze(key: str, value: Any) -> Any:
        if key == "groups":
            return tuple(tuple(group) for group in value)
        return tuple(value) if isinstance(value, list) else value

    return tuple(sorted((k, freeze(k, v)) for k, v in table.items()))


def _number(data: Mapping[str, Any], key: str, default: float, low: float = 0.0) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise ScenarioError(f"{key} must be a number >= {low}, not {value!r}")
    return float(value)


def parse_scenario(
    data: Mapping[str, Any],
    *,
    quick: bool = False,
    path: Path | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Scenario:
    """Check and freeze a decoded scenario.

    With ``quick`` the ``[quick]`` table overrides top-level keys; ``settings`` (the
    command line's ``--set``) override after that: ``{"block_interval": 4}`` or, for a
    key of a table, ``{"experiment.trials": 10}``.
    """
    data = dict(data)
    overrides = data.pop("quick", {})
    if quick:
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
    for key, value in (settings or {}).items():
        table, _, inner = key.rpartition(".")
        if table:
            if not isinstance(data.get(table, {}), dict) or "." in table:
                raise ScenarioError(f"--set {key}: {table!r} is not a table of the scenario")
            data[table] = {**data.get(table, {}), inner: value}
        else:
            data[key] = value
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ScenarioError("a scenario needs a name")
    kind = data.get("kind", "network")
    if kind not in KINDS:
        raise ScenarioError(f"{name}: kind must be one of {', '.join(KINDS)}")
    network = data.get("network", "devnet")
    if network not in ("devnet", "regtest"):
        raise ScenarioError(f"{name}: the lab runs devnet or regtest nodes, not {network!r}")
    nodes = []
    for raw in data.get("nodes", []):
        spec = NodeSpec(
            name=str(raw["name"]),
            hash_share=_number(raw, "hash", 1.0),
            role=raw.get("role", "honest"),
            fork_choice=raw.get("fork_choice", data.get("fork_choice", "work")),
        )
        if spec.role not in ROLES:
            raise ScenarioError(f"{name}: node {spec.name} has role {spec.role!r}, not one of {', '.join(ROLES)}")
        if spec.fork_choice not in ("work", "length"):
            raise ScenarioError(f"{name}: fork_choice is 'work' or 'length'")
        if spec.fork_choice == "length" and network != "devnet":
            raise ScenarioError(f"{name}: fork choice by length is a devnet-only teaching switch")
        nodes.append(spec)
    if len(nodes) < 2 or len({n.name for n in nodes}) != len(nodes):
        raise ScenarioError(f"{name}: a scenario needs at least two nodes with distinct names")
    names = {n.name for n in nodes}
    topology = data.get("topology", "full")
    if topology not in TOPOLOGIES:
        raise ScenarioError(f"{name}: topology must be one of {', '.join(TOPOLOGIES)}")
    links = tuple((str(a), str(b)) for a, b in data.get("links", []))
    for a, b in links:
        if a not in names or b not in names:
            raise ScenarioError(f"{name}: link {a}-{b} names an unknown node")
    events = []
    for raw in data.get("events", []):
        raw = dict(raw)
        at = _number(raw, "at", 0.0)
        action = raw.pop("action", None)
        if action not in ACTIONS:
            raise ScenarioError(f"{name}: event action {action!r} is not one of {', '.join(ACTIONS)}")
        every = _number(raw, "every", 0.0)
        until = _number(raw, "until", 0.0)
        for key in ("at", "every", "until"):
            raw.pop(key, None)
        for key in ("node", "nodes", "from", "to"):
            named = raw.get(key, [])
            for member in named if isinstance(named, list) else [named]:
                if member not in names and not (key == "to" and action == "pay"):
                    raise ScenarioError(f"{name}: event {action} at {at}s names unknown node {member!r}")
        for group in raw.get("groups", []):
            for member in group:
                if member not in names:
                    raise ScenarioError(f"{name}: partition group names unknown node {member!r}")
        events.append(Event(at, action, _frozen(raw), every, until))
    return Scenario(
        name=name,
        description=str(data.get("description", "")).strip(),
        kind=kind,
        network=network,
        seed=int(data.get("seed", 1)),
        duration=_number(data, "duration", 30.0, 0.1),
        block_interval=_number(data, "block_interval", 2.0, 0.01),
        nodes=tuple(nodes),
        topology=topology,
        links=links,
        events=tuple(sorted(events, key=lambda e: e.at)),
        prefix_blocks=int(data.get("prefix_blocks", 12)),
        settle=_number(data, "settle", 30.0),
        measure=_frozen(data.get("measure", {})),
        experiment=_frozen(data.get("experiment", {})),
        path=path,
    )


def load_scenario(path: str | Path, *, quick: bool = False, settings: Mapping[str, Any] | None = None) -> Scenario:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    return parse_scenario(data, quick=quick, path=path, settings=settings)


def parse_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--set``, the value written as in TOML: ``block_interval=0.5``, ``experiment.shares=[0.3]``."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError(f"--set takes KEY=VALUE, not {text!r}")
    try:
        return key, tomllib.loads(f"value = {value.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        raise ScenarioError(f"--set {key}: {value!r} is not a TOML value (quote strings)") from None


def mining_steps(scenario: Scenario, rng: random.Random) -> list[Step]:
    """Blocks of the lab-driven miner: Poisson arrivals of rate 1/block_interval, finder drawn by hash share."""
    miners = [n for n in scenario.nodes if n.hash_share > 0]
    weights = [n.hash_share for n in miners]
    steps: list[Step] = []
    if not miners:
        return steps  # every block is an explicit ``mine`` event
    t = rng.expovariate(1.0 / scenario.block_interval)
    while t < scenario.duration:
        finder = rng.choices(miners, weights)[0]
        steps.append(Step(round(t, 6), "mine", finder.name))
        t += rng.expovariate(1.0 / scenario.block_interval)
    return steps


def event_steps(scenario: Scenario) -> list[Step]:
    steps = []
    for event in scenario.events:
        node = event.arg("node", event.arg("from", ""))
        times = [event.at]
        if event.every > 0:
            end = event.until or scenario.duration
            t = event.at + event.every
            while t < end:
                times.append(t)
                t += event.every
        steps.extend(Step(round(t, 6), event.action, node, event.args) for t in times)
    return steps


def schedule(scenario: Scenario, seed: int | None = None) -> list[Step]:
    """The whole timed plan of a ``network`` scenario, sorted by time (events before blocks at equal times)."""
    rng = random.Random(scenario.seed if seed is None else seed)
    steps = event_steps(scenario) + mining_steps(scenario, rng)
    order = {action: i for i, action in enumerate(ACTIONS)}
    return sorted(steps, key=lambda s: (s.at, order.get(s.action, len(order)), s.node))


def race(seed: int, trial: int, share: float, blocks: int, salt: str = "") -> list[bool]:
    """Who finds each of the next ``blocks`` blocks in one trial of an attack: True for the attacker.

    Seeded by ``(seed, salt, trial, share)`` so each trial of each setting is reproducible on its own.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"a hash share is in [0, 1], not {share}")
    rng = random.Random(f"{seed}/{salt}/{trial}/{share:.6f}")
    return [rng.random() < share for _ in range(blocks)]
