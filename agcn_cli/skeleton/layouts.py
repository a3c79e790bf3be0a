"""Skeleton layouts: joints, graph edges, bone pairs and centre, from `data_specs/layouts/`.

This is the one place the skeleton topology is defined; the graph, the bone stream and the
normalisation all read it from here. All indices are 0-based.
"""

import json
from dataclasses import dataclass
from functools import cache

import numpy as np

from ..errors import AgcnError
from ..specs import spec_dir, spec_path


@dataclass(frozen=True)
class Layout:
    name: str
    joint_names: tuple[str, ...]  # index -> joint name
    channels: tuple[str, ...]  # channel names, e.g. ("x", "y", "z") or ("x", "y", "score")
    center: int  # centre joint of the graph (spine-shoulder for NTU, nose for COCO)
    graphs: dict[str, tuple[tuple[int, int], ...]]  # graph variant -> inward edges (child, parent)
    bones: tuple[tuple[int, int], ...]  # (child, parent) per joint; bone[child] = x[child] - x[parent]
    normalize: dict | None  # 3D pre-normalisation joints: origin, z_axis (a, b), x_axis (a, b)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def edges(self, variant: str | None = None) -> tuple[tuple[int, int], ...]:
        """Inward edges of the graph `variant` (default: the first one listed)."""
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


def available_layouts() -> list[str]:
    return sorted(p.stem for p in (spec_dir() / "layouts").glob("*.json"))


@cache
def get_layout(name: str) -> Layout:
    if name not in available_layouts():
        raise AgcnError(f"unknown layout {name!r}; choose one of: {', '.join(available_layouts())}")
    raw = json.loads(spec_path("layouts", f"{name}.json").read_text())
    layout = Layout(
        name=raw["name"],
        joint_names=tuple(raw["joint_names"]),
        channels=tuple(raw["channels"]),
        center=int(raw["center"]),
        graphs={k: tuple((int(a), int(b)) for a, b in v) for k, v in raw["graphs"].items()},
        bones=tuple((int(a), int(b)) for a, b in raw["bones"]),
        normalize=raw.get("normalize"),
    )
    _check(layout)
    return layout


def _check(layout: Layout) -> None:
    v = layout.num_joints
    children = [c for c, _ in layout.bones]
    if sorted(children) != list(range(v)):
        raise AgcnError(f"layout {layout.name}: bone table must list every joint once as a child")
    for variant, edges in layout.graphs.items():
        for a, b in edges:
            if not (0 <= a < v and 0 <= b < v):
                raise AgcnError(f"layout {layout.name}: graph {variant} edge ({a}, {b}) is out of range 0..{v - 1}")
