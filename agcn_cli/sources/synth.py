"""Synthetic NTU RGB+D `.skeleton` files: articulated bodies, several subjects, cameras and
classes, two-person actions and Kinect artefacts, in the real text format.

The full NTU data cannot be downloaded here, so these files are the demo's and the tests' data;
the parser, body selection, pre-normalisation and training run on them as on real files.

- Body: the 25-joint Kinect skeleton driven by joint angles (shoulder raise, abduction and
  swing, elbow, hip, knee, torso bend and lean, head nod, body yaw, root translation). Positions are
  the spine base plus the sum of the bone vectors on each joint's path, `paths @ bones`: one
  matrix product per sample, no loop over joints or frames. Bone lengths are fixed per
  performer id (height x0.88-1.12, each bone x0.94-1.06), and so is a small style bias
  (amplitude, tempo), so cross-subject testing means new bodies and new styles.
- Scene: Kinect camera space (metres, x to the sensor's left, y up, z away from it). Camera 1
  is frontal, 2 and 3 at -45 / +45 degrees; the setup id fixes distance (2.6-3.4 m), height
  and tilt.
- Classes: hand-made angle trajectories for the ids in `synth_body.HAND_MADE_ACTIONS`, a fixed random mix of
  angle oscillations for any other id; ids 50-60 and 106-120 are two-person classes. Each
  sample varies duration, time warp, amplitude, oscillation frequency and phase, facing, and
  adds slow idle motion.
- Defaults: 8 classes, most clearly distinct, with hard pairs (sit down / stand up is one
  motion reversed in time; hand waving / pointing differ in one oscillation; punching /
  handshaking are both two-person approaches), 40-80 frames, 40 samples per class: few and
  short enough for a CPU training run to show learning within minutes.
- Artefacts (`artefacts=True`): joint jitter, inferred joints, frames with no body, late
  entries and early exits, tracking-id switches, ghost bodies (wide flat spreads or static
  blobs), rare bystanders, body order swapping between slots. Rates: `data_specs/synthetic.md`.

Each file gets its own random generator seeded by (seed, name fields), so a file does not depend on the other
files of the set or on the number of worker processes. Names on the NTU missing-skeleton lists
are never produced, since `agcn preprocess` would drop them.
"""

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..io.atomic import atomic_output, remove_stale_temps_in
from ..specs import spec_path
from .ntu import NUM_JOINTS, read_name_list
from .pipeline import map_in_pool
from .synth_body import (
    HANDS_FEET,
    LEAVES,
    PARENT,
    Style,
    action_angles,
    hip_height,
    idle_sway,
    pose,
    rx,
    ry,
    smooth,
    subject_lengths,
)

MUTUAL_ACTIONS = frozenset(range(50, 61)) | frozenset(range(106, 121))
_BASE_ID = 72057594037927936  # 2**56: Kinect v2 body ids look like 72057594037931101


@dataclass(frozen=True)
class SynthConfig:
    actions: tuple[int, ...] = (8, 9, 23, 24, 27, 31, 50, 58)  # NTU action ids (1-based); label = id - 1
    subjects: tuple[int, ...] = (1, 2, 4, 5, 8, 3, 6, 7)  # performers: xsub train 1 2 4 5 8, test 3 6 7
    cameras: tuple[int, ...] = (1, 2, 3)  # NTU cameras: 1 frontal, 2 and 3 at -45 / +45 degrees
    setups: tuple[int, ...] = (1, 2, 3, 4)  # setup ids 1-32 (NTU120 from 18): distance, height, tilt
    samples_per_class: int = 40  # files per action
    min_frames: int = 40  # shortest sequence (real NTU: about 30-300 frames)
    max_frames: int = 80  # longest sequence; short clips keep CPU training fast
    seed: int = 0  # same seed, same files
    artefacts: bool = True  # Kinect jitter, dropped frames, late/early bodies, ghosts, slot swaps
    workers: int = 0  # processes for large sets (the conversion pipeline's pool); 0: one per core


def _check(config: SynthConfig) -> None:
    if not config.actions:
        raise AgcnError("synth: no action ids given")
    bad = [a for a in config.actions if not 1 <= a <= 120]
    if bad:
        raise AgcnError(f"synth: action id {bad[0]} is outside 1..120")
    if len(set(config.actions)) != len(config.actions):
        raise AgcnError(f"synth: action ids must be distinct, got {config.actions}")
    if not 1 <= config.min_frames <= config.max_frames <= 300:
        raise AgcnError(
            f"synth: frame range {config.min_frames}..{config.max_frames} must satisfy 1 <= min <= max <= 300"
        )
    for field, values, top in (("subjects", config.subjects, 999), ("cameras", config.cameras, 3),
                               ("setups", config.setups, 32)):  # fmt: skip
        if not values or any(not 1 <= v <= top for v in values):
            raise AgcnError(f"synth: {field} must be ids in 1..{top}, got {values}")
    if config.samples_per_class < 1:
        raise AgcnError(f"synth: samples_per_class must be at least 1, got {config.samples_per_class}")
    if config.seed < 0 or config.workers < 0:
        raise AgcnError(f"synth: seed and workers must be >= 0, got {config.seed} and {config.workers}")
    combos = len(set(config.subjects)) * len(set(config.cameras)) * len(set(config.setups)) * 2
    if config.samples_per_class > combos:
        raise AgcnError(
            f"synth: {config.samples_per_class} samples per class need more distinct names than "
            f"subjects x cameras x setups x 2 replications = {combos}; add subjects or setups"
        )


def sample_names(config: SynthConfig) -> list[str]:
    """The file stems that `generate` writes, in order.

    Per action, names are picked greedily from the unused (subject, camera, setup, replication)
    combinations, each time one whose fields are least used so far (random among ties): every
    performer, camera, setup and replication gets an even share, so both sides of the xsub,
    xview and xset splits hold every class.
    """
    _check(config)
    missing = read_name_list(spec_path("ntu120_missing.txt"))  # a superset of the NTU60 list
    axes = [sorted(set(config.subjects)), sorted(set(config.cameras)), sorted(set(config.setups)), [1, 2]]
    shape = tuple(len(a) for a in axes)
    names = []
    for action in config.actions:
        rng = np.random.default_rng([config.seed, action, 7919])
        free = np.ones(shape, bool)
        counts = [np.zeros(n) for n in shape]
        picked = []
        while len(picked) < config.samples_per_class and free.any():
            # how far each combination's fields are above their fair share; ties broken at random
            score = rng.random(shape) * 0.9
            for k, (count, n) in enumerate(zip(counts, shape, strict=True)):
                score = score + (count * n).reshape([-1 if j == k else 1 for j in range(4)])
            score[~free] = np.inf
            idx = np.unravel_index(int(np.argmin(score)), shape)
            free[idx] = False
            p, c, s, r = (axes[k][i] for k, i in enumerate(idx))
            name = f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{action:03d}"
            if name in missing:
                continue
            for k, i in enumerate(idx):
                counts[k][i] += 1
            picked.append(name)
        if len(picked) < config.samples_per_class:
            raise AgcnError(f"synth: not enough distinct names for A{action:03d}; add subjects or setups")
        names += sorted(picked)
    return names


def generate(
    out_dir: Path, config: SynthConfig, progress: Callable[[int], None] | None = None, *, overwrite: bool = False
) -> list[Path]:
    """Write the configured `.skeleton` files into `out_dir`; return their paths in name order.

    Files of other names in `out_dir` are left alone; a file this would write that is already
    there is refused (before anything is written) unless `overwrite`."""
    names = sample_names(config)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AgcnError(f"{out_dir}: a file, not a folder; choose a folder for the .skeleton files")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        present = {e.name for e in os.scandir(out_dir)} if not overwrite else set()
    except OSError as e:
        raise AgcnError(f"{out_dir}: cannot create directory ({e.strerror})") from None
    clash = [name for name in names if f"{name}.skeleton" in present]
    if clash:
        raise AgcnError(
            f"{out_dir}: already holds {len(clash)} of the {len(names)} files this would write "
            f"({clash[0]}.skeleton{', ...' if len(clash) > 1 else ''}); pass --overwrite to replace them, "
            "or choose another folder"
        )
    remove_stale_temps_in(out_dir)  # once: a listing per file would cost n^2 on large sets
    jobs = [(out_dir, name, config) for name in names]
    paths = []
    for path in map_in_pool(_write_one, jobs, config.workers):  # each file its own generator: any order of work
        if progress:
            progress(1)
        paths.append(path)
    return paths


def _write_one(job: tuple[Path, str, SynthConfig]) -> Path:
    out_dir, name, config = job
    fields = [int(name[k : k + 3]) for k in (1, 5, 9, 13, 17)]  # S C P R A
    rng = np.random.default_rng([config.seed, *fields, 104729])
    text = render(simulate(name, config, rng), rng, reorder=config.artefacts)
    path = out_dir / f"{name}.skeleton"
    try:
        with atomic_output(path, sweep=False) as tmp:
            tmp.write_text(text, newline="")
    except OSError as e:
        raise AgcnError(f"{path}: cannot write ({e.strerror})") from None
    return path


# ---- one sample -------------------------------------------------------------------------------

# Two-person placement: distance between the two roots (m) before and after the approach, which
# takes the first 45 % of the action (the whole action for walking, A059 and A060).
_GAP = {50: (1.5, 0.7), 51: (1.6, 0.85), 52: (1.4, 0.75), 55: (1.5, 0.45), 58: (1.5, 0.75),
        59: (3.4, 0.9), 60: (0.9, 3.4)}  # fmt: skip


def _body_ids(rng: np.random.Generator) -> Iterator[int]:
    """Kinect body ids: 2**56 plus a counter that grows as the sensor meets new bodies."""
    body_id = _BASE_ID + int(rng.integers(1000, 90000))
    while True:
        body_id += int(rng.integers(1, 60))
        yield body_id


@dataclass
class Track:
    body_id: int
    xyz: np.ndarray  # (T, 25, 3) camera space, metres
    present: np.ndarray  # (T,) bool
    inferred: np.ndarray  # (T, 25) bool: Kinect trackingState 1 (inferred) instead of 2 (tracked)


def _camera(setup: int, camera: int) -> tuple[np.ndarray, np.ndarray]:
    """World -> camera rotation (3, 3) and the camera position (3,) in the world."""
    srng = np.random.default_rng([setup, 99])
    distance, height, tilt = srng.uniform(2.6, 3.4), srng.uniform(0.7, 1.1), srng.uniform(-0.05, 0.15)
    view = {1: 0.0, 2: -np.pi / 4, 3: np.pi / 4}[camera]
    # the camera orbits the action area (the world origin) and looks at it, tilted down by `tilt`
    rot = rx(np.array(-tilt)) @ ry(np.array(view))
    position = -rot.T @ np.array([0.0, -height, distance])  # camera space origin in the world
    return rot, position


def simulate(name: str, config: SynthConfig, rng: np.random.Generator) -> list[Track]:
    """The body tracks of one file in Kinect camera space."""
    setup, camera, subject, _, action = (int(name[k : k + 3]) for k in (1, 5, 9, 13, 17))
    T = int(rng.integers(config.min_frames, config.max_frames + 1))
    bias = np.random.default_rng([subject, 4242]).uniform(0.9, 1.1, 2)  # the performer's own style
    start, span = rng.uniform(0.0, 0.12), rng.uniform(0.75, 0.88)  # the action inside the clip
    u = np.clip((np.arange(T) / max(T - 1, 1) - start) / span, 0.0, 1.0) ** np.exp(rng.normal(0, 0.15))
    style = Style(amp=bias[0] * rng.uniform(0.85, 1.15), freq=bias[1] * rng.uniform(2.5, 4.0),
                  phase=rng.uniform(0, 2 * np.pi))  # fmt: skip
    mutual = action in MUTUAL_ACTIONS
    offset = np.array([rng.uniform(-0.3, 0.3), 0.0, rng.uniform(-0.3, 0.3)])  # where on the floor
    facing = np.pi + rng.normal(0, 0.15)
    partner = 41 + subject % 40  # a second performer id for person 1's body
    ids = _body_ids(rng)
    tracks = []
    for person in range(2 if mutual else 1):
        angles = idle_sway(rng, T)
        for key, value in action_angles(action, u, style, person).items():
            angles[key] = angles[key] + value
        lengths = subject_lengths(subject if person == 0 else partner)
        body = pose(angles, lengths)  # (T, 25, 3) body frame
        yaw, x = facing, np.zeros(T)  # yaw pi: facing the frontal camera
        if mutual:  # side by side to the frontal camera, facing each other (A060: turned away)
            g0, g1 = _GAP.get(action, (1.5, 0.8))
            gap = g0 + (g1 - g0) * (smooth(u) if action in (59, 60) else smooth(u / 0.45))
            side = -1.0 if person == 0 else 1.0  # person 0 stands at -x and faces +x
            yaw = facing - np.pi - side * np.pi / 2 + (np.pi if action == 60 else 0.0)
            x = side * gap / 2
        turn = ry(np.array(yaw))
        step = np.stack([angles["tx"], np.zeros(T), angles["tz"]], -1) @ turn.T  # body-frame translation
        root = np.stack([x, hip_height(lengths) + angles["ty"], np.zeros(T)], -1) + step + offset  # floor: y = 0
        world = body @ turn.T + root[:, None]
        cam = _to_camera(world, setup, camera)
        tracks.append(Track(next(ids), cam, np.ones(T, bool), np.zeros((T, NUM_JOINTS), bool)))
    if config.artefacts:
        _add_artefacts(tracks, rng, ids, setup, camera)
    return tracks


def _to_camera(world: np.ndarray, setup: int, camera: int) -> np.ndarray:
    rot, position = _camera(setup, camera)
    return np.einsum("ij,...j->...i", rot, world - position)


def _add_artefacts(tracks: list[Track], rng: np.random.Generator, ids: Iterator[int], setup: int, camera: int) -> None:
    T = len(tracks[0].present)
    for track in tracks:
        track.xyz = track.xyz + rng.normal(0, 0.004, track.xyz.shape)  # sensor jitter
        track.xyz[:, HANDS_FEET] += rng.normal(0, 0.012, (T, len(HANDS_FEET), 3))  # noisy extremities
        # occluded joints: Kinect guesses them (trackingState 1), a few cm off
        p = np.where(np.isin(np.arange(NUM_JOINTS), HANDS_FEET), 0.06, 0.02)
        track.inferred = rng.random((T, NUM_JOINTS)) < p
        track.xyz[track.inferred] += rng.normal(0, 0.03, (int(track.inferred.sum()), 3))
        if rng.random() < 0.15:  # enters late or leaves early
            cut = int(rng.integers(1, max(2, T // 6)))
            if rng.random() < 0.5:
                track.present[:cut] = False
            else:
                track.present[-cut:] = False
    for track in list(tracks):  # Kinect loses the person and finds them again under a new id
        if rng.random() < 0.05 and T >= 8:
            t0 = int(rng.integers(T // 4, 3 * T // 4))
            gap = int(rng.integers(0, 3))
            second = Track(next(ids), track.xyz, track.present.copy(), track.inferred)
            second.present[: t0 + gap] = False
            track.present[t0:] = False
            tracks.append(second)
    if rng.random() < 0.04:  # a bystander standing still at the back for a while
        lengths = subject_lengths(int(rng.integers(200, 999)))
        still = pose(idle_sway(rng, T, 0.5), lengths) @ ry(np.array(np.pi + rng.normal(0, 0.5))).T
        spot = np.array([rng.uniform(-1.2, 1.2), hip_height(lengths), rng.uniform(1.0, 1.6)])
        xyz = _to_camera(still + spot, setup, camera) + rng.normal(0, 0.005, (T, NUM_JOINTS, 3))
        present = np.zeros(T, bool)
        t0 = int(rng.integers(0, T // 2 + 1))
        present[t0 : t0 + int(rng.integers(T // 3, T + 1))] = True
        tracks.append(Track(next(ids), xyz, present, np.zeros((T, NUM_JOINTS), bool)))
    for _ in range(rng.poisson(0.35)):  # short-lived ghosts near the actor
        life = int(rng.integers(1, 11))
        t0 = int(rng.integers(0, max(1, T - life)))
        centre = tracks[0].xyz[t0, 0] + [rng.uniform(-0.8, 0.8), rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3)]
        if rng.random() < 0.6:  # a wide, flat spread (x-extent > y-extent), new every frame
            blob = centre + rng.normal(0, 1, (T, NUM_JOINTS, 3)) * [0.35, 0.06, 0.2]
        else:  # a static blob (a chair, a coat) with jitter
            blob = centre + rng.normal(0, 0.12, (NUM_JOINTS, 3)) + rng.normal(0, 0.01, (T, NUM_JOINTS, 3))
        present = np.zeros(T, bool)
        present[t0 : t0 + life] = True
        inferred = rng.random((T, NUM_JOINTS)) < 0.5
        tracks.append(Track(next(ids), blob, present, inferred))
    dropped = rng.random(T) < 0.02  # frames where the sensor reports no body at all
    for track in tracks:
        track.present &= ~dropped


# ---- text -------------------------------------------------------------------------------------

_JOINT_LINE = "%.7g %.7g %.7g %.7g %.7g %.7g %.7g %.7g %.7g %.7g %.7g %d"
_BLOCK = "\r\n".join([_JOINT_LINE] * NUM_JOINTS)


def _orientations(xyz: np.ndarray) -> np.ndarray:
    """(T, 25, 4) joint orientation quaternions (w, x, y, z) as Kinect reports them: the bone
    ending at the joint is the local y axis, the hip line fixes x; leaves are all zeros."""
    bone = xyz - xyz[:, PARENT]
    bone[:, 0] = xyz[:, 1] - xyz[:, 0]  # the spine base takes the spine's direction
    y = bone / np.maximum(np.linalg.norm(bone, axis=-1, keepdims=True), 1e-9)
    hips = (xyz[:, 12] - xyz[:, 16])[:, None]
    x = hips - (hips * y).sum(-1, keepdims=True) * y
    x /= np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)
    z = np.cross(x, y)
    m = np.stack([x, y, z], -1)  # columns are the local axes
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    q = 0.5 * np.sqrt(np.maximum(0, np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                                              1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)))  # fmt: skip
    q[..., 1] *= np.sign(m[..., 2, 1] - m[..., 1, 2])
    q[..., 2] *= np.sign(m[..., 0, 2] - m[..., 2, 0])
    q[..., 3] *= np.sign(m[..., 1, 0] - m[..., 0, 1])
    q[:, LEAVES] = 0.0
    return q


def render(tracks: list[Track], rng: np.random.Generator, reorder: bool = False) -> str:
    """The `.skeleton` text of the tracks (CRLF line ends, as the released files).

    `reorder`: in 30 % of files with several bodies, the first two slots swap for a while, as
    Kinect's body list order is not stable."""
    T = len(tracks[0].present)
    swap = np.zeros(T, bool)
    if reorder and sum(t.present.any() for t in tracks) > 1 and rng.random() < 0.3:
        t0 = int(rng.integers(0, T))
        swap[t0 : t0 + int(rng.integers(1, max(2, T // 3)))] = True
    cols, heads = [], []
    for track in tracks:
        xyz = track.xyz
        z = np.maximum(xyz[..., 2], 0.5)
        depth = np.stack([256 + 365 * xyz[..., 0] / z, 212 - 365 * xyz[..., 1] / z], -1)
        color = np.stack([960 + 1050 * (xyz[..., 0] + 0.05) / z, 540 - 1050 * xyz[..., 1] / z], -1)
        state = np.where(track.inferred, 1, 2)[..., None]
        cols.append(np.concatenate([xyz, depth, color, _orientations(xyz), state], -1))  # (T, 25, 12)
        spine = xyz[:, 20] - xyz[:, 0]
        lean = np.clip(np.stack([-spine[:, 0], -spine[:, 2]], -1) / 0.5, -1, 1)  # leanX, leanY
        heads.append([f"{track.body_id} 0 1 1 1 1 0 {a:.7g} {b:.7g} 2" for a, b in lean])
    lines = [str(T)]
    for t in range(T):
        order = [k for k in range(len(tracks)) if tracks[k].present[t]]
        if swap[t] and len(order) >= 2:
            order[0], order[1] = order[1], order[0]
        lines.append(str(len(order)))
        for k in order:
            lines += (heads[k][t], "25", _BLOCK % tuple(cols[k][t].ravel()))
    return "\r\n".join(lines) + "\r\n"
