"""`agcn fuse`: weighted fusion of per-stream score files, aligned by sample name.

The 2s-AGCN papers fuse streams by a weighted sum of their scores (joint:bone 1:1;
joint:joint-motion:bone:bone-motion 2:1:2:1 in MMAction2). The original `ensemble.py` pairs
score files by position, which silently mixes samples when two files are ordered differently;
here every file is aligned to the first one by sample name, and files that do not hold the
same samples with the same labels are refused.

The fused scores are the weighted mean (weights normalised to sum 1, which changes no
ranking): of the probabilities, and separately of the logits, so a fused file is again a score
file (`data_specs/scores.md`) that can be fused further. `--logits` chooses which of the two is
reported (the original sums logits; MMAction2 sums clip-averaged probabilities).
"""

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AgcnError
from ..io.scores import SCORE_KINDS, Scores, read_scores, score_attrs, write_scores
from .metrics import Metrics, class_names, compute_metrics, confusion_matrix, mean_class_accuracy, top_k_accuracy

DEFAULT_GRID = (0.0, 0.5, 1.0, 1.5, 2.0)
SHOWN = 3  # sample names quoted in an error


def _few(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")


def parse_numbers(text: str, what: str) -> list[float]:
    """Comma-separated finite numbers >= 0."""
    numbers = []
    for token in text.split(","):
        try:
            w = float(token)
        except ValueError:
            raise AgcnError(
                f"{what}: {token.strip()!r} is not a number; expected comma-separated numbers such as 2,1,2,1"
            ) from None
        if not math.isfinite(w) or w < 0:
            raise AgcnError(f"{what}: {token.strip()} is not allowed; weights must be finite and >= 0")
        numbers.append(w)
    return numbers


def parse_weights(
    text: str | None, files: list[Path], what: str = "--weights", noun: str = "score files"
) -> list[float]:
    """One non-negative weight per file, not all zero, from comma-separated text; None: all 1."""
    if text is None or not text.strip():
        return [1.0] * len(files)
    return check_weights(parse_numbers(text, what), files, what, noun, text)


def check_weights(
    weights: list[float], files: list[Path], what: str = "--weights", noun: str = "score files", text: str = ""
) -> list[float]:
    """`weights` (written `text`) if there is one per file, each finite and non-negative, not all zero."""
    text = text or ",".join(f"{w:g}" for w in weights)
    if len(weights) != len(files):
        raise AgcnError(
            f"{what} has {len(weights)} value(s) ({text}) for {len(files)} {noun} "
            f"({', '.join(Path(f).name for f in files)}); give one weight per file, in the same order"
        )
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise AgcnError(f"{what}: {text}; weights must be finite and >= 0")
    if not any(weights):
        raise AgcnError(f"{what}: all weights are zero; at least one must be positive")
    return list(weights)


def align(files: list[Path], runs: list[Scores]) -> list[Scores]:
    """Reorder every score set to the sample order of the first; refuse sets that differ.

    Errors name the files: a duplicated sample name, different sample sets (how many differ,
    a few names), a label that disagrees, a different number of classes.
    """
    for path, s in zip(files, runs, strict=True):
        dup = [n for n, c in Counter(s.names).items() if c > 1]
        if dup:
            raise AgcnError(
                f"{path}: {len(dup)} sample name(s) appear more than once ({_few(sorted(dup))}); a score file holds "
                "each sample once. Write it again with agcn eval --out"
            )
    ref_path, ref = files[0], runs[0]
    ref_set = set(ref.names)
    out = [ref]
    for path, s in zip(files[1:], runs[1:], strict=True):
        if s.num_classes != ref.num_classes:
            raise AgcnError(
                f"{path} scores {s.num_classes} classes but {ref_path} scores {ref.num_classes}; "
                "fuse scores of models trained on the same classes"
            )
        names = set(s.names)
        if names != ref_set:
            only_ref, only_s = sorted(ref_set - names), sorted(names - ref_set)
            raise AgcnError(
                f"{ref_path} and {path} hold different samples: {len(only_ref)} only in {ref_path.name}"
                f"{f' ({_few(only_ref)})' if only_ref else ''}, {len(only_s)} only in {path.name}"
                f"{f' ({_few(only_s)})' if only_s else ''}; fuse scores of the same test split"
            )
        row = {n: i for i, n in enumerate(s.names)}
        order = np.array([row[n] for n in ref.names], dtype=np.int64)
        labels = s.labels[order]
        bad = np.flatnonzero(labels != ref.labels)
        if len(bad):
            shown = [f"{ref.names[i]} {ref.labels[i]} vs {labels[i]}" for i in bad[:SHOWN]]
            raise AgcnError(
                f"{ref_path} and {path} disagree on the label of {len(bad)} sample(s) ({', '.join(shown)}"
                f"{', ...' if len(bad) > SHOWN else ''}); they were scored on different test files"
            )
        out.append(Scores(list(ref.names), ref.labels, s.prob[order], s.logit[order], s.attrs))
    return out


def normalised(weights: Sequence[float]) -> np.ndarray:
    """Weights as float64 shares of their sum (which changes no ranking)."""
    w = np.asarray(weights, dtype=np.float64)
    return w / w.sum()


def weighted_mean(scores: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted mean (float64) of score arrays of one shape (e.g. (N, K) probabilities of each
    of `agcn predict`'s checkpoints), summed array by array in order."""
    fused = np.zeros(scores[0].shape, np.float64)
    for w, s in zip(normalised(weights), scores, strict=True):
        fused += w * s
    return fused


def fuse_scores(aligned: list[Scores], weights: list[float], kind: str = "prob", sources: list[Path] = ()) -> Scores:
    """Weighted mean of aligned score sets: probabilities and logits each; `kind` is recorded."""
    # one tensordot per kind, not `weighted_mean`'s running sum: the two round differently in the
    # last bit (BLAS fuses the multiply-adds) and each keeps the files and predictions it always made
    w = normalised(weights)
    prob = np.tensordot(w, np.stack([s.prob for s in aligned]), axes=1).astype(np.float32)  # (N, K)
    logit = np.tensordot(w, np.stack([s.logit for s in aligned]), axes=1).astype(np.float32)  # (N, K)
    first = aligned[0].attrs
    clips = {s.attrs.get("clips") for s in aligned}
    attrs = score_attrs(
        "+".join(str(s.attrs.get("modality", "?")) for s in aligned),
        clips.pop() if len(clips) == 1 else -1,
        first.get("clip_len", -1),
        **{key: first.get(key, "") for key in ("test_file", "layout", "benchmark", "split", "recipe")},
        fused_by=kind,
        sources=[str(Path(p).resolve()) for p in sources],
        weights=weights,
        label_names=next((s.label_names for s in aligned if s.label_names), ()),
    )
    return Scores(list(aligned[0].names), aligned[0].labels, prob, logit, attrs)


MAX_GRID = 100_000  # weight combinations --search may try (each fuses and scores every sample)


def weight_grid(count: int, values: tuple[float, ...] = DEFAULT_GRID) -> list[tuple[float, ...]]:
    """Every combination of `values` for `count` streams, without all-zero ones and without
    multiples of an earlier one (2,2 ranks samples as 1,1 does). Refuses grids of more than
    MAX_GRID combinations before building them (5 values over 8 files are 390,625)."""
    size = len(set(values)) ** count
    if size > MAX_GRID:
        raise AgcnError(
            f"--search over {count} score files with {len(set(values))} grid values tries {size:,} weight "
            f"combinations, more than {MAX_GRID:,}; give --grid with fewer values (e.g. --grid 0,1,2) or fuse fewer "
            "files at a time"
        )
    grid: dict[tuple[float, ...], tuple[float, ...]] = {}  # normalised -> the combination kept
    for combo in itertools.product(sorted(set(values)), repeat=count):
        total = sum(combo)
        if total <= 0:
            continue
        key = tuple(round(c / total, 9) for c in combo)
        # of proportional combinations keep the one whose smallest positive weight is 1 (1,2 not 0.5,1)
        if key not in grid or min(c for c in combo if c > 0) == 1:
            grid[key] = combo  # a replaced entry keeps its place in the order
    return list(grid.values())


@dataclass
class SearchResult:
    weights: list[float]
    top1: float  # on the split the weights were chosen on
    mean_class: float
    tried: int  # weight combinations evaluated
    on: str  # "test" or "val"


def search_weights(aligned: list[Scores], kind: str = "prob", values: tuple[float, ...] = DEFAULT_GRID,
                   on: str = "test") -> SearchResult:  # fmt: skip
    """The grid weights with the best top-1; ties go to the better mean class accuracy, then to the
    weights closest to equal (highest entropy), then to the first in grid order."""
    stack = np.stack([s.kind(kind) for s in aligned]).astype(np.float32)  # (S, N, K)
    labels = aligned[0].labels
    k = stack.shape[2]
    best: tuple[float, float, float] | None = None
    best_w: tuple[float, ...] = ()
    grid = weight_grid(len(aligned), values)
    for combo in grid:
        fused = np.tensordot(np.asarray(combo, np.float32), stack, axes=1)  # (N, K)
        mean_class = mean_class_accuracy(confusion_matrix(fused.argmax(axis=1), labels, k))
        w = np.asarray(combo) / sum(combo)
        entropy = float(-(w[w > 0] * np.log(w[w > 0])).sum())
        key = (top_k_accuracy(fused, labels, 1), mean_class, round(entropy, 9))
        if best is None or key > best:
            best, best_w = key, combo
    if best is None:
        raise AgcnError(f"--grid {values}: no weight combination with a positive weight")
    return SearchResult(list(best_w), best[0], best[1], len(grid), on)


@dataclass
class StreamReport:
    path: Path
    modality: str
    weight: float
    metrics: Metrics


@dataclass
class FuseReport:
    streams: list[StreamReport]
    weights: list[float]  # the weights of `fused`
    fused: Scores
    metrics: Metrics
    kind: str
    given: Metrics | None = None  # with --search: the fusion with the given (or equal) weights
    given_weights: list[float] = field(default_factory=list)
    search: SearchResult | None = None
    val_metrics: Metrics | None = None  # with --val: the chosen weights on the validation scores


def _label_names(paths: list[Path], aligned: list[Scores]) -> tuple[str, ...]:
    """The class names the score files carry (from --label-map); files that carry names must agree."""
    named = [(p, s.label_names) for p, s in zip(paths, aligned, strict=True) if s.label_names]
    for p, names in named[1:]:
        if names != named[0][1]:
            raise AgcnError(f"{p}: its class names differ from those of {named[0][0]}; fuse scores of the same classes")
    return named[0][1] if named else ()


def _read_aligned(paths: list[Path]) -> list[Scores]:
    return align(paths, [read_scores(p) for p in paths])


def _check_fuse_options(paths: list[Path], kind: str, search: bool, val: list[Path]) -> None:
    if len(paths) < 2:
        raise AgcnError(f"fuse needs at least two score files, got {len(paths)}")
    if val and not search:
        raise AgcnError("--val files are used to choose weights: pass --search with them")
    if val and len(val) != len(paths):
        raise AgcnError(
            f"--val has {len(val)} files for {len(paths)} score files; give one validation file per stream, "
            "in the same order"
        )
    if kind not in SCORE_KINDS:
        raise AgcnError(f"unknown score kind {kind!r}; choose one of: {', '.join(SCORE_KINDS)}")


def _read_val(paths: list[Path], aligned: list[Scores], val_paths: list[Path]) -> list[Scores]:
    """The --val score files, aligned, each checked against its test file (same stream, same classes)."""
    val_aligned = _read_aligned(val_paths)
    for vp, vs, tp, ts in zip(val_paths, val_aligned, paths, aligned, strict=True):
        vm, tm = vs.attrs.get("modality"), ts.attrs.get("modality")
        if vm and tm and vm != tm:
            raise AgcnError(
                f"{vp} holds {vm!r} scores but the matching test file {tp} holds {tm!r}; "
                "list the --val files in the same stream order as the score files"
            )
        if vs.num_classes != ts.num_classes:
            raise AgcnError(f"{vp} scores {vs.num_classes} classes but {tp} scores {ts.num_classes}")
    return val_aligned


def fuse_files(
    paths: list[Path],
    weights: str | None = None,
    *,
    kind: str = "prob",
    out: Path | None = None,
    search: bool = False,
    grid: tuple[float, ...] = DEFAULT_GRID,
    val: list[Path] = (),
) -> FuseReport:
    """Read, align and fuse score files; with `search`, choose the weights on a grid (on the
    `val` files when given, else on the test files themselves). Writes `out` when given."""
    paths = [Path(p) for p in paths]
    _check_fuse_options(paths, kind, search, val)
    given_w = parse_weights(weights, paths)
    aligned = _read_aligned(paths)
    names = class_names(
        aligned[0].num_classes, str(aligned[0].attrs.get("benchmark", "")), _label_names(paths, aligned)
    )
    streams = [
        StreamReport(p, str(s.attrs.get("modality", "?")), w, compute_metrics(s.kind(kind), s.labels, names))
        for p, s, w in zip(paths, aligned, given_w, strict=True)
    ]
    report_given = fuse_scores(aligned, given_w, kind, paths)
    given_metrics = compute_metrics(report_given.kind(kind), report_given.labels, names)
    if not search:
        if out is not None:
            write_scores(out, report_given)
        return FuseReport(streams, given_w, report_given, given_metrics, kind)

    val_metrics = None
    if val:
        val_aligned = _read_val(paths, aligned, [Path(p) for p in val])
        result = search_weights(val_aligned, kind, grid, on="val")
        val_fused = fuse_scores(val_aligned, result.weights, kind)
        val_metrics = compute_metrics(val_fused.kind(kind), val_fused.labels, names)
    else:
        result = search_weights(aligned, kind, grid, on="test")
    fused = fuse_scores(aligned, result.weights, kind, paths)
    if out is not None:
        write_scores(out, fused)
    return FuseReport(
        streams, result.weights, fused, compute_metrics(fused.kind(kind), fused.labels, names), kind,
        given=given_metrics, given_weights=given_w, search=result, val_metrics=val_metrics,
    )  # fmt: skip
