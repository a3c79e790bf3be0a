"""Synthetic long recordings for `agcn watch`: people doing one action after another, and the
windows to train a model that reads any stretch of an action (data_specs/synthetic.md, "Scenes").

From `agcn synth`'s NTU-format bodies (`synth.generate`, bodies selected as the mmaction2 recipe
does): an action of a person is several samples of that action and performer, one after another;
a scene puts each person's actions one after another, people side by side. A model that has only
seen whole samples, each starting at rest, has never seen a window that begins mid-action; windows
cut at random from such stretches teach it, as sliding windows will show it. Both are written as
MMAction2/pyskl annotation files of raw NTU-25 keypoints (metres), which `agcn preprocess` and
`agcn watch` read as they read any `.pkl`.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_output
from .ntu import NTU60_XSUB_TRAIN, parse_skeleton
from .pkl import LABEL_NAMES_KEY, write_annotation_file
from .recipes import select_bodies_mmaction2
from .synth import SynthConfig, generate

SCENE_SPACING = 1.2  # metres between people, side by side (x)


@dataclass
class Truth:
    """Who did what when, in a scene."""

    person: int
    start: int
    end: int  # inclusive
    action: int  # NTU action id (1-based)


def scene_bodies(raw: Path, actions: Sequence[int], samples_per_class: int = 12, seed: int = 0,
                 min_frames: int = 100, max_frames: int = 140) -> dict[tuple[int, bool], list[np.ndarray]]:  # fmt: skip
    """{(action, held-out performer): [(T, 25, 3) bodies]}: synthetic samples written to `raw` (the
    frontal camera, no Kinect artefacts), person 0 of each, without the first quarter of its frames:
    a synthetic sample starts at rest and eases into its action over that quarter, and a stretch of
    an action is the action, not a return to rest every sample."""
    generate(raw, SynthConfig(actions=tuple(actions), samples_per_class=samples_per_class, min_frames=min_frames,
                              max_frames=max_frames, cameras=(1,), artefacts=False, seed=seed, workers=1))  # fmt: skip
    out: dict[tuple[int, bool], list[np.ndarray]] = {}
    for f in sorted(raw.glob("*.skeleton")):
        action, performer = int(f.name[17:20]), int(f.name[9:12])
        body = select_bodies_mmaction2(parse_skeleton(f))[0]
        out.setdefault((action, performer not in NTU60_XSUB_TRAIN), []).append(body[len(body) // 4 :])
    return out


def write_windows(path: Path, bodies: dict, actions: Sequence[int], names: Sequence[str], window: int,
                  per_class: int, seed: int = 0) -> None:  # fmt: skip
    """A training annotation file of windows of `window` frames cut at random from each action's
    samples (those at least that long): split 'train' from the training performers, 'val' from the held-out
    ones (a quarter as many); labels 0.. in the order of `actions`, `names` their names."""
    rng = np.random.default_rng(seed)
    annotations, split = [], {"train": [], "val": []}
    for label, action in enumerate(actions):
        for held_out in (False, True):
            samples = [b for b in bodies[(action, held_out)] if len(b) >= window]
            for k in range(per_class // 4 if held_out else per_class):
                body = samples[int(rng.integers(len(samples)))]
                s = int(rng.integers(0, len(body) - window + 1))
                name = f"A{action:03d}-{'val' if held_out else 'train'}-{k:03d}"
                annotations.append({"frame_dir": name, "total_frames": window, "label": label,
                                    "keypoint": body[None, s : s + window].copy()})  # fmt: skip
                split["val" if held_out else "train"].append(name)
    write_annotation_file(path, {"split": split, "annotations": annotations, LABEL_NAMES_KEY: list(names)})


def make_scene(bodies: dict, plan: Sequence[Sequence[int]], per_action: int = 2,
               ) -> tuple[np.ndarray, list[Truth]]:  # fmt: skip
    """(keypoint (P, T, 25, 3), truth): person p does the actions `plan[p]` one after another, each
    `per_action` held-out samples long, person p shifted SCENE_SPACING * p metres along x; a person
    whose actions end earlier is absent (zeros) after them."""
    people, truth = [], []
    used = dict.fromkeys({a for actions in plan for a in actions}, 0)
    for p, actions in enumerate(plan):
        parts, t = [], 0
        for action in actions:
            pool = bodies[(action, True)]
            chunk = np.concatenate([pool[(used[action] + i) % len(pool)] for i in range(per_action)])
            used[action] += per_action
            truth.append(Truth(p, t, t + len(chunk) - 1, action))
            parts.append(chunk)
            t += len(chunk)
        people.append(np.concatenate(parts) + np.array([SCENE_SPACING * p, 0, 0], np.float32))
    length = max(len(x) for x in people)
    keypoint = np.zeros((len(people), length, 25, 3), np.float32)
    for p, x in enumerate(people):
        keypoint[p, : len(x)] = x
    return keypoint, truth


def write_scene(path: Path, keypoint: np.ndarray, name: str = "scene") -> None:
    """One annotation (no label: it holds several actions) in an annotation file."""
    ann = {"frame_dir": name, "total_frames": keypoint.shape[1], "keypoint": keypoint}
    write_annotation_file(path, {"split": {"scenes": [name]}, "annotations": [ann]})


DEMO_ACTIONS = (10, 22, 23)  # clapping, cheer up, hand waving: sustained, clearly distinct
DEMO_NAMES = ("clapping", "cheer up", "hand waving")
DEMO_WINDOW = 40


def write_demo(folder: Path) -> list[Truth]:
    """`make watch-demo`'s inputs in `folder`: windows.pkl (to train on), scene.pkl (two people, three
    actions each, one after another, in different orders), scene.jsonl (the same scene as the live
    stream `agcn watch -` reads) and truth.json (who did what when)."""
    import json

    folder = Path(folder)
    bodies = scene_bodies(folder / "raw", DEMO_ACTIONS)
    write_windows(folder / "windows.pkl", bodies, DEMO_ACTIONS, DEMO_NAMES, DEMO_WINDOW, per_class=45)
    keypoint, truth = make_scene(bodies, [list(DEMO_ACTIONS), list(DEMO_ACTIONS[::-1])], per_action=1)
    write_scene(folder / "scene.pkl", keypoint)
    lines = [json.dumps({"frame": t, "people": [{"id": p, "keypoints": keypoint[p, t].round(5).tolist()}
                                                 for p in range(len(keypoint)) if keypoint[p, t].any()]})
             for t in range(keypoint.shape[1])]  # fmt: skip
    with atomic_output(folder / "scene.jsonl") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    named = [{"person": t.person, "start": t.start, "end": t.end, "name": DEMO_NAMES[DEMO_ACTIONS.index(t.action)]}
             for t in truth]  # fmt: skip
    with atomic_output(folder / "truth.json") as tmp:
        tmp.write_text(json.dumps(named, indent=1))
    return truth
