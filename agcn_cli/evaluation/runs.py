"""Run folders: what a folder given to `agcn eval` or `agcn plot` holds, and `agcn eval RUN_DIR`.

A folder is one of three things, told by its own files, never by its name:
- a multi-stream run (`agcn train --modality all` or a comma list, engine/fit.py):
  RUN_DIR/config.json is the whole TrainConfig with `modality` naming several streams (`"all"`
  or `"joint,bone"`), and each stream is a single-stream run in RUN_DIR/STREAM/;
- a single-stream run: config.json naming one stream, metrics.jsonl, last.pt or best.pt;
- anything else is a folder of runs: `agcn plot` draws each run found in it, `agcn eval` asks
  for one of them (it tests one run, and fuses only the streams of one run).

`evaluate_path` is `agcn eval`'s entry: it tells what it was given (a checkpoint, a run, a
multi-stream run), checks every option and output before anything is scored, and tests it.
`agcn eval RUN_DIR TEST.h5` of a multi-stream run (`evaluate_run`) tests one checkpoint of each
stream, `last.pt` (the last epoch's) or `best.pt` (the best validation top-1's), as `agcn eval`
tests one checkpoint (multi-clip, 10 clips by default); then the fusions of the 2s-AGCN papers'
tables, of the streams present: joint+bone 1:1 (2s-AGCN) and the four streams 2:1:2:1 (joint,
joint-motion, bone, bone-motion: MMAction2's and pyskl's weights), probabilities fused by sample
name as `agcn fuse` does.
"""

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import AgcnError
from ..io.atomic import refuse_existing
from ..io.scores import Scores, write_scores
from ..io.splitfile import check_split_file
from ..models.loading import foreign_facts
from ..skeleton.streams import STREAMS
from ..sources.pipeline import OpenProgress, ticking
from .choices import CHECKPOINTS
from .evaluate import EvalConfig, EvalOutputs, EvalResult, Note, check_argument_order, evaluate
from .fusion import align, fuse_scores
from .metrics import Metrics, compute_metrics

# (name, streams, weights): the published ensembles
FUSIONS = (
    ("joint+bone", ("joint", "bone"), (1.0, 1.0)),
    ("four-stream", ("joint", "joint-motion", "bone", "bone-motion"), (2.0, 1.0, 2.0, 1.0)),
)
RUN_MARKS = ("config.json", "metrics.jsonl", "last.pt", "best.pt")  # the files that make a folder a run
SEARCH_DEPTH = 4  # folder levels below a folder of runs searched for runs (runs/ntu60/a/joint)


def check_run_checkpoint(which: str) -> str:
    """`which` if it names a run's checkpoint (CHECKPOINTS), else an AgcnError listing them."""
    if which not in CHECKPOINTS:
        raise AgcnError(f"--checkpoint {which!r}: choose one of: {', '.join(CHECKPOINTS)}")
    return which


def multistream_streams(path: Path) -> tuple[str, ...] | None:
    """The streams of a multi-stream run, from PATH/config.json's `modality` (`"all"`, a comma
    list, or a list), in the order of STREAMS; None for any other folder (no config.json, or one
    naming one stream, or without `modality`: not agcn's). A config.json that cannot be read, or
    whose `modality` is no stream, is an AgcnError naming it."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return None
    try:
        saved = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise AgcnError(f"{config}: not readable as JSON ({e}); it is the config agcn train writes") from None
    if not isinstance(saved, dict) or "modality" not in saved:
        return None  # not the config of agcn train
    modality = saved["modality"]
    if isinstance(modality, str):
        names = STREAMS if modality == "all" else tuple(s.strip() for s in modality.split(","))
    elif isinstance(modality, list) and all(isinstance(s, str) for s in modality):
        names = tuple(modality)
    else:
        raise AgcnError(f"{config}: modality: expected a stream, a comma list of streams or all, got {modality!r:.60}")
    unknown = [s for s in names if s not in STREAMS]
    if unknown:
        raise AgcnError(f"{config}: modality: unknown stream {unknown[0]!r}; expected {', '.join(STREAMS)}")
    if len(names) == 1:
        return None  # a single-stream run
    return tuple(s for s in STREAMS if s in names)


def is_run(path: Path) -> bool:
    """Whether `path` is a run folder of agcn train (single- or multi-stream)."""
    return any((Path(path) / name).exists() for name in RUN_MARKS)


def find_runs(path: Path) -> list[Path]:
    """The single-stream runs `path` stands for, for commands that draw runs: itself (a file, or a
    single-stream run), the stream folders of a multi-stream run, or the runs found in a folder of
    runs (up to SEARCH_DEPTH levels down, hidden folders skipped, in name order). `[path]` when
    none is found, for the caller to report."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    streams = multistream_streams(path)
    if streams is not None:
        found = [path / s for s in streams if (path / s / "metrics.jsonl").is_file()]
        return found or [path]
    if is_run(path):
        return [path]
    return _runs_below(path, SEARCH_DEPTH) or [path]


def _runs_below(folder: Path, depth: int) -> list[Path]:
    """The runs with metrics in the folders below `folder`: each run once, its own folders not searched."""
    try:
        subs = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []  # a folder that cannot be listed holds no run we can draw
    found: list[Path] = []
    for name in subs:
        sub = folder / name
        try:
            streams = multistream_streams(sub)
        except AgcnError:  # a config.json that is not agcn train's: a run only if it has metrics
            streams = None
        if streams is not None:
            found += [sub / s for s in streams if (sub / s / "metrics.jsonl").is_file()]
        elif is_run(sub):
            found += [sub] if (sub / "metrics.jsonl").is_file() else []
        elif depth > 1:
            found += _runs_below(sub, depth - 1)
    return found


def _runs_inside(path: Path) -> str:
    """`a/joint, b/joint`: the runs in a folder of runs, relative to it, for messages."""
    runs = find_runs(path)
    if runs == [path]:
        return ""
    shown = [str(r.relative_to(path)) for r in runs[:6]]
    return ", ".join(shown) + (f" and {len(runs) - 6} more" if len(runs) > 6 else "")


def run_checkpoint(run_dir: Path, which: str = "last") -> Path:
    """RUN_DIR/last.pt or best.pt of a single-stream run folder; AgcnError naming what is missing,
    or, for a folder that holds no run, the runs inside it."""
    run_dir = Path(run_dir)
    check_run_checkpoint(which)
    ckpt = run_dir / f"{which}.pt"
    if ckpt.is_file():
        return ckpt
    if which == "best" and (run_dir / "last.pt").is_file():
        raise AgcnError(_no_best(run_dir))
    if is_run(run_dir):
        raise AgcnError(f"{run_dir}: no {which}.pt: the run has not finished an epoch")
    inside = _runs_inside(run_dir)
    where = f"it holds the runs {inside}: give one of them" if inside else "give a checkpoint or a RUN_DIR"
    raise AgcnError(
        f"{run_dir}: no config.json, no last.pt, no STREAM/last.pt in this folder: not a run of agcn train; "
        f"agcn eval tests one run, {where}"
    )


def _no_best(run_dir: Path) -> str:
    return (
        f"{run_dir}: no best.pt: no validation has run (agcn train without a validation split, or before its "
        "first --val-every epoch); test last.pt with --checkpoint last"
    )


def run_checkpoints(run_dir: Path, which: str = "last", note: Note | None = None) -> dict[str, Path]:
    """RUN_DIR/STREAM/last.pt (or best.pt) of each stream of a multi-stream run, in the order of
    STREAMS. A stream without the checkpoint is skipped with a note; without best.pt beside its
    last.pt (no validation ran) it is an AgcnError."""
    run_dir = Path(run_dir)
    note = note or (lambda _: None)
    check_run_checkpoint(which)
    streams = multistream_streams(run_dir)
    if streams is None:
        raise AgcnError(
            f"{run_dir}: not a multi-stream run (its config.json does not name several streams); "
            "give the RUN_DIR of agcn train --modality all (or a comma list of streams)"
        )
    found = {}
    for s in streams:
        ckpt = run_dir / s / f"{which}.pt"
        if ckpt.is_file():
            found[s] = ckpt
        elif which == "best" and (run_dir / s / "last.pt").is_file():
            raise AgcnError(_no_best(run_dir / s))
        else:
            note(f"{run_dir / s}: no {which}.pt (the stream has not finished an epoch); skipped")
    if not found:
        raise AgcnError(
            f"{run_dir}: no STREAM/{which}.pt in this folder; give a checkpoint, or the RUN_DIR of "
            "agcn train --modality all (or a comma list of streams) once an epoch has ended"
        )
    return found


@dataclass
class Fusion:
    name: str
    streams: tuple[str, ...]
    weights: tuple[float, ...]
    scores: Scores
    metrics: Metrics


@dataclass
class RunResult:
    run_dir: Path  # the multi-stream run
    which: str  # the checkpoint of each stream tested: last or best
    streams: dict[str, EvalResult]  # by stream, in the order of STREAMS
    fusions: list[Fusion]  # those whose streams the run holds


def evaluate_path(
    config: EvalConfig,
    *,
    which: str | None = None,
    outputs: EvalOutputs | None = None,
    foreign: dict[str, Any] | None = None,
    progress: OpenProgress | None = None,
    note: Note | None = None,
) -> EvalResult | RunResult:
    """`agcn eval PATH TEST.h5`, PATH being `config.checkpoint`: a checkpoint (weights without agcn
    metadata described by `foreign`, `foreign_facts`'s keywords, the test file's facts their
    defaults), a run folder (its `which`.pt: last, the default, or best), or a multi-stream run
    (`evaluate_run`; `outputs.scores` is then a folder). Options and outputs are checked before
    anything is scored, the test file once; `progress(total, what, unit)` opens a display."""
    note = note or (lambda _: None)
    outputs, foreign = outputs or EvalOutputs(), foreign or {}
    path, test_file = Path(config.checkpoint), Path(config.test_file)
    check_argument_order(path, test_file)
    if path.is_dir():
        kind = check_run_checkpoint(which or "last")
        streams = multistream_streams(path)  # None: a single-stream run, or no run
        if streams is None:
            path = run_checkpoint(path, kind)  # RUN_DIR/last.pt or best.pt
        if which is None:
            each = "each stream's " if streams else ""
            run_dir = config.checkpoint
            note(f"{run_dir}: testing {each}last.pt (the last epoch's); --checkpoint best tests {each}best.pt")
        if streams is not None:
            given = {"--confusion": outputs.confusion, "--mmaction-dump": outputs.mmaction_dump,
                     **{"--" + name.replace("_", "-"): value for name, value in foreign.items()}}  # fmt: skip
            extra = [name for name, value in given.items() if value is not None]
            if extra:
                verb = "applies" if len(extra) == 1 else "apply"
                raise AgcnError(f"{path}: {', '.join(extra)} {verb} to one checkpoint; give RUN_DIR/STREAM/{kind}.pt")
            return evaluate_run(path, test_file, config, which=kind, out_dir=outputs.scores,
                                overwrite=outputs.overwrite, progress=progress, note=note)  # fmt: skip
    elif which is not None:
        raise AgcnError(f"--checkpoint {which}: picks last.pt or best.pt of a run folder; {path} is a file")
    outputs.check()
    attrs = check_split_file(test_file)
    foreign_config, foreign_data = foreign_facts(**foreign, clip_len=config.clip_len, defaults=attrs)
    config = replace(config, checkpoint=path, foreign_config=foreign_config, foreign_data=foreign_data)
    with ticking(progress, int(attrs.get("num_samples", 0)) or None, "eval", "sample") as tick:
        return evaluate(config, progress=tick, note=note, attrs=attrs, outputs=outputs)


def evaluate_run(
    run_dir: Path,
    test_file: Path,
    base: EvalConfig,
    *,
    which: str = "last",
    out_dir: Path | None = None,
    overwrite: bool = False,
    progress: OpenProgress | None = None,
    note: Note | None = None,
) -> RunResult:
    """Test each stream's `which`.pt of the multi-stream run `run_dir` (`run_checkpoints`) on
    `test_file` with `base`'s options, then fuse; with `out_dir`, write OUT_DIR/STREAM.h5 and
    OUT_DIR/FUSION.h5 (score files, as agcn eval/fuse --out; a fused file's `sources` are its
    streams' files), refusing files that exist unless `overwrite`. The test file is checked once."""
    checkpoints = run_checkpoints(run_dir, which, note)
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise AgcnError(f"--out {out_dir}: is a file; for a RUN_DIR, --out is a folder of score files")
        names = [*checkpoints, *(name for name, need, _ in FUSIONS if all(s in checkpoints for s in need))]
        refuse_existing([out_dir / f"{name}.h5" for name in names], overwrite)
        out_dir.mkdir(parents=True, exist_ok=True)
    attrs = check_split_file(test_file)
    results = {}
    with ticking(progress, int(attrs.get("num_samples", 0)) * len(checkpoints) or None, "eval", "sample") as tick:
        for stream, ckpt in checkpoints.items():
            config = EvalConfig(ckpt, test_file, base.clips, base.clip_len, base.batch_size, base.device, base.bf16)
            outputs = EvalOutputs(scores=None if out_dir is None else out_dir / f"{stream}.h5")
            results[stream] = evaluate(config, progress=tick, note=note, attrs=attrs, outputs=outputs)
    fusions = []
    for name, streams, weights in FUSIONS:
        if not all(s in results for s in streams):
            continue
        paths = [checkpoints[s] for s in streams]  # named in align's errors
        aligned = align(paths, [results[s].scores for s in streams])
        sources = [out_dir / f"{s}.h5" for s in streams] if out_dir is not None else []
        fused = fuse_scores(aligned, list(weights), "prob", sources)
        metrics = compute_metrics(fused.prob, fused.labels, results[streams[0]].class_names)
        fusions.append(Fusion(name, streams, weights, fused, metrics))
        if out_dir is not None:
            write_scores(out_dir / f"{name}.h5", fused)
    return RunResult(Path(run_dir), which, results, fusions)
