"""Skeleton layouts: joints, graph edges, bone pairs and centre, from `data_specs/layouts/` or a
user's JSON file (`data_specs/layouts.md`).

This is the one place the skeleton topology is defined; the graph, the bone stream and the
normalisation all read it from here. All indices are 0-based.

A layout travels with the data: split files and checkpoints store its canonical JSON text
(`Layout.spec()`), and `resolve_layout(name, spec)` rebuilds it, so a custom layout needs no
flag after `agcn preprocess --layout FILE`. Built-in layouts are found by name.
"""

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AgcnError
from ..specs import spec_dir, spec_path

LAYOUT_KEYS = ("name", "description", "channels", "joint_names", "center", "graphs", "bones", "normalize")
REQUIRED_KEYS = ("name", "channels", "joint_names", "center", "graphs", "bones")
NORMALIZE_KEYS = ("origin", "z_axis", "x_axis")
# far above any body model (COCO-WholeBody: 133); the model holds V x V adjacencies, so 10^5 joints fill memory
MAX_JOINTS = 1000
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@dataclass(frozen=True)
class Layout:
    name: str
    joint_names: tuple[str, ...]  # index -> joint name
    channels: tuple[str, ...]  # channel names, e.g. ("x", "y", "z") or ("x", "y", "score")
    center: int  # centre joint of the graph (spine-shoulder for NTU, nose for COCO)
    graphs: dict[str, tuple[tuple[int, int], ...]]  # graph variant -> inward edges (child, parent), by name
    bones: tuple[tuple[int, int], ...]  # (child, parent) per joint; bone[child] = x[child] - x[parent]
    normalize: dict | None  # 3D pre-normalisation joints: origin, z_axis (a, b), x_axis (a, b)
    description: str = ""  # free text; not part of the topology (ignored when layouts are compared)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def edges(self, variant: str | None = None) -> tuple[tuple[int, int], ...]:
        """Inward edges of the graph `variant` (default: the first one by name)."""
        if variant is None:
            return next(iter(self.graphs.values()))
        if variant not in self.graphs:
            raise AgcnError(f"layout {self.name} has no graph {variant!r}; choose one of: {', '.join(self.graphs)}")
        return self.graphs[variant]

    def bone_parents(self) -> np.ndarray:
        """(V,) int array: parent joint of each joint for the bone stream."""
        parents = np.arange(self.num_joints)
        for child, parent in self.bones:
            parents[child] = parent
        return parents

    def to_dict(self) -> dict[str, Any]:
        """The layout in its file form (`data_specs/layouts/*.json`)."""
        return {
            "name": self.name,
            "description": self.description,
            "channels": list(self.channels),
            "joint_names": list(self.joint_names),
            "center": self.center,
            "graphs": {k: [list(e) for e in v] for k, v in self.graphs.items()},
            "bones": [list(b) for b in self.bones],
            "normalize": None if self.normalize is None else {k: self.normalize[k] for k in sorted(self.normalize)},
        }

    def spec(self) -> str:
        """Canonical JSON text of the layout (sorted keys, compact): what split files and checkpoints store."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def same_topology(self, other: "Layout") -> bool:
        """Same name, joints, channels, graphs, bones, centre and normalisation (descriptions aside)."""
        a, b = self.to_dict(), other.to_dict()
        a.pop("description"), b.pop("description")
        return a == b


def available_layouts() -> list[str]:
    return sorted(p.stem for p in (spec_dir() / "layouts").glob("*.json"))


@cache
def get_layout(name: str) -> Layout:
    """A built-in layout by name."""
    if name not in available_layouts():
        raise AgcnError(f"unknown layout {name!r}; choose one of: {', '.join(available_layouts())}")
    path = spec_path("layouts", f"{name}.json")
    layout = parse_layout(path.read_text(), str(path))
    if layout.name != name:
        raise AgcnError(f"{path}: names layout {layout.name!r}; a built-in layout's name is its file name")
    return layout


def resolve_layout(name: str, spec: str = "", *, source: str = "") -> Layout:
    """The layout of stored data: built-in `name` when `spec` is "" (files from before layouts were
    stored), else the layout parsed and validated from the JSON text `spec`, which must carry `name`.
    `source` (a file) starts the error lines."""
    if not spec:
        return get_layout(name)
    if name in available_layouts() and get_layout(name).spec() == spec:
        return get_layout(name)
    layout = parse_layout(spec, source or "layout_spec")
    if layout.name != name:
        where = source or "layout_spec"
        raise AgcnError(f"{where}: the stored layout spec is {layout.name!r} but the layout is {name!r}")
    return layout


def load_layout(arg: str) -> Layout:
    """A built-in layout name, or a path to a `.json` layout file (validated; a file may not reuse
    a built-in name for a different skeleton)."""
    arg = str(arg)
    if not (arg.endswith(".json") or "/" in arg or "\\" in arg):
        if arg not in available_layouts():
            raise AgcnError(
                f"unknown layout {arg!r}; choose one of: {', '.join(available_layouts())}, or give a .json layout file"
            )
        return get_layout(arg)
    path = Path(arg)
    if path.is_dir():
        raise AgcnError(f"{path}: is a folder, not a layout file")
    if not path.is_file():
        raise AgcnError(f"{path}: no such layout file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AgcnError(f"{path}: cannot read the layout file ({e})") from None
    layout = parse_layout(text, str(path))
    if layout.name in available_layouts():
        builtin = get_layout(layout.name)
        if not layout.same_topology(builtin):
            raise AgcnError(
                f"{path}: layout name {layout.name!r} is a built-in layout with a different skeleton; "
                "give the file another name"
            )
        return builtin
    return layout


# ---- parsing and validation -----------------------------------------------------------------------


@lru_cache(maxsize=64)
def parse_layout(text: str, source: str) -> Layout:
    """The layout of the JSON text `text`, validated; AgcnError("<source>: <problem>") otherwise."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise AgcnError(f"{source}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise AgcnError(f"{source}: not a layout: its JSON nests too deep to read") from None
    return _validate(raw, source)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _joint(value: object, v: int, where: str, source: str) -> int:
    if not _is_int(value):
        raise AgcnError(f"{source}: {where}: {value!r} is not an integer joint index")
    if not 0 <= value < v:
        raise AgcnError(f"{source}: {where}: unknown joint index {value} (the layout has joints 0..{v - 1})")
    return value


def _names(raw: dict, key: str, source: str) -> tuple[str, ...]:
    value = raw[key]
    if not isinstance(value, list) or not value:
        raise AgcnError(f"{source}: {key!r} must be a non-empty list of names, found {json.dumps(value)[:60]}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise AgcnError(f"{source}: {key}[{i}] must be a non-empty string, found {json.dumps(item)[:60]}")
    seen = set()
    for item in value:
        if item in seen:
            raise AgcnError(f"{source}: {key!r} lists {item!r} twice")
        seen.add(item)
    return tuple(value)


def _pairs(value: object, v: int, where: str, source: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list) or not value:
        raise AgcnError(f"{source}: {where} must be a non-empty list of [a, b] joint pairs")
    pairs = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2:
            raise AgcnError(f"{source}: {where}[{i}] must be a pair [a, b] of joint indices, found {json.dumps(pair)}")
        pairs.append((_joint(pair[0], v, f"{where}[{i}]", source), _joint(pair[1], v, f"{where}[{i}]", source)))
    return tuple(pairs)


def _check_connected(edges: tuple[tuple[int, int], ...], v: int, where: str, source: str) -> None:
    root = list(range(v))

    def find(a: int) -> int:
        while root[a] != a:
            root[a] = root[root[a]]
            a = root[a]
        return a

    for a, b in edges:
        root[find(a)] = find(b)
    apart = [j for j in range(v) if find(j) != find(0)]
    if apart:
        raise AgcnError(
            f"{source}: {where} is disconnected: joint {apart[0]} is not linked to joint 0 "
            f"({len(apart)} joint{'s' if len(apart) > 1 else ''} apart)"
        )


def _check_bone_tree(parents: list[int], source: str) -> None:
    """Following parents from every joint reaches a root (a joint that is its own parent)."""
    state = [0] * len(parents)  # 0 unseen, 1 on the current path, 2 reaches a root
    for start in range(len(parents)):
        path, j = [], start
        while state[j] == 0 and parents[j] != j:
            state[j] = 1
            path.append(j)
            j = parents[j]
        if state[j] == 1:
            cycle = path[path.index(j) :]
            raise AgcnError(
                f"{source}: bones form a cycle {' -> '.join(map(str, [*cycle, j]))}; following the parents from "
                "every joint must reach a root (a joint listed as its own parent)"
            )
        for p in path:
            state[p] = 2
        state[j] = 2


def _validate(raw: object, source: str) -> Layout:
    if not isinstance(raw, dict):
        raise AgcnError(f"{source}: a layout must be a JSON object with keys {', '.join(REQUIRED_KEYS)}")
    unknown = [k for k in raw if k not in LAYOUT_KEYS]
    if unknown:
        raise AgcnError(f"{source}: unknown key {unknown[0]!r}; a layout has: {', '.join(LAYOUT_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise AgcnError(f"{source}: missing key {missing[0]!r}; a layout needs: {', '.join(REQUIRED_KEYS)}")
    name = raw["name"]
    if not isinstance(name, str) or not name or not set(name) <= NAME_CHARS:
        raise AgcnError(f"{source}: 'name' must be a non-empty string of letters, digits, _ . -, found {name!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise AgcnError(f"{source}: 'description' must be a string")
    channels = _names(raw, "channels", source)
    joint_names = _names(raw, "joint_names", source)
    v = len(joint_names)
    if v > MAX_JOINTS:
        raise AgcnError(f"{source}: {v} joints; a layout has at most {MAX_JOINTS}")
    center = _joint(raw["center"], v, "'center'", source)
    return Layout(
        name=name,
        joint_names=joint_names,
        channels=channels,
        center=center,
        graphs=_graphs(raw["graphs"], v, source),
        bones=tuple(sorted(_bones(raw["bones"], v, source))),
        normalize=_normalize(raw.get("normalize"), channels, v, source),
        description=description,
    )


def _graphs(graphs_raw: object, v: int, source: str) -> dict:
    """The layout's graphs: name -> ((child, parent), ...), each connected, no self-loop or repeat."""
    if not isinstance(graphs_raw, dict) or not graphs_raw:
        raise AgcnError(f"{source}: 'graphs' must be a non-empty object: graph name -> list of [child, parent] edges")
    graphs = {}
    for gname in sorted(graphs_raw):  # by name: the canonical spec sorts keys, so the default is the first by name
        if not gname:
            raise AgcnError(f"{source}: a graph name must be a non-empty string")
        where = f"graph {gname!r} edge"
        edges = _pairs(graphs_raw[gname], v, where, source) if v > 1 or graphs_raw[gname] else ()
        for i, (a, b) in enumerate(edges):
            if a == b:
                raise AgcnError(f"{source}: {where}[{i}] [{a}, {b}] links a joint to itself (the identity subset does)")
        undirected = {frozenset(e) for e in edges}
        if len(undirected) != len(edges):
            raise AgcnError(f"{source}: graph {gname!r} lists an edge twice")
        _check_connected(edges, v, f"graph {gname!r}", source)
        graphs[gname] = edges
    return graphs


def _bones(bones_raw: object, v: int, source: str) -> list:
    """The bone pairs (child, parent): one parent a joint, forming a tree."""
    bones = _pairs(bones_raw, v, "bones", source)
    parents = [-1] * v
    for child, parent in bones:
        if parents[child] != -1:
            raise AgcnError(f"{source}: bones list joint {child} twice as a child; give one [child, parent] per joint")
        parents[child] = parent
    if -1 in parents:
        missing = parents.index(-1)
        raise AgcnError(f"{source}: bones give no parent for joint {missing}; give one [child, parent] per joint")
    _check_bone_tree(parents, source)
    return bones


def _normalize(normalize: object, channels: tuple, v: int, source: str) -> dict | None:
    """The 3D pre-normalisation's joints (origin, z and x axes), or None."""
    if normalize is not None:
        if not isinstance(normalize, dict) or set(normalize) != set(NORMALIZE_KEYS):
            raise AgcnError(f"{source}: 'normalize' must be null or an object with exactly {', '.join(NORMALIZE_KEYS)}")
        if len(channels) != 3 or channels[-1] == "score":
            raise AgcnError(f"{source}: 'normalize' is the 3D pre-normalisation; it needs 3 channels x, y, z")
        origin = _joint(normalize["origin"], v, "normalize origin", source)
        axes = {}
        for key in ("z_axis", "x_axis"):
            pair = normalize[key]
            if not isinstance(pair, list) or len(pair) != 2:
                raise AgcnError(f"{source}: normalize {key} must be a pair [a, b] of joint indices")
            a, b = (_joint(j, v, f"normalize {key}", source) for j in pair)
            if a == b:
                raise AgcnError(f"{source}: normalize {key} [{a}, {b}] needs two different joints")
            axes[key] = [a, b]
        normalize = {"origin": origin, **axes}
    return normalize
