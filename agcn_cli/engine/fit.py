"""`agcn train`: the MMAction2 2s-AGCN recipe as defaults, one stream or several, one process or DDP
under torchrun.

Recipe (MMAction2 `2s-agcn_8xb16-*-u100-80e_ntu60-xsub-keypoint-3d`): one uniformly sampled
clip of 100 frames, 2 persons; SGD lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4;
cross-entropy; cosine annealing to 0 stepped every iteration; total batch 128 (16 x 8 GPUs).

Epochs: MMAction2 trains 16 epochs of a RepeatDataset(times=5), i.e. 80 passes over the
training set, and validates after each of its epochs. Here an epoch is one pass, so
`epochs=80` gives the reference's iteration count and schedule, and `val_every=5` its
validation points. The learning rate is given for `base_batch_size` (128) and, with
`auto_scale_lr` (on by default, MMAction2's `--auto-scale-lr`), scaled linearly to the
total batch actually used: lr x batch_size / base_batch_size.

Run folder: `config.json` (the resolved config and the run's record, engine/record.py),
`metrics.jsonl` (one object per epoch, accuracies as fractions), `train.log` (the `log` lines,
engine/rundir.RunLog), `last.pt` (every epoch, and on SIGINT/SIGTERM mid-epoch) and `best.pt`
(best validation top-1), written by rank 0 only (the files atomically). Set-up, resume and
last.pt: engine/run.py; the epoch and the step: engine/loop.py.

Several streams (`--modality all`, or a comma list) train together: RUN_DIR/config.json holds
the resolved config (its `modality` the list) and each stream is an ordinary run folder,
RUN_DIR/STREAM/, exactly what `agcn train --modality STREAM --out RUN_DIR/STREAM` writes, so
`agcn train --resume --out RUN_DIR` goes on with every stream (a stream folder can also be resumed
alone). A single-stream run is the same driver with one stream in RUN_DIR itself. Each stream's
set-up seeds the global RNGs, so it starts from the weights a separate run would; the loaders have
the same seed, so each draws the batches and clip indices a separate run would; and each keeps its
own global RNG states between its steps (engine/loop.py). A stream whose loss turns non-finite
stops with its error in its train.log; the others go on, and the command fails at the end naming
it. Interrupted (SIGINT/SIGTERM), every stream saves its last.pt at the same step. A stream that a
kill left behind the others (its last.pt an epoch older) trains alone until it catches up; a
stream with no last.pt yet starts afresh.
"""

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import AgcnError
from ..io.atomic import atomic_output
from ..skeleton.streams import STREAMS
from . import distributed
from .config import TrainConfig
from .device import resolve_device, tf32
from .distributed import Dist
from .loop import Progress, stopping, train_one_epoch, validate
from .rng import rng_state
from .run import EpochStats, Run, save_last, setup_run, thaw
from .rundir import RunLog, epoch_line, hold_streams_dir, stream_config, summary_line
from .signals import StopSignals


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def fit(config: TrainConfig, log: Callable[[str], None] = _stderr, progress: Progress | None = None) -> dict[str, Any]:
    """Train (or resume) the run `config` describes, in this process or as one torchrun rank:
    one stream into RUN_DIR, or several (`config.streams`), each into RUN_DIR/STREAM.

    One stream returns its summary: `epoch` (epochs completed), `interrupted` (the signal's name,
    or None), `best_top1`, `best_epoch`, `last` (the last metrics row), `run_dir` and `rank`.
    Several return `streams` (each one's summary, by name), `failed` (stream -> error line),
    `interrupted`, `run_dir` and `rank`, and raise AgcnError after the others end when a stream
    failed. `progress`: the epochs' progress display (engine/loop.Progress), rank 0 only.
    """
    config.check()
    together = config.modality not in STREAMS  # a list (even of one): RUN_DIR/STREAM each, lines `[STREAM] `
    parent = Path(config.out)
    if together and config.resume and not any((parent / s / "last.pt").is_file() for s in config.streams):
        raise AgcnError(
            f"{parent}: no STREAM/last.pt of {', '.join(config.streams)} to resume from; start the run without --resume"
        )
    cuda = resolve_device(config.device).type == "cuda"
    ctx = distributed.init("cuda" if cuda else "cpu")
    deterministic = torch.are_deterministic_algorithms_enabled()
    logs = {s: RunLog(_stream_log(log, s, together) if ctx.is_main else None) for s in config.streams}
    held = ExitStack()  # rank 0: the locks of RUN_DIR and of each stream's folder (rundir.hold_run_dir)
    if config.compile:
        held.enter_context(_compile_room(len(config.streams)))
    try:
        device = torch.device("cuda", ctx.local_rank) if cuda else torch.device("cpu")
        if together:
            distributed.on_main(ctx, lambda: held.enter_context(hold_streams_dir(parent)))
        with tf32(config.precision == "tf32"):
            runs = _setup(config, logs, device, ctx, held, together)
            interrupted, failed = _epochs(runs, together, progress)
        summaries = {run.stream: run_summary(run, interrupted) for run in runs}
        for s, summary in summaries.items():
            if s not in failed:  # the line `agcn train` prints last, on stdout
                logs[s].record(summary_line(summary))
    except AgcnError as e:  # the command line prints it as `error: ...`; the log keeps it too
        for run_log in logs.values():
            run_log.record(f"error: {' '.join(str(e).splitlines())}")
        raise
    finally:
        for run_log in logs.values():
            run_log.close()
        held.close()  # after train.log is closed: a failed --overwrite puts the old run's back
        torch.use_deterministic_algorithms(deterministic)  # process-wide: leave it as found
        distributed.cleanup(ctx)
    if failed and not interrupted:  # each failed stream's train.log says why
        raise AgcnError("; ".join(failed.values()))
    if not together:
        return summaries[config.modality]
    return {
        "streams": summaries,
        "failed": failed,
        "interrupted": interrupted,
        "run_dir": str(parent),
        "rank": ctx.rank,
    }


def _stream_log(log: Callable[[str], None], stream: str, together: bool) -> Callable[[str], None]:
    """The terminal lines of one stream: prefixed `[stream] ` beside others."""
    return (lambda line: log(f"[{stream}] {line}")) if together else log


@contextmanager
def _compile_room(streams: int) -> Iterator[None]:
    """torch.compile keeps up to `recompile_limit` (8) compiled versions per code object, and the
    streams' models share AGCN.forward's: each needs its own (a guard on the module) and one more
    for the last, smaller batch, so 4 streams would use all 8 and a fifth version would fall back
    to eager. Room for 8 per stream while the run lasts."""
    import torch._dynamo.config as dynamo

    saved = dynamo.recompile_limit
    dynamo.recompile_limit = max(saved, 8 * streams)
    try:
        yield
    finally:
        dynamo.recompile_limit = saved


def _setup(
    config: TrainConfig, logs: dict[str, RunLog], device: torch.device, ctx: Dist, held: ExitStack, together: bool
) -> list[Run]:
    """Each stream's run (engine/run.py), set up in turn; several streams: RUN_DIR/config.json too."""
    runs = []
    for s, run_log in logs.items():
        runs.append(setup_run(stream_config(config, s) if together else config, run_log, device, ctx, held))
        if together:  # its RNG states as a separate run has them, kept apart from the others' from here on
            runs[-1].rng, runs[-1].resume_dir = rng_state(), Path(config.out)
    if together and ctx.is_main:
        with atomic_output(Path(config.out) / "config.json") as tmp:
            tmp.write_text(json.dumps(asdict(config), indent=2) + "\n")
    return runs


# ---- the epochs --------------------------------------------------------------------------------


def _epochs(runs: list[Run], together: bool, progress: Progress | None) -> tuple[str | None, dict[str, str]]:
    """The runs' epochs in lock-step, until the end (or `stop_after`) or a signal: the signal's name
    (or None) and the streams that failed, with their error lines."""
    config, ctx = runs[0].config, runs[0].ctx
    end = config.epochs if config.stop_after is None else min(config.epochs, config.stop_after)
    failed: dict[str, str] = {}
    with StopSignals() as stop, ExitStack() as files:
        for run in runs:
            run.clock = time.perf_counter() - run.wall0  # the run's training seconds go on from last.pt's
            if run.metrics_log is not None:
                files.enter_context(run.metrics_log)
        for epoch in range(min(run.done for run in runs), end):
            active = [run for run in runs if run.done <= epoch and run.stream not in failed]
            if not active:
                break
            if stopping(stop.signalled, ctx):  # between epochs: each last.pt holds the one before
                for run in active:
                    stopped_between(run, epoch, stop.name)
                return stop.name, failed
            for run in active:
                thaw(run, epoch)
            train_one_epoch(active, epoch, stop.signalled, progress)
            interrupted = None
            for run in active:
                if run.stats.nonfinite:
                    error = nonfinite_error(run, epoch)
                    # beside others (which go on) the error shows now; alone, `agcn train` prints it as it ends
                    (run.log if together else run.log.record)(f"error: {error}")
                    failed[run.stream] = f"{run.stream}: {error}" if together else str(error)
                elif not end_epoch(run, epoch, stop.signalled):  # a signal: every stream saves where it is
                    save_interrupted(run, epoch, stop.name)
                    interrupted = stop.name
            if interrupted:
                return interrupted, failed
    return None, failed


def end_epoch(run: Run, epoch: int, stop: Callable[[], bool]) -> bool:
    """After the epoch's training: all ranks' sums, validation when due, best.pt / last.pt / metrics
    (rank 0), the epoch line; `run.done` and `run.last` move on. False, with nothing saved, when a
    signal stopped the training or `stop()` the validation: the caller saves the epoch as an
    interrupted one, and the resumed run validates it."""
    config = run.config
    if run.stats.step < len(run.loader):
        return False
    sums = distributed.all_sum([run.stats.loss_sum, run.stats.correct, run.stats.samples], run.ctx)
    row = _train_row(run, epoch, sums)
    if run.val_loader is not None and ((epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs):
        distributed.broadcast_buffers_(run.model, run.ctx)  # score the model rank 0 saves
        val = validate(run.model, run.val_loader, run.device, amp_dtype=run.amp_dtype, ctx=run.ctx, stop=stop)
        if val is None:
            return False
        row.update(val_top1=val["top1"], val_top5=val["top5"], val_loss=val["loss"])
    improved = row.get("val_top1", -1.0) > run.best["top1"]
    if improved:
        run.best = {"top1": row["val_top1"], "epoch": epoch + 1}
    row["epoch_s"], row["wall_s"] = run.stats.seconds, run.wall()
    if run.ctx.is_main:
        _save_epoch(run, row, improved)
    run.log(epoch_line(row, config.epochs, run.best))
    run.stats = EpochStats()
    run.done, run.last = epoch + 1, row
    return True


def _train_row(run: Run, epoch: int, sums: list[float]) -> dict[str, Any]:
    """The epoch's metrics row, training part; `sums`: loss, hits and samples of all ranks."""
    loss_sum, correct, samples = sums
    return {
        "epoch": epoch + 1,
        "train_loss": loss_sum / samples,
        "train_acc": correct / samples,  # a fraction, as every accuracy in files (data_specs/outputs.md)
        "train_samples": int(samples),
        "lr": run.stats.lr,
        "samples_per_s": samples / run.stats.seconds,
        "data_wait_s": run.stats.data_wait,
    }


def _save_epoch(run: Run, row: dict[str, Any], improved: bool) -> None:
    """After a whole epoch (rank 0): last.pt, best.pt when validation improved, the metrics row."""
    save_last(run, row["epoch"], None, row["wall_s"])
    if improved:
        with atomic_output(run.run_dir / "best.pt") as tmp:
            shutil.copyfile(run.run_dir / "last.pt", tmp)
    run.metrics_log.write(row)


# ---- stopping ----------------------------------------------------------------------------------


def stopped_between(run: Run, epoch: int, signal_name: str) -> None:
    """The line for a signal that came between two epochs (nothing to save: last.pt holds `epoch`)."""
    held = f"{run.run_dir / 'last.pt'} holds epoch {epoch}" if epoch else "no checkpoint was written yet"
    hint = f"continue with: agcn train --resume --out {run.resume_dir}"
    run.log(f"{signal_name}: stopped before epoch {epoch + 1}; {held}; {hint}")


def save_interrupted(run: Run, epoch: int, signal_name: str) -> None:
    """last.pt in the middle of `epoch`: rank 0 saves the sums of all ranks so far; the resume hint."""
    wall = run.wall()
    sums = distributed.all_sum([run.stats.loss_sum, run.stats.correct, run.stats.samples], run.ctx)
    if run.ctx.is_main:
        loss_sum, correct, samples = sums
        save_last(run, epoch, replace(run.stats, loss_sum=loss_sum, correct=int(correct), samples=int(samples)), wall)
    where = "after its training, before validation" if run.stats.step == len(run.loader) else f"batch {run.stats.step}"
    run.log(
        f"{signal_name}: saved {run.run_dir / 'last.pt'} at epoch {epoch + 1}, {where}; "
        f"continue with: agcn train --resume --out {run.resume_dir}"
    )


def nonfinite_error(run: Run, epoch: int) -> AgcnError:
    kept = f"{run.run_dir / 'last.pt'} holds epoch {epoch}" if epoch else "no checkpoint was written"
    return AgcnError(
        f"non-finite training loss at epoch {epoch + 1}, batch {run.stats.step + 1}: stopped; "
        f"{kept}. Lower --lr, or check the data (agcn info {run.loader.dataset.path})"
    )


def run_summary(run: Run, interrupted: str | None) -> dict[str, Any]:
    """One stream's summary (`fit`'s, alone); `summary_line` says it in words."""
    return {
        "epoch": run.done,
        "interrupted": interrupted,
        "best_top1": run.best["top1"],
        "best_epoch": run.best["epoch"],
        "last": run.last,
        "run_dir": str(run.run_dir),
        "rank": run.ctx.rank,
    }
