"""The synthetic performers' bodies for `synth`: the 25-joint Kinect skeleton, joint-angle
trajectories per class, forward kinematics, per-performer bone lengths and idle sway.

Positions are the spine base plus the sum of the bone vectors on each joint's path,
`paths @ bones`: one matrix product per sample, no loop over joints or frames. Angles are
about the body frame (x = the body's left, y = up, z = forward); `action_angles` documents them.
"""

from dataclasses import dataclass

import numpy as np

from .ntu import NUM_JOINTS

# Kinematic parent of each joint (0-based NTU order). Hand tips and thumbs hang off the hand,
# as the Kinect tracks them; the root is the spine base.
PARENT = np.array([0, 0, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 1, 7, 7, 11, 11])
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
LEAVES = [3, 15, 19, 21, 22, 23, 24]  # Kinect reports no orientation for these (all zeros)
HANDS_FEET = [7, 11, 15, 19, 21, 22, 23, 24]


def _paths() -> np.ndarray:
    """(V, V) 0/1: paths[j, b] = 1 when the bone ending at joint b lies on root -> j."""
    paths = np.zeros((NUM_JOINTS, NUM_JOINTS))
    for j in range(1, NUM_JOINTS):  # once, at import
        k = j
        while k != 0:
            paths[j, k] = 1
            k = PARENT[k]
    return paths


_PATHS = _paths()
# Which angle drives which bones. Arms: upper arm, forearm (+ hand, tip, thumb follow it).
_UPPER = [1, 2, 3, 4, 8, 20]  # bend with the torso
_HEAD = [3]
_L_UPPER_ARM, _L_FOREARM = [5], [6, 7, 21, 22]
_R_UPPER_ARM, _R_FOREARM = [9], [10, 11, 23, 24]
_L_THIGH, _L_SHIN = [13], [14, 15]
_R_THIGH, _R_SHIN = [17], [18, 19]
_ARMS = _L_UPPER_ARM + _L_FOREARM + _R_UPPER_ARM + _R_FOREARM

ANGLES = ("bend", "lean", "nod", "l_raise", "l_abd", "l_swing", "l_elbow", "r_raise", "r_abd", "r_swing",
          "r_elbow", "l_hip", "l_knee", "r_hip", "r_knee", "yaw", "tx", "ty", "tz")  # fmt: skip
_LIMB_ANGLES = ANGLES[3:15]

# the ids with hand-made trajectories in `action_angles` (names: data_specs/ntu120_classes.txt)
HAND_MADE_ACTIONS = (8, 9, 10, 22, 23, 24, 26, 27, 31, 35, 38, 42, 43, 44, 50, 51, 52, 55, 58, 59, 60)


# ---- motion ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """How one performance varies its class template."""

    amp: float  # amplitude scale, about 0.8-1.2
    freq: float  # oscillation cycles over the action (waving, clapping, hopping)
    phase: float  # oscillation phase, radians


def smooth(u):
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _bump(u, center, width):
    return np.exp(-0.5 * ((u - center) / width) ** 2)


def _ramp(u, width=0.15):
    """0 -> 1 -> 0: up over the first `width` of the action, down over the last."""
    return smooth(u / width) * smooth((1 - u) / width)


def _gait(u, steps, amp):
    """Walking: alternating hip swing, knee flexion in swing, counter-swinging arms."""
    phi = np.pi * steps * u
    s = np.sin(phi) * _ramp(u, 0.1)
    return {"l_hip": 0.4 * amp * s, "r_hip": -0.4 * amp * s, "l_knee": 0.7 * np.maximum(s, 0) ** 2,
            "r_knee": 0.7 * np.maximum(-s, 0) ** 2, "l_raise": -0.3 * s, "r_raise": 0.3 * s}  # fmt: skip


def _hand_to_head(u, side, m, hold):
    """Upper arm out and forward, forearm folded up: the hand reaches the side of the forehead."""
    r = _ramp(u, hold)
    return {f"{side}_raise": 0.95 * m.amp * r, f"{side}_abd": 0.9 * r, f"{side}_elbow": 2.4 * r}


# long by design: one short branch per hand-made action, read as a table of actions
def action_angles(action: int, u: np.ndarray, m: Style, person: int) -> dict[str, np.ndarray]:
    """Joint-angle trajectories (radians; tx, ty, tz in metres) of `person` (0 or 1) over u in [0, 1].

    Only the angles that move are returned. Angles are about the body frame: raise swings an
    arm forward (pi/2: horizontal), abd sideways, elbow and knee flex, hip swings a leg forward,
    bend pitches the torso forward, lean tilts it sideways, nod pitches the head.
    """
    wave = np.sin(2 * np.pi * m.freq * u + m.phase)
    if action in (8, 9):  # sit down / stand up: the same motion, reversed in time
        s = smooth(u) if action == 8 else 1 - smooth(u)
        hips = 1.4 * m.amp * s
        return {"l_hip": hips, "r_hip": hips, "l_knee": 1.5 * m.amp * s, "r_knee": 1.5 * m.amp * s,
                "ty": -0.42 * m.amp * s, "bend": 0.5 * m.amp * _bump(u, 0.5, 0.18)}  # fmt: skip
    if action == 10:  # clapping: both forearms in front, hands meeting and parting
        r = _ramp(u, 0.2)
        apart = 0.5 + 0.5 * np.sin(2 * np.pi * 2 * m.freq * u + m.phase)
        swing = (0.75 - 0.5 * m.amp * apart) * r
        return {"l_raise": 1.1 * r, "r_raise": 1.1 * r, "l_elbow": 0.9 * r, "r_elbow": 0.9 * r,
                "l_swing": swing, "r_swing": swing}  # fmt: skip
    if action == 22:  # cheer up: both arms high in a V (abduction turns inward past horizontal), shaken
        r = _ramp(u, 0.2)
        return {"l_raise": 2.7 * r, "r_raise": 2.7 * r, "l_abd": -(0.35 + 0.1 * wave) * r,
                "r_abd": -(0.35 - 0.1 * wave) * r, "ty": 0.03 * m.amp * np.abs(wave) * r}  # fmt: skip
    if action == 23:  # hand waving: right arm up, forearm swinging side to side
        r = _ramp(u)
        return {"r_raise": 2.5 * r, "r_elbow": 0.5 * r, "r_abd": 0.45 * m.amp * wave * r}
    if action == 24:  # kicking: fast right-leg swing
        return {"r_hip": 1.2 * m.amp * _bump(u, 0.5, 0.1), "r_knee": 1.0 * _bump(u, 0.42, 0.08),
                "bend": -0.15 * _bump(u, 0.5, 0.12)}  # fmt: skip
    if action == 26:  # hopping: left foot held up, repeated small hops on the right leg
        r = _ramp(u, 0.15)
        hop = np.abs(np.sin(np.pi * np.round(m.freq) * u))
        crouch = (1 - hop) * r
        return {"l_knee": 1.3 * r, "l_hip": 0.45 * r, "ty": 0.12 * m.amp * hop * r, "r_knee": 0.5 * crouch,
                "r_hip": 0.3 * crouch, "l_abd": 0.3 * r, "r_abd": 0.3 * r}  # fmt: skip
    if action == 27:  # jump up: crouch, fly, land; arms swing
        crouch = _bump(u, 0.32, 0.07) + _bump(u, 0.68, 0.07)
        arms = 1.2 * _bump(u, 0.5, 0.12)
        return {"ty": 0.35 * m.amp * _bump(u, 0.5, 0.09), "l_knee": 0.9 * crouch, "r_knee": 0.9 * crouch,
                "l_hip": 0.6 * crouch, "r_hip": 0.6 * crouch, "l_raise": arms, "r_raise": arms}  # fmt: skip
    if action == 31:  # pointing: right arm forward and held, no oscillation
        r = _ramp(u, 0.25)
        return {"r_raise": 1.5 * m.amp * r, "r_elbow": 0.1 * r}
    if action == 35:  # nod head / bow
        b = _bump(u, 0.5, 0.16)
        return {"bend": 0.7 * m.amp * b, "nod": 0.35 * b}
    if action == 38:  # salute: right hand to the forehead, crisp and held
        return _hand_to_head(u, "r", m, 0.12)
    if action == 44:  # touch head (headache): the left hand, slowly, head bowed
        return {**_hand_to_head(u, "l", m, 0.35), "nod": 0.3 * _ramp(u, 0.35), "bend": 0.15 * _ramp(u, 0.35)}
    if action == 42:  # staggering: swaying, drifting walk with arms out
        r = _ramp(u, 0.1)
        return {**_gait(u, np.round(1.5 * m.freq), 0.6), "tx": 0.25 * m.amp * np.sin(2 * np.pi * 0.7 * u + m.phase),
                "tz": 0.4 * u, "lean": 0.25 * wave * r, "yaw": 0.25 * np.sin(2 * np.pi * 0.5 * u + m.phase),
                "l_abd": 0.45 * r, "r_abd": 0.45 * r}  # fmt: skip
    if action == 43:  # falling: torso pitches forward, body drops
        s = smooth((u - 0.2) / 0.6)
        return {"bend": 1.1 * m.amp * s, "ty": -0.75 * s, "l_knee": 1.4 * s, "r_knee": 1.4 * s,
                "l_hip": 1.2 * s, "r_hip": 1.2 * s, "l_raise": 1.3 * s, "r_raise": 1.3 * s}  # fmt: skip
    if action == 50:  # punching: person 0 strikes, person 1 recoils
        hit = _bump(u, 0.55, 0.07)
        if person == 0:
            guard = _ramp(u, 0.2)
            return {"r_raise": 1.5 * (0.4 + 0.6 * hit) * guard, "r_elbow": 1.9 * (1 - hit) * guard,
                    "r_swing": 0.4 * hit, "tz": 0.2 * hit, "bend": 0.15 * hit}  # fmt: skip
        return {"bend": -0.35 * m.amp * _bump(u, 0.62, 0.1), "tz": -0.25 * smooth((u - 0.55) / 0.2)}
    if action == 51:  # kicking other person: person 0 kicks, person 1 doubles over and steps back
        if person == 0:
            return {"r_hip": 1.3 * m.amp * _bump(u, 0.5, 0.09), "r_knee": 1.1 * _bump(u, 0.43, 0.07),
                    "tz": 0.1 * _bump(u, 0.5, 0.1)}  # fmt: skip
        return {"bend": 0.5 * _bump(u, 0.6, 0.1), "tz": -0.3 * smooth((u - 0.52) / 0.2)}
    if action == 52:  # pushing: person 0 shoves with both hands, person 1 is driven back
        push = smooth((u - 0.4) / 0.2)
        if person == 0:
            r = _ramp(u, 0.25)
            return {"l_raise": 1.45 * r, "r_raise": 1.45 * r, "l_elbow": 1.6 * (1 - push) * r,
                    "r_elbow": 1.6 * (1 - push) * r, "tz": 0.2 * push * r, "bend": 0.2 * push * r}  # fmt: skip
        back = smooth((u - 0.48) / 0.25)
        flail = 0.5 * _bump(u, 0.58, 0.1)
        return {"tz": -0.45 * m.amp * back, "bend": -0.3 * _bump(u, 0.55, 0.1), "l_abd": flail, "r_abd": flail}
    if action == 55:  # hugging: both close in, arms out sideways, then wrapped around the other
        r = _ramp(u, 0.3)
        return {"l_abd": 1.35 * r, "r_abd": 1.35 * r, "l_swing": 0.7 * r, "r_swing": 0.7 * r,
                "l_elbow": 1.2 * r, "r_elbow": 1.2 * r}  # fmt: skip
    if action == 58:  # handshaking: right hands meet, forearms shake
        r = _ramp(u, 0.3)
        return {"r_raise": (0.9 + 0.12 * m.amp * wave) * r, "r_elbow": 0.6 * r, "r_swing": 0.45 * r}
    if action in (59, 60):  # walking towards / apart: the gap is in the placement, here the gait
        return _gait(u, np.round(1.2 * m.freq), m.amp)
    # any other id: a fixed random mix of 2-4 angle oscillations chosen by the id
    crng = np.random.default_rng([action, 2024 + person])
    keys = crng.choice(_LIMB_ANGLES + ("bend",), size=int(crng.integers(2, 5)), replace=False)
    out = {}
    for key in keys:
        f, base, ph = crng.uniform(0.5, 2.5), crng.uniform(0.4, 1.4), crng.uniform(0, 2 * np.pi)
        out[str(key)] = base * m.amp * np.sin(2 * np.pi * f * u + ph) * _ramp(u)
    return out


def rx(t):
    c, s, z, o = np.cos(t), np.sin(t), np.zeros_like(t), np.ones_like(t)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def ry(t):
    c, s, z, o = np.cos(t), np.sin(t), np.zeros_like(t), np.ones_like(t)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rz(t):
    c, s, z, o = np.cos(t), np.sin(t), np.zeros_like(t), np.ones_like(t)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def pose(angles: dict[str, np.ndarray], lengths: np.ndarray) -> np.ndarray:
    """Body-frame joint positions (T, 25, 3) relative to the spine base, from joint angles (T,)."""
    T = len(angles["bend"])
    dirs = np.broadcast_to(_REST, (T, NUM_JOINTS, 3)).copy()

    def turn(joints, rot):  # rotate the bone directions of `joints` by (T, 3, 3), distal first
        dirs[:, joints] = np.einsum("tij,tvj->tvi", rot, dirs[:, joints])

    # forward raise is a rotation about the body's left (x) axis taking "down" to "forward"
    for side, sign, upper, fore in (("l", 1, _L_UPPER_ARM, _L_FOREARM), ("r", -1, _R_UPPER_ARM, _R_FOREARM)):
        turn(fore, rx(-angles[f"{side}_elbow"]))
        shoulder = ry(-sign * angles[f"{side}_swing"]) @ rz(sign * angles[f"{side}_abd"]) @ rx(-angles[f"{side}_raise"])
        turn(upper + fore, shoulder)
    for side, thigh, shin in (("l", _L_THIGH, _L_SHIN), ("r", _R_THIGH, _R_SHIN)):
        turn(shin, rx(angles[f"{side}_knee"]))
        turn(thigh + shin, rx(-angles[f"{side}_hip"]))
    turn(_HEAD, rx(angles["nod"]))
    turn(_UPPER + _ARMS, rz(angles["lean"]) @ rx(angles["bend"]))
    turn(list(range(1, NUM_JOINTS)), ry(angles["yaw"]))
    return np.einsum("jb,tbc->tjc", _PATHS, dirs * lengths[None, :, None])


def subject_lengths(subject: int) -> np.ndarray:
    """Bone lengths of a performer: overall height and per-bone proportions fixed per subject."""
    rng = np.random.default_rng([subject, 31337])
    return _LENGTH * rng.uniform(0.88, 1.12) * rng.uniform(0.94, 1.06, size=NUM_JOINTS)


def hip_height(lengths: np.ndarray) -> float:
    """Height of the spine base above the floor when standing straight."""
    return float(-(lengths[12:16] * _REST[12:16, 1]).sum())


def idle_sway(rng: np.random.Generator, T: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Slow random sway of every angle (two sinusoids each): people never stand still."""
    t = np.arange(T) / 30.0  # Kinect: 30 frames/s
    k = len(ANGLES)
    amp = scale * np.array([0.03, 0.02, 0.05] + [0.06] * 12 + [0.04, 0.015, 0.005, 0.015])[:, None, None]
    freq = rng.uniform(0.1, 0.6, (k, 2, 1))
    wave = amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, (k, 2, 1)))  # (k, 2, T)
    return dict(zip(ANGLES, wave.sum(1), strict=True))
