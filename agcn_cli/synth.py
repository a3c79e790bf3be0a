"""Synthetic NTU RGB+D `.skeleton` files: articulated bodies, several subjects, cameras and
classes, two-person actions and Kinect artefacts, in the real text format.

The body is the 25-joint Kinect skeleton driven by joint angles (shoulder raise/abduction,
elbow, hip, knee, torso bend, body yaw, root translation). Joint positions come from one
matrix product per sample: every joint is the root plus the sum of the bone vectors on its
path, `positions = paths @ (lengths * directions)`, so nothing loops over joints or frames.
`data_specs/synthetic.md` lists the classes and artefacts.

Each file gets its own random generator from (seed, action, index), so output is identical
whatever the number of worker processes.
"""

import multiprocessing as mp
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AgcnError

MUTUAL_ACTIONS = frozenset(range(50, 61)) | frozenset(range(106, 121))
NUM_JOINTS = 25

# Kinematic parent of each joint (0-based NTU order). Hand tips and thumbs hang off the hand,
# as the Kinect tracks them; the root is the spine base.
_PARENT = np.array([0, 0, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 1, 7, 7, 11, 11])
# Rest direction of the bone ending at each joint, body frame: x = body's left, y = up, z = forward.
_REST = np.array(
    [[0, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0.15],  # base, spine mid, neck, head
     [1, -0.1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0],  # left shoulder, elbow, wrist, hand
     [-1, -0.1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0],  # right arm
     [1, -0.5, 0], [0, -1, 0], [0, -1, 0], [0, -0.3, 1],  # left hip, knee, ankle, foot
     [-1, -0.5, 0], [0, -1, 0], [0, -1, 0], [0, -0.3, 1],  # right leg
     [0, 1, 0], [0, -1, 0.1], [0.5, -0.7, 0.5], [0, -1, 0.1], [-0.5, -0.7, 0.5]],  # spine sh., tips, thumbs
    dtype=np.float64,
)  # fmt: skip
_REST /= np.maximum(np.linalg.norm(_REST, axis=1, keepdims=True), 1e-9)
# Bone lengths of a 1.70 m adult, metres.
_LENGTH = np.array(
    [0, 0.28, 0.07, 0.14, 0.18, 0.28, 0.25, 0.08, 0.18, 0.28, 0.25, 0.08,
     0.1, 0.42, 0.40, 0.13, 0.1, 0.42, 0.40, 0.13, 0.24, 0.07, 0.05, 0.07, 0.05]
)  # fmt: skip


def _paths() -> np.ndarray:
    """(V, V) 0/1: paths[j, b] = 1 when the bone ending at joint b lies on root -> j."""
    paths = np.zeros((NUM_JOINTS, NUM_JOINTS))
    for j in range(1, NUM_JOINTS):  # once, at import
        k = j
        while k != 0:
            paths[j, k] = 1
            k = _PARENT[k]
    return paths


_PATHS = _paths()
# Which angle drives which bones. Arms: upper arm, forearm (+ hand, tip, thumb follow it).
_UPPER = [1, 2, 3, 4, 8, 20]  # bend with the torso
_L_UPPER_ARM, _L_FOREARM = [5], [6, 7, 21, 22]
_R_UPPER_ARM, _R_FOREARM = [9], [10, 11, 23, 24]
_L_THIGH, _L_SHIN = [13], [14, 15]
_R_THIGH, _R_SHIN = [17], [18, 19]
_HIPS = [12, 16]

ANGLES = ("bend", "l_raise", "l_abd", "l_elbow", "r_raise", "r_abd", "r_elbow",
          "l_hip", "l_knee", "r_hip", "r_knee", "yaw", "tx", "ty", "tz")  # fmt: skip

CLASS_NAMES = {
    8: "sit down", 9: "stand up", 23: "hand waving", 24: "kicking something", 27: "jump up",
    31: "pointing to something with finger", 43: "falling", 50: "punching/slapping other person",
    55: "hugging other person", 58: "handshaking",
}  # fmt: skip


@dataclass(frozen=True)
class SynthConfig:
    actions: tuple[int, ...] = (8, 9, 23, 24, 27, 31, 50, 58)  # NTU action ids (1-based); label = id - 1
    subjects: tuple[int, ...] = (1, 2, 4, 5, 8, 3, 6, 7)  # performers: xsub train 1 2 4 5 8, test 3 6 7
    cameras: tuple[int, ...] = (1, 2, 3)  # NTU cameras: 1 frontal, 2 and 3 at -45 / +45 degrees
    setups: tuple[int, ...] = (1, 2, 3, 4)  # setup ids: camera distance and height vary by setup
    samples_per_class: int = 40  # files per action
    min_frames: int = 40  # shortest sequence (real NTU: 32-300 frames)
    max_frames: int = 80  # longest sequence; short clips keep CPU training fast
    seed: int = 0  # same seed, same files
    artefacts: bool = True  # Kinect jitter, dropped frames, late/early bodies, ghosts, slot swaps
    workers: int = 0  # processes for large sets; 0: one per core


def class_name(action: int) -> str:
    return CLASS_NAMES.get(action, f"procedural action A{action:03d}")


def _check(config: SynthConfig) -> None:
    if not config.actions:
        raise AgcnError("synth: no action ids given")
    bad = [a for a in config.actions if not 1 <= a <= 120]
    if bad:
        raise AgcnError(f"synth: action id {bad[0]} is outside 1..120")
    if len(set(config.actions)) != len(config.actions):
        raise AgcnError("synth: action ids must be distinct")
    if not 1 <= config.min_frames <= config.max_frames <= 300:
        raise AgcnError(
            f"synth: frame range {config.min_frames}..{config.max_frames} must satisfy 1 <= min <= max <= 300"
        )
    for field, values, top in (("subjects", config.subjects, 999), ("cameras", config.cameras, 3),
                               ("setups", config.setups, 32)):  # fmt: skip
        if not values or any(not 1 <= v <= top for v in values):
            raise AgcnError(f"synth: {field} must be ids in 1..{top}, got {values}")
    combos = len(set(config.subjects)) * len(set(config.cameras)) * len(set(config.setups)) * 2
    if config.samples_per_class > combos:
        raise AgcnError(
            f"synth: {config.samples_per_class} samples per class need more distinct names than "
            f"subjects x cameras x setups x 2 replications = {combos}; add subjects or setups"
        )


def sample_names(config: SynthConfig) -> list[str]:
    """The file stems that `generate` writes, in order."""
    _check(config)
    subjects, cameras, setups = sorted(set(config.subjects)), sorted(set(config.cameras)), sorted(set(config.setups))
    names = []
    for action in config.actions:
        rng = np.random.default_rng([config.seed, action, 7919])
        combos = [(s, c, p, r) for r in (1, 2) for s in setups for c in cameras for p in subjects]
        for i in np.sort(rng.permutation(len(combos))[: config.samples_per_class]):
            s, c, p, r = combos[i]
            names.append(f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{action:03d}")
    return names


def generate(out_dir: Path, config: SynthConfig, progress: Callable[[int], None] | None = None) -> list[Path]:
    """Write the configured `.skeleton` files into `out_dir`; return their paths."""
    names = sample_names(config)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AgcnError(f"{out_dir}: cannot create directory ({e.strerror})") from None
    jobs = [(str(out_dir), name, config, index) for index, name in enumerate(names)]
    workers = config.workers or os.cpu_count() or 1
    if workers == 1 or len(jobs) < 64:
        results = map(_write_one, jobs)
        paths = [_tick(p, progress) for p in results]
    else:
        with mp.get_context("fork" if hasattr(os, "fork") else "spawn").Pool(workers) as pool:
            paths = [_tick(p, progress) for p in pool.imap(_write_one, jobs, chunksize=16)]
    return paths


def _tick(path: Path, progress: Callable[[int], None] | None) -> Path:
    if progress:
        progress(1)
    return path


def _write_one(job: tuple[str, str, SynthConfig, int]) -> Path:
    out_dir, name, config, index = job
    action = int(name[-3:])
    rng = np.random.default_rng([config.seed, action, index, 104729])
    text = render(simulate(name, config, rng), rng)
    path = Path(out_dir) / f"{name}.skeleton"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, newline="")
    os.replace(tmp, path)
    return path


# ---- motion ---------------------------------------------------------------------------------


def _smooth(u):
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _bump(u, center, width):
    return np.exp(-0.5 * ((u - center) / width) ** 2)


def _ramp(u, width=0.15):
    """0 -> 1 -> 0: up over the first `width` of the action, down over the last."""
    return _smooth(u / width) * _smooth((1 - u) / width)


def action_angles(action: int, u: np.ndarray, amp: float, freq: float, phase: float, person: int) -> dict:
    """Joint-angle trajectories (radians, metres) of `person` (0 or 1) over phase u in [0, 1]."""
    a = {k: np.zeros_like(u) for k in ANGLES}
    wave = np.sin(2 * np.pi * freq * u + phase)
    if action == 8 or action == 9:  # sit down / stand up: the same motion, reversed in time
        s = _smooth(u) if action == 8 else 1 - _smooth(u)
        a["l_hip"] = a["r_hip"] = 1.4 * amp * s
        a["l_knee"] = a["r_knee"] = 1.5 * amp * s
        a["ty"] = -0.42 * amp * s
        a["bend"] = 0.5 * amp * _bump(u, 0.5, 0.18)
    elif action == 23:  # hand waving: right arm up, forearm swinging side to side
        r = _ramp(u)
        a["r_raise"] = 2.5 * r
        a["r_elbow"] = 0.5 * r
        a["r_abd"] = 0.45 * amp * wave * r
    elif action == 31:  # pointing: right arm forward and held, no oscillation
        r = _ramp(u, 0.25)
        a["r_raise"] = 1.5 * amp * r
        a["r_elbow"] = 0.1 * r
    elif action == 24:  # kicking: fast right-leg swing
        a["r_hip"] = 1.2 * amp * _bump(u, 0.5, 0.1)
        a["r_knee"] = 1.0 * _bump(u, 0.42, 0.08)
        a["bend"] = -0.15 * _bump(u, 0.5, 0.12)
    elif action == 27:  # jump up: crouch, fly, land; arms swing
        a["ty"] = 0.35 * amp * _bump(u, 0.5, 0.09)
        crouch = _bump(u, 0.32, 0.07) + _bump(u, 0.68, 0.07)
        a["l_knee"] = a["r_knee"] = 0.9 * crouch
        a["l_hip"] = a["r_hip"] = 0.6 * crouch
        a["l_raise"] = a["r_raise"] = 1.2 * _bump(u, 0.5, 0.12)
    elif action == 43:  # falling: torso pitches forward, body drops
        s = _smooth((u - 0.2) / 0.6)
        a["bend"] = 1.1 * amp * s
        a["ty"] = -0.75 * s
        a["l_knee"] = a["r_knee"] = 1.4 * s
        a["l_hip"] = a["r_hip"] = 1.2 * s
        a["l_raise"] = a["r_raise"] = 1.3 * s
    elif action == 50:  # punching: person 0 strikes, person 1 recoils
        hit = _bump(u, 0.55, 0.07)
        if person == 0:
            a["r_raise"] = 1.5 * (0.4 + 0.6 * hit) * _ramp(u, 0.2)
            a["r_elbow"] = 1.9 * (1 - hit) * _ramp(u, 0.2)
            a["tz"] = 0.15 * hit
        else:
            a["bend"] = -0.35 * amp * _bump(u, 0.62, 0.1)
            a["tz"] = -0.25 * _smooth((u - 0.55) / 0.2)
    elif action == 55:  # hugging: both close in, arms around each other
        r = _ramp(u, 0.3)
        a["l_raise"] = a["r_raise"] = 1.4 * r
        a["l_abd"] = a["r_abd"] = 0.5 * r
        a["l_elbow"] = a["r_elbow"] = 1.4 * r
    elif action == 58:  # handshaking: right hands meet, forearms shake
        r = _ramp(u, 0.3)
        a["r_raise"] = (0.9 + 0.12 * amp * wave) * r
        a["r_elbow"] = 0.6 * r
    else:  # a procedural class: a fixed random mix of angle oscillations per action id
        crng = np.random.default_rng([action, 2024 + person])
        keys = crng.choice(ANGLES[:11], size=int(crng.integers(2, 5)), replace=False)
        for key in keys:
            f, base, ph = crng.uniform(0.5, 2.5), crng.uniform(0.4, 1.4), crng.uniform(0, 2 * np.pi)
            a[key] = a[key] + base * amp * np.sin(2 * np.pi * f * u + ph) * _ramp(u)
    return a


def _rx(t):
    c, s, z, o = np.cos(t), np.sin(t), np.zeros_like(t), np.ones_like(t)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _ry(t):
    c, s, z, o = np.cos(t), np.sin(t), np.zeros_like(t), np.ones_like(t)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rz(t):
    c, s, z, o = np.cos(t), np.sin(t), np.zeros_like(t), np.ones_like(t)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def pose(angles: dict, lengths: np.ndarray) -> np.ndarray:
    """Body-frame joint positions (T, 25, 3) relative to the spine base, from joint angles."""
    T = len(angles["bend"])
    dirs = np.broadcast_to(_REST, (T, NUM_JOINTS, 3)).copy()

    def turn(joints, rot):  # rotate the rest directions of `joints` by (T, 3, 3)
        dirs[:, joints] = np.einsum("tij,tvj->tvi", rot, dirs[:, joints])

    # forward raise is a rotation about the body's left (x) axis taking "down" to "forward"
    for side, sign, upper, fore in (("l", 1, _L_UPPER_ARM, _L_FOREARM), ("r", -1, _R_UPPER_ARM, _R_FOREARM)):
        turn(fore, _rx(-angles[f"{side}_elbow"]))
        shoulder = np.einsum("tij,tjk->tik", _rz(sign * angles[f"{side}_abd"]), _rx(-angles[f"{side}_raise"]))
        turn(upper + fore, shoulder)
    for side, thigh, shin in (("l", _L_THIGH, _L_SHIN), ("r", _R_THIGH, _R_SHIN)):
        turn(shin, _rx(angles[f"{side}_knee"]))
        turn(thigh + shin, _rx(-angles[f"{side}_hip"]))
    turn(_UPPER + _L_UPPER_ARM + _L_FOREARM + _R_UPPER_ARM + _R_FOREARM, _rx(angles["bend"]))
    turn(list(range(1, NUM_JOINTS)), _ry(angles["yaw"]))
    return np.einsum("jb,tbc->tjc", _PATHS, dirs * lengths[None, :, None])


def subject_lengths(subject: int) -> np.ndarray:
    """Bone lengths of a performer: overall height and per-bone proportions fixed per subject."""
    rng = np.random.default_rng([subject, 31337])
    return _LENGTH * rng.uniform(0.88, 1.12) * rng.uniform(0.94, 1.06, size=NUM_JOINTS)


# ---- one sample -------------------------------------------------------------------------------


@dataclass
class Track:
    body_id: int
    xyz: np.ndarray  # (T, 25, 3) camera space, metres
    present: np.ndarray  # (T,) bool


def simulate(name: str, config: SynthConfig, rng: np.random.Generator) -> list[Track]:
    """The body tracks of one file in Kinect camera space."""
    setup, camera, subject = int(name[1:4]), int(name[5:8]), int(name[9:12])
    action = int(name[-3:])
    T = int(rng.integers(config.min_frames, config.max_frames + 1))
    start, span = rng.uniform(0.0, 0.12), rng.uniform(0.75, 0.88)  # the action inside the clip
    u = np.clip((np.arange(T) / max(T - 1, 1) - start) / span, 0.0, 1.0)
    amp, freq, phase = rng.uniform(0.8, 1.2), rng.uniform(2.5, 4.0), rng.uniform(0, 2 * np.pi)
    mutual = action in MUTUAL_ACTIONS
    # camera placement: views rotate the scene; setups change distance and height
    view = {1: 0.0, 2: -np.pi / 4, 3: np.pi / 4}[camera]
    srng = np.random.default_rng([setup, 99])
    distance, height = srng.uniform(2.6, 3.4), srng.uniform(-0.1, 0.3)
    tracks = []
    partner = 1 + (subject % 40) + 40  # a second performer id for the body shape of person 1
    for person in range(2 if mutual else 1):
        angles = action_angles(action, u, amp, freq, phase, person)
        lengths = subject_lengths(subject if person == 0 else partner)
        body = pose(angles, lengths)  # (T, 25, 3) body frame
        hip_height = lengths[[13, 14]].sum() * 0.98
        if mutual:  # face each other; close in as the action proceeds
            gap = 1.5 - (0.75 if action != 55 else 1.05) * _smooth(u / 0.45)
            side = -1.0 if person == 0 else 1.0
            yaw = np.full(T, -side * np.pi / 2)  # person 0 at -x faces +x
            root = np.stack([side * gap / 2 - side * angles["tz"], hip_height + angles["ty"], np.zeros(T)], -1)
        else:
            yaw = np.full(T, np.pi) + rng.normal(0, 0.15)
            root = np.stack([angles["tx"], hip_height + angles["ty"], -angles["tz"]], -1)
        world = np.einsum("tij,tvj->tvi", _ry(yaw), body) + root[:, None]
        world[..., 1] -= 0.9  # floor at y = -0.9 below the camera axis
        cam = np.einsum("ij,tvj->tvi", _ry(np.array(view)), world)
        cam[..., 1] -= height
        cam[..., 2] += distance
        body_id = 72057594037927936 + int(rng.integers(1000, 99999))
        tracks.append(Track(body_id, cam, np.ones(T, bool)))
    if config.artefacts:
        _add_artefacts(tracks, rng)
    return tracks


def _add_artefacts(tracks: list[Track], rng: np.random.Generator) -> None:
    T = len(tracks[0].present)
    for track in tracks:
        track.xyz = track.xyz + rng.normal(0, 0.004, track.xyz.shape)  # sensor jitter
        track.xyz[:, [7, 11, 21, 22, 23, 24]] += rng.normal(0, 0.012, (T, 6, 3))  # noisy hands
        if rng.random() < 0.15:  # enters late or leaves early
            cut = int(rng.integers(1, max(2, T // 6)))
            if rng.random() < 0.5:
                track.present[:cut] = False
            else:
                track.present[-cut:] = False
    dropped = rng.random(T) < 0.02  # frames where the sensor reports no body at all
    for track in tracks:
        track.present &= ~dropped
    for _ in range(rng.poisson(0.35)):  # short-lived ghosts: wide, flat blobs near the actor
        life = int(rng.integers(1, 11))
        t0 = int(rng.integers(0, max(1, T - life)))
        centre = tracks[0].xyz[t0, 0] + [rng.uniform(-0.8, 0.8), rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3)]
        blob = centre + rng.normal(0, 1, (T, NUM_JOINTS, 3)) * [0.35, 0.06, 0.2]
        present = np.zeros(T, bool)
        present[t0 : t0 + life] = True
        tracks.append(Track(72057594037927936 + int(rng.integers(100000, 999999)), blob, present & ~dropped))


# ---- text -------------------------------------------------------------------------------------

_JOINT_LINE = "%.7g %.7g %.7g %.7g %.7g %.7g %.7g %.7g %.7g %.7g %.7g %d"


def render(tracks: list[Track], rng: np.random.Generator) -> str:
    """The `.skeleton` text of the tracks (CRLF line ends, as the released files)."""
    T = len(tracks[0].present)
    block = "\r\n".join([_JOINT_LINE] * NUM_JOINTS)
    swap = np.zeros(T, bool)
    if len(tracks) > 1 and rng.random() < 0.3:  # Kinect reorders its body list for a while
        t0 = int(rng.integers(0, T))
        swap[t0 : t0 + int(rng.integers(1, max(2, T // 3)))] = True
    cols = []
    for track in tracks:
        xyz = track.xyz
        z = np.maximum(xyz[..., 2], 0.5)
        depth = np.stack([256 + 365 * xyz[..., 0] / z, 212 - 365 * xyz[..., 1] / z], -1)
        color = np.stack([960 + 1050 * xyz[..., 0] / z, 540 - 1050 * xyz[..., 1] / z], -1)
        orient = np.broadcast_to([0.9, 0.1, 0.3, 0.2], (*xyz.shape[:2], 4))
        state = np.where(rng.random(xyz.shape[:2]) < 0.03, 1, 2)[..., None]
        cols.append(np.concatenate([xyz, depth, color, orient, state], -1))  # (T, 25, 12)
    lines = [str(T)]
    for t in range(T):
        order = [k for k in range(len(tracks)) if tracks[k].present[t]]
        if swap[t] and len(order) >= 2:
            order[0], order[1] = order[1], order[0]
        lines.append(str(len(order)))
        for k in order:
            lean = rng.uniform(-0.3, 0.3, 2)
            lines.append(f"{tracks[k].body_id} 0 1 1 1 1 0 {lean[0]:.7g} {lean[1]:.7g} 2")
            lines.append(str(NUM_JOINTS))
            lines.append(block % tuple(cols[k][t].ravel()))
    return "\r\n".join(lines) + "\r\n"
