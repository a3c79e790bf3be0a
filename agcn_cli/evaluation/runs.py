"""`agcn eval RUN_DIR TEST.h5`: every stream of a multi-stream run, then the published fusions.

A run of `agcn train --modality all` (engine/multistream.py) holds RUN_DIR/STREAM/last.pt per
stream. Each is tested as `agcn eval` tests one checkpoint (multi-clip, 10 clips by default);
then the fusions of the 2s-AGCN papers' tables, of the streams present: joint+bone 1:1 (2s-AGCN)
and the four streams 2:1:2:1 (joint, joint-motion, bone, bone-motion: MMAction2's and pyskl's
weights), probabilities fused by sample name as `agcn fuse` does.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import AgcnError
from ..io.scores import Scores, write_scores
from ..skeleton.streams import STREAMS
from .evaluate import EvalConfig, EvalResult, Note, evaluate
from .fusion import align, fuse_scores
from .metrics import Metrics, compute_metrics

# (name, streams, weights): the published ensembles
FUSIONS = (
    ("joint+bone", ("joint", "bone"), (1.0, 1.0)),
    ("four-stream", ("joint", "joint-motion", "bone", "bone-motion"), (2.0, 1.0, 2.0, 1.0)),
)


def run_checkpoints(run_dir: Path) -> dict[str, Path]:
    """The streams of a multi-stream run folder and their last.pt, in the order of STREAMS."""
    found = {s: run_dir / s / "last.pt" for s in STREAMS if (run_dir / s / "last.pt").is_file()}
    if not found:
        raise AgcnError(
            f"{run_dir}: no STREAM/last.pt in this folder; give a checkpoint, or the RUN_DIR of "
            "agcn train --modality all (or a comma list of streams)"
        )
    return found


def run_streams(path: Path) -> list[Path]:
    """`path`, or the stream folders of a multi-stream RUN_DIR (a folder without metrics.jsonl whose
    STREAM/ folders hold runs), for commands that take run folders."""
    path = Path(path)
    if not path.is_dir() or (path / "metrics.jsonl").exists():
        return [path]
    streams = [path / s for s in STREAMS if (path / s / "metrics.jsonl").is_file()]
    return streams or [path]


@dataclass
class Fusion:
    name: str
    streams: tuple[str, ...]
    weights: tuple[float, ...]
    scores: Scores
    metrics: Metrics


@dataclass
class RunResult:
    streams: dict[str, EvalResult]  # by stream, in the order of STREAMS
    fusions: list[Fusion]  # those whose streams the run holds


def evaluate_run(
    run_dir: Path,
    test_file: Path,
    base: EvalConfig,
    *,
    out_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    note: Note | None = None,
) -> RunResult:
    """Test each stream's last.pt on `test_file` with `base`'s options, then fuse; with `out_dir`,
    write OUT_DIR/STREAM.h5 and OUT_DIR/FUSION.h5 (score files, as agcn eval/fuse --out)."""
    results = {}
    for stream, ckpt in run_checkpoints(Path(run_dir)).items():
        config = EvalConfig(ckpt, test_file, base.clips, base.clip_len, base.batch_size, base.device, base.bf16)
        results[stream] = evaluate(config, progress=progress, note=note)
        if out_dir is not None:
            write_scores(out_dir / f"{stream}.h5", results[stream].scores)
    fusions = []
    for name, streams, weights in FUSIONS:
        if not all(s in results for s in streams):
            continue
        paths = [Path(run_dir) / s / "last.pt" for s in streams]  # named in align's errors
        aligned = align(paths, [results[s].scores for s in streams])
        fused = fuse_scores(aligned, list(weights), "prob")
        metrics = compute_metrics(fused.prob, fused.labels, results[streams[0]].class_names)
        fusions.append(Fusion(name, streams, weights, fused, metrics))
        if out_dir is not None:
            write_scores(out_dir / f"{name}.h5", fused)
    return RunResult(results, fusions)
