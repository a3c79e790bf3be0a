"""Pose estimators' joint orders mapped onto a layout by joint name (`data_specs/keypoint_sources.json`).

An estimator's output (BlazePose's 33 landmarks, OpenPose's BODY_25 or COCO-18) is turned into a
layout's joints by gathering, for each joint of the layout, the estimator's joint of the same name:
`points[..., source_index(source, layout), :]`. The names are the only table; nothing else lists
which index is which.
"""

import json
from functools import cache

import numpy as np

from ..errors import AgcnError
from ..specs import spec_path
from .layouts import Layout

SOURCES_FILE = "keypoint_sources.json"


@cache
def _sources() -> dict[str, tuple[str, ...]]:
    raw = json.loads(spec_path(SOURCES_FILE).read_text())
    return {name: tuple(entry["joint_names"]) for name, entry in raw.items() if not name.startswith("_")}


def source_names() -> tuple[str, ...]:
    """The estimators' joint orders agcn knows."""
    return tuple(_sources())


def source_joints(source: str) -> tuple[str, ...]:
    """Joint names of `source`, in its output order."""
    if source not in _sources():
        raise AgcnError(f"unknown keypoint source {source!r}; choose one of: {', '.join(_sources())}")
    return _sources()[source]


def source_index(source: str, layout: Layout) -> np.ndarray:
    """(V,) int64: for each joint of `layout`, its index in `source`'s output."""
    names = source_joints(source)
    missing = [j for j in layout.joint_names if j not in names]
    if missing:
        raise AgcnError(
            f"keypoint source {source!r} has no joint {missing[0]!r} of layout {layout.name!r} "
            f"({len(missing)} of {layout.num_joints} missing)"
        )
    return np.array([names.index(j) for j in layout.joint_names], dtype=np.int64)
