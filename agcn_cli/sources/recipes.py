"""Preprocessing recipes: which bodies of a `.skeleton` file become the sample's two persons.

- `2s-agcn`: lshiwjx/2s-AGCN `data_gen/ntu_gendata.py` + `preprocess.py`. Bodies are taken by
  their slot in each frame (the first 4), the 2 with the largest summed per-channel standard
  deviation over their non-empty frames are kept, then the sample is pre-normalised
  (`normalize.pre_normalize_2sagcn`). Stored already normalised.
- `mmaction2`: pyskl `tools/data/ntu_preproc.py`, the data behind MMAction2's NTU results.
  Bodies are tracked by Kinect body id; frames with no body are dropped; bodies of 11 frames or
  fewer are dropped when several exist; spread denoising; ranking by motion (variance);
  non-overlapping tracks merged into two persons; empty leading/trailing frames cut; values
  rounded to float16 as the reference stores them; then MMAction2's PreNormalize3D, which
  its pipeline applies at load time, is applied here once (it depends on the sample alone).
Every function returns person-major samples: (M, T, V, C).
"""

from enum import StrEnum

import numpy as np

from ..errors import AgcnError
from ..skeleton.normalize import WindowPad, pre_normalize_2sagcn_padded, pre_normalize_3d
from ..skeleton.persons import NUM_PERSONS, fit_persons
from .ntu import NUM_JOINTS, SkeletonError, SkeletonFile

RECIPES = ("mmaction2", "2s-agcn")
Recipe = StrEnum("Recipe", {r: r for r in RECIPES})  # the command line's type (--recipe)
DEFAULT_RECIPE = "mmaction2"


def check_recipe(recipe: str) -> str:
    if recipe not in RECIPES:
        raise AgcnError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    return recipe


# ---- 2s-AGCN ----------------------------------------------------------------------------

MAX_BODY_KINECT = 4  # body slots read per frame by the reference


def select_bodies_2sagcn(sk: SkeletonFile) -> np.ndarray:
    """The reference's `read_xyz`: (2, T, 25, 3) float32, bodies ranked by energy."""
    data = np.zeros((MAX_BODY_KINECT, sk.num_frames, NUM_JOINTS, 3))
    keep = sk.slot < MAX_BODY_KINECT
    data[sk.slot[keep], sk.frame[keep]] = sk.xyz[keep]
    energy = np.array([_nonzero_std(body) for body in data])
    # numpy's default sort is stable for 4 values; reversed, ties go to the later slot
    order = np.argsort(energy, kind="stable")[::-1][:NUM_PERSONS]
    return data[order].astype(np.float32)


def _nonzero_std(body: np.ndarray) -> float:
    """Sum over x, y, z of the std over the body's non-empty frames (0 if none)."""
    frames = body[body.sum(axis=(1, 2)) != 0]
    if len(frames) == 0:
        return 0.0
    return float(frames[..., 0].std() + frames[..., 1].std() + frames[..., 2].std())


def sample_2sagcn(sk: SkeletonFile, layout_normalize: dict) -> tuple[np.ndarray, WindowPad]:
    """The normalised sample (2, T, V, C) and how the reference's padded array continues it."""
    bodies = select_bodies_2sagcn(sk)
    return pre_normalize_2sagcn_padded(bodies, **layout_normalize)


# ---- MMAction2 / pyskl --------------------------------------------------------------------

EPS = 1e-3
LENGTH_THRESHOLD = 11  # bodies of this many frames or fewer are dropped when several exist
WH_RATIO = 0.8  # a frame is "spread noise" when x-extent > 0.8 * y-extent
SPREAD_NOISE_RATIO = 0.69754  # a body with at least this share of noisy frames is dropped


def _tracks(sk: SkeletonFile) -> list[dict]:
    """One dict per body id, in order of first appearance: kpt (n, 25, 3), start, motion."""
    # frames with no body do not exist for this recipe: compact the frame index
    compact = np.cumsum(sk.bodies_per_frame > 0) - 1
    xyz = sk.xyz.astype(np.float32)
    ids, first = np.unique(sk.body_id, return_index=True)
    tracks = []
    for body in ids[np.argsort(first, kind="stable")]:
        entries = np.flatnonzero(sk.body_id == body)
        kpt = xyz[entries]
        motion = np.sum(np.var(kpt.reshape(-1, 3), axis=0))
        tracks.append({"kpt": kpt, "start": int(compact[sk.frame[entries[0]]]), "motion": motion})
    return tracks


def _spread_denoise(tracks: list[dict]) -> list[dict]:
    kept = []
    for track in tracks:
        kpt = track["kpt"]
        x_extent = kpt[..., 0].max(axis=1) - kpt[..., 0].min(axis=1)
        y_extent = kpt[..., 1].max(axis=1) - kpt[..., 1].min(axis=1)
        valid = x_extent <= WH_RATIO * y_extent  # (n,)
        if valid.all():
            kept.append(track)
            continue
        if 1 - valid.sum() / len(valid) >= SPREAD_NOISE_RATIO:
            continue
        motion = np.sum(np.var(kpt[valid].reshape(-1, 3), axis=0))
        kept.append({**track, "motion": min(track["motion"], motion)})
    # Where the reference asserts (every body is noise), keep the bodies as they were.
    kept = kept or tracks
    return sorted(kept, key=lambda t: -t["motion"])


def select_bodies_mmaction2(sk: SkeletonFile) -> np.ndarray:
    """pyskl's `gen_keypoint_array`: (M, T, 25, 3) float32 with M 1 or 2."""
    tracks = sorted(_tracks(sk), key=lambda t: -t["motion"])
    if not tracks:
        raise SkeletonError("no body in any frame")
    if len(tracks) == 1:
        return tracks[0]["kpt"][None]
    # Where the reference would fail (no body longer than the threshold), keep them all.
    tracks = [t for t in tracks if len(t["kpt"]) > LENGTH_THRESHOLD] or tracks
    if len(tracks) == 1:
        return tracks[0]["kpt"][None]
    tracks = _spread_denoise(tracks)
    if len(tracks) == 1:
        return tracks[0]["kpt"][None]

    length = max(t["start"] + len(t["kpt"]) for t in tracks)
    keypoint = np.zeros((NUM_PERSONS, length, NUM_JOINTS, 3), np.float32)
    first = tracks[0]
    spans = [[first["start"], first["start"] + len(first["kpt"])], [0, 0]]
    keypoint[0, spans[0][0] : spans[0][1]] = first["kpt"]
    for track in tracks[1:]:
        s, e = track["start"], track["start"] + len(track["kpt"])
        for person, span in enumerate(spans):  # first person whose span it does not overlap
            if max(span[0], s) >= min(span[1], e):
                keypoint[person, s:e] = track["kpt"]
                span[:] = [min(s, span[0]), max(e, span[1])]
                break

    present = np.abs(keypoint).sum(axis=(0, 2, 3)) >= EPS  # (T,) frames with any joint
    begin, end = int(np.argmax(present)), len(present) - int(np.argmax(present[::-1]))
    keypoint = keypoint[:, begin:end]
    if np.abs(keypoint[0, 0, 1]).sum() < EPS and np.abs(keypoint[1, 0, 1]).sum() > EPS:
        keypoint = keypoint[::-1]
    return keypoint


def sample_mmaction2(sk: SkeletonFile, layout_normalize: dict) -> np.ndarray:
    # The annotation file holds float16; PreNormalize3D centres in that dtype, then rotates in
    # float64, and the pipeline casts to float32 after it. Overflow shows as inf/NaN, which
    # `make_padded_sample` refuses; the warnings numpy would print for it say nothing more.
    keypoint = select_bodies_mmaction2(sk).astype(np.float16)
    with np.errstate(over="ignore", invalid="ignore"):
        return pre_normalize_3d(keypoint, **layout_normalize, dtype=np.float32)


# The largest coordinate each recipe can store: mmaction2 rounds to float16 as the reference's
# annotation file does, 2s-agcn keeps float32.
MAX_COORDINATE = {"mmaction2": float(np.finfo(np.float16).max), "2s-agcn": float(np.finfo(np.float32).max)}


def _check_range(sk: SkeletonFile, recipe: str) -> None:
    """SkeletonError when a joint coordinate does not fit the recipe's stored dtype."""
    limit = MAX_COORDINATE[recipe]
    if len(sk.xyz) and float(np.abs(sk.xyz).max()) > limit:
        found = float(np.abs(sk.xyz).max())
        dtype = "float16" if recipe == "mmaction2" else "float32"
        raise SkeletonError(f"coordinate out of {dtype} range: |{found:.6g}| > {limit:.6g} (the {recipe} recipe)")


def make_sample(sk: SkeletonFile, recipe: str, layout_normalize: dict) -> tuple[np.ndarray, int]:
    """The stored sample (2, T, V, C) float32, zero-padded to two persons, and its person count."""
    sample, persons, _ = make_padded_sample(sk, recipe, layout_normalize)
    return sample, persons


def make_padded_sample(
    sk: SkeletonFile, recipe: str, layout_normalize: dict
) -> tuple[np.ndarray, int, WindowPad | None]:
    """`make_sample`, and for the 2s-agcn recipe the facts of its padded 300-frame window
    (`WindowPad`; None for mmaction2, whose samples are not padded by the reference)."""
    _check_range(sk, recipe)
    if recipe == "2s-agcn":
        if not (sk.bodies_per_frame > 0).any():
            raise SkeletonError("no body in any frame")
        sample, pad = sample_2sagcn(sk, layout_normalize)
        persons = int((np.abs(sample).sum(axis=(1, 2, 3)) > 0).sum())
    else:
        sample, pad = sample_mmaction2(sk, layout_normalize), None
        persons = sample.shape[0]
    if not np.isfinite(sample).all():  # e.g. centring two far-apart float16 values overflows
        raise SkeletonError(f"coordinates out of range: the {recipe} recipe's normalisation gives inf/NaN")
    sample = np.ascontiguousarray(fit_persons(sample))
    if pad is not None:
        pad = WindowPad(fit_persons(pad.periods), pad.centre)
    return sample, persons, pad
