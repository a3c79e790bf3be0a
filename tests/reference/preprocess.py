"""Slow, structure-faithful transcriptions of the two reference preprocessing pipelines.

Used only by the tests (agcn's vectorised recipes must produce the same numbers) and by the
preprocessing benchmark (to measure the original's throughput on the same files). They keep
the references' structure on purpose: per-value parsing into dicts, per-frame and per-joint
loops, and the 2s-AGCN habit of padding every sample to 300 frames before normalising.

- `ref_2sagcn_sample(path)`: lshiwjx/2s-AGCN data_gen/ntu_gendata.py (read_xyz: bodies by
  slot, 2 of the first 4 by energy) + data_gen/preprocess.py (pre_normalization), one sample;
  returns (C, 300, V, M) float32 like one row of the reference's output array.
- `ref_mmaction2_sample(path)`: pyskl tools/data/ntu_preproc.py (gen_keypoint_array);
  returns (M, T, V, C) float16 like the reference's `keypoint`.
"""

import copy
import math

import numpy as np

MAX_FRAME = 300


# ---- 2s-AGCN ----------------------------------------------------------------------------


def _read_sequence(path):
    body_keys = ["bodyID", "clipedEdges", "handLeftConfidence", "handLeftState", "handRightConfidence",
                 "handRightState", "isResticted", "leanX", "leanY", "trackingState"]  # fmt: skip
    joint_keys = ["x", "y", "z", "depthX", "depthY", "colorX", "colorY", "orientationW", "orientationX",
                  "orientationY", "orientationZ", "trackingState"]  # fmt: skip
    with open(path) as f:
        seq = {"numFrame": int(f.readline()), "frameInfo": []}
        for _ in range(seq["numFrame"]):
            frame = {"numBody": int(f.readline()), "bodyInfo": []}
            for _ in range(frame["numBody"]):
                body = {k: float(v) for k, v in zip(body_keys, f.readline().split(), strict=False)}
                body["numJoint"] = int(f.readline())
                body["jointInfo"] = []
                for _ in range(body["numJoint"]):
                    body["jointInfo"].append(
                        {k: float(v) for k, v in zip(joint_keys, f.readline().split(), strict=False)}
                    )
                frame["bodyInfo"].append(body)
            seq["frameInfo"].append(frame)
    return seq


def _nonzero_std(s):  # (T, V, C)
    s = s[s.sum(-1).sum(-1) != 0]
    if len(s) == 0:
        return 0
    return s[:, :, 0].std() + s[:, :, 1].std() + s[:, :, 2].std()


def _read_xyz(path, max_body=4, num_joint=25):
    seq = _read_sequence(path)
    data = np.zeros((max_body, seq["numFrame"], num_joint, 3))
    for n, frame in enumerate(seq["frameInfo"]):
        for m, body in enumerate(frame["bodyInfo"]):
            for j, v in enumerate(body["jointInfo"]):
                if m < max_body and j < num_joint:
                    data[m, n, j, :] = [v["x"], v["y"], v["z"]]
    energy = np.array([_nonzero_std(x) for x in data])
    index = energy.argsort()[::-1][0:2]
    return data[index].transpose(3, 1, 2, 0)  # (C, T, V, M)


def _rotation_matrix(axis, theta):
    if np.abs(axis).sum() < 1e-6 or np.abs(theta) < 1e-6:
        return np.eye(3)
    axis = np.asarray(axis)
    axis = axis / math.sqrt(np.dot(axis, axis))
    a = math.cos(theta / 2.0)
    b, c, d = -axis * math.sin(theta / 2.0)
    aa, bb, cc, dd = a * a, b * b, c * c, d * d
    bc, ad, ac, ab, bd, cd = b * c, a * d, a * c, a * b, b * d, c * d
    return np.array([[aa + bb - cc - dd, 2 * (bc + ad), 2 * (bd - ac)],
                     [2 * (bc - ad), aa + cc - bb - dd, 2 * (cd + ab)],
                     [2 * (bd + ac), 2 * (cd - ab), aa + dd - bb - cc]])  # fmt: skip


def _angle_between(v1, v2):
    if np.abs(v1).sum() < 1e-6 or np.abs(v2).sum() < 1e-6:
        return 0
    u1 = v1 / np.linalg.norm(v1)
    v2 = np.asarray(v2)
    u2 = v2 / np.linalg.norm(v2)
    return np.arccos(np.clip(np.dot(u1, u2), -1.0, 1.0))


def _pre_normalization(data, zaxis=(0, 1), xaxis=(8, 4)):
    N, C, T, V, M = data.shape
    s = np.transpose(data, [0, 4, 2, 3, 1])  # N, M, T, V, C (a view: edits reach `data`)
    for i_s, skeleton in enumerate(s):
        for i_p, person in enumerate(skeleton):
            if person.sum() == 0:
                continue
            if person[0].sum() == 0:
                index = person.sum(-1).sum(-1) != 0
                tmp = person[index].copy()
                person *= 0
                person[: len(tmp)] = tmp
            for i_f, frame in enumerate(person):
                if frame.sum() == 0 and person[i_f:].sum() == 0:
                    rest = len(person) - i_f
                    num = int(np.ceil(rest / i_f))
                    s[i_s, i_p, i_f:] = np.concatenate([person[0:i_f] for _ in range(num)], 0)[:rest]
                    break
    for i_s, skeleton in enumerate(s):
        if skeleton.sum() == 0:
            continue
        center = skeleton[0][:, 1:2, :].copy()
        for i_p, person in enumerate(skeleton):
            if person.sum() == 0:
                continue
            mask = (person.sum(-1) != 0).reshape(T, V, 1)
            s[i_s, i_p] = (s[i_s, i_p] - center) * mask
    for (a, b), target, flip in ((zaxis, [0, 0, 1], False), (xaxis, [1, 0, 0], True)):
        for i_s, skeleton in enumerate(s):
            if skeleton.sum() == 0:
                continue
            # z: top (zaxis[1]) - bottom (zaxis[0]); x: right shoulder (xaxis[0]) - left (xaxis[1])
            vec = skeleton[0, 0, a] - skeleton[0, 0, b] if flip else skeleton[0, 0, b] - skeleton[0, 0, a]
            matrix = _rotation_matrix(np.cross(vec, target), _angle_between(vec, target))
            for i_p, person in enumerate(skeleton):
                if person.sum() == 0:
                    continue
                for i_f, frame in enumerate(person):
                    if frame.sum() == 0:
                        continue
                    for i_j, joint in enumerate(frame):
                        s[i_s, i_p, i_f, i_j] = np.dot(matrix, joint)
    return np.transpose(s, [0, 4, 2, 3, 1])


def ref_2sagcn_sample(path) -> np.ndarray:
    """(C, 300, V, M) float32: the reference's stored array row for one file."""
    fp = np.zeros((1, 3, MAX_FRAME, 25, 2), dtype=np.float32)
    data = _read_xyz(path)
    fp[0, :, 0 : data.shape[1], :, :] = data
    return _pre_normalization(fp)[0]


# ---- pyskl / MMAction2 --------------------------------------------------------------------

EPS = 1e-3


def _parse_bodies(path):
    with open(path) as f:
        lines = [line.strip() for line in f.read().splitlines()]
    lines = [line for line in lines if line]
    idx, num_frames = 1, int(lines[0])
    bodies, fidx = {}, 0
    for _ in range(num_frames):
        nb = int(lines[idx])
        idx += 1
        if nb == 0:
            continue
        for _ in range(nb):
            body_id = int(lines[idx].split()[0])
            if body_id not in bodies:
                bodies[body_id] = {"kpt": [], "start": fidx}
            idx += 2
            joints = np.zeros((25, 3), dtype=np.float32)
            for j in range(25):
                joints[j, :3] = np.array(lines[idx].split()[:3], dtype=np.float32)
                idx += 1
            bodies[body_id]["kpt"].append(joints)
        fidx += 1
    for b in bodies.values():
        b["motion"] = np.sum(np.var(np.vstack(b["kpt"]), axis=0))
        b["kpt"] = np.stack(b["kpt"])
    return bodies


def _spread_denoising(items):
    for item in items:
        kpt = item["kpt"]
        valid = []
        for i in range(kpt.shape[0]):
            x, y = kpt[i, :, 0], kpt[i, :, 1]
            if x.max() - x.min() <= 0.8 * (y.max() - y.min()):
                valid.append(i)
        if len(valid) == kpt.shape[0]:
            item["flag"] = True
            continue
        ratio = len(valid) / kpt.shape[0]
        item["flag"] = 1 - ratio < 0.69754
        if item["flag"]:
            item["motion"] = min(item["motion"], np.sum(np.var(kpt[valid].reshape(-1, 3), axis=0)))
    items = [item for item in items if item["flag"]]
    assert len(items) >= 1
    items.sort(key=lambda x: -x["motion"])
    return items


def ref_mmaction2_sample(path) -> np.ndarray:
    """(M, T, V, C) float16: the reference's `keypoint` for one file."""
    items = copy.deepcopy(list(_parse_bodies(path).values()))
    items.sort(key=lambda x: -x["motion"])
    if len(items) == 1:
        return items[0]["kpt"][None].astype(np.float16)
    items = [item for item in items if item["kpt"].shape[0] > 11]
    if len(items) == 1:
        return items[0]["kpt"][None].astype(np.float16)
    items = _spread_denoising(items)
    if len(items) == 1:
        return items[0]["kpt"][None].astype(np.float16)
    max_fidx = max(item["start"] + item["kpt"].shape[0] for item in items)
    keypoint = np.zeros((2, max_fidx, 25, 3), np.float32)
    s1, e1, s2, e2 = items[0]["start"], items[0]["start"] + items[0]["kpt"].shape[0], 0, 0
    keypoint[0, s1:e1] = items[0]["kpt"]
    for item in items[1:]:
        s, e = item["start"], item["start"] + item["kpt"].shape[0]
        if max(s1, s) >= min(e1, e):
            keypoint[0, s:e] = item["kpt"]
            s1, e1 = min(s, s1), max(e, e1)
        elif max(s2, s) >= min(e2, e):
            keypoint[1, s:e] = item["kpt"]
            s2, e2 = min(s, s2), max(e, e2)
    s, e = 0, keypoint.shape[1]
    while np.sum(np.abs(keypoint[:, s])) < EPS:
        s += 1
    while np.sum(np.abs(keypoint[:, e - 1])) < EPS:
        e -= 1
    keypoint = keypoint[:, s:e]
    if np.sum(np.abs(keypoint[0, 0, 1])) < EPS and np.sum(np.abs(keypoint[1, 0, 1])) > EPS:
        keypoint = keypoint[::-1]
    return keypoint.astype(np.float16)
