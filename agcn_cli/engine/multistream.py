"""`agcn train --modality all` (or a comma list): several streams of one recipe in one process.

RUN_DIR/config.json holds the resolved config (its `modality` the list); each stream is an
ordinary run folder, RUN_DIR/STREAM/ (config.json, metrics.jsonl, train.log, last.pt,
best.pt), exactly what `agcn train --modality STREAM --out RUN_DIR/STREAM` writes: its
checkpoints are single-stream checkpoints, and `agcn train --resume --out RUN_DIR` goes on with
every stream (a stream folder can also be resumed alone).

Each stream is the same function as its single-stream run: `setup_run` seeds the global RNGs
before each stream's data and model, so each starts from the weights a separate run would;
the streams' loaders have the same seed, so each draws the batches and clip indices a separate
run would; and each stream keeps its own global RNG states between its steps (`Run.rng`,
swapped in around each step), so dropout, say, draws what it would alone. The streams then
train in lock-step, one batch of each per step, over the same sample order.

A stream whose loss turns non-finite stops with its error in its train.log; the others go
on, and the command fails at the end naming it. Interrupted (SIGINT/SIGTERM), every stream
saves its last.pt at the same step. A stream that a kill left behind the others (its last.pt
an epoch older) trains alone until it catches up; a stream with no last.pt yet starts afresh.
"""

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import AgcnError
from ..io.atomic import atomic_output
from ..skeleton.streams import STREAMS
from . import distributed
from . import fit as single
from .config import TrainConfig
from .device import resolve_device, tf32
from .fit import Run, end_epoch, nonfinite_error, run_summary, save_interrupted, setup_run, stopped_between, thaw
from .loop import stopping, train_step
from .rng import rng_state, set_rng_state
from .rundir import RUN_FILES, RunLog, hold_run_dir, summary_line
from .signals import StopSignals


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def train(config: TrainConfig, log: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """`agcn train`: one stream (`engine.fit.fit`) or several together (`fit_streams`)."""
    config.check()
    if config.modality in config.streams:  # one stream, named as such: the single-stream run
        return single.fit(config, log)
    return fit_streams(config, log)


def fit_streams(config: TrainConfig, log: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Train the streams `config.modality` names together; each into RUN_DIR/STREAM.

    Returns `streams` (each stream's `fit` summary, by name), `failed` (stream -> error line),
    `interrupted` (the signal's name, or None), `run_dir` and `rank`. Raises AgcnError after
    the others end when a stream failed.
    """
    config.check()
    streams, parent = config.streams, Path(config.out)
    if config.resume and not any((parent / s / "last.pt").is_file() for s in streams):
        raise AgcnError(
            f"{parent}: no STREAM/last.pt of {', '.join(streams)} to resume from; start the run without --resume"
        )
    cuda = resolve_device(config.device).type == "cuda"
    ctx = distributed.init("cuda" if cuda else "cpu")
    deterministic = torch.are_deterministic_algorithms_enabled()
    logs = {s: RunLog(_prefixed(log, s) if ctx.is_main else None) for s in streams}
    held = ExitStack()  # rank 0: the locks of RUN_DIR and of each stream's folder
    if config.compile:
        held.enter_context(_compile_room(len(streams)))
    try:
        device = torch.device("cuda", ctx.local_rank) if cuda else torch.device("cpu")
        distributed.on_main(ctx, lambda: held.enter_context(_hold_parent(parent)))
        with tf32(config.precision == "tf32"):
            runs = []
            for s in streams:
                runs.append(setup_run(_stream_config(config, s), logs[s], device, ctx, held))
                runs[-1].rng, runs[-1].resume_dir = rng_state(), parent  # its RNGs as a separate run has them
            if ctx.is_main:
                with atomic_output(parent / "config.json") as tmp:
                    tmp.write_text(json.dumps(asdict(config), indent=2) + "\n")
            summary = _train_together(runs)
        for s, one in summary["streams"].items():
            if s not in summary["failed"]:
                logs[s].record(summary_line(one))
    except AgcnError as e:
        for run_log in logs.values():
            run_log.record(f"error: {' '.join(str(e).splitlines())}")
        raise
    finally:
        for run_log in logs.values():
            run_log.close()
        held.close()
        torch.use_deterministic_algorithms(deterministic)
        distributed.cleanup(ctx)
    if summary["failed"] and not summary["interrupted"]:  # each failed stream's train.log says why
        raise AgcnError("; ".join(summary["failed"].values()))
    return summary


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


def _prefixed(log: Callable[[str], None], stream: str) -> Callable[[str], None]:
    return lambda line: log(f"[{stream}] {line}")


def _stream_config(config: TrainConfig, stream: str) -> TrainConfig:
    """The single-stream run of `stream` inside RUN_DIR. Resuming, a stream that has no last.pt
    yet (killed before its first epoch ended) starts afresh, replacing what it had begun."""
    out = Path(config.out) / stream
    begun = (out / "last.pt").is_file()
    resume = config.resume and begun
    overwrite = config.overwrite or (config.resume and not begun)
    return replace(config, modality=stream, out=str(out), resume=resume, overwrite=overwrite)


def _hold_parent(parent: Path) -> AbstractContextManager[None]:
    """RUN_DIR's lock; refused when RUN_DIR holds a single-stream run (its files would mix with ours)."""
    single = [name for name in RUN_FILES if name != "config.json" and (parent / name).exists()]
    try:
        saved = json.loads((parent / "config.json").read_text()) if (parent / "config.json").is_file() else {}
    except (OSError, ValueError):
        saved = {"modality": "?"}
    if single or (isinstance(saved, dict) and saved.get("modality", "all") in STREAMS + ("?",)):
        raise AgcnError(
            f"{parent}: holds a single-stream run ({', '.join(single) or 'config.json'}); "
            "give the streams another --out"
        )
    return hold_run_dir(parent)


def _train_together(runs: list[Run]) -> dict[str, Any]:
    """The streams' epochs in lock-step, until the end (or `stop_after`) or a signal."""
    config = runs[0].config
    end = config.epochs if config.stop_after is None else min(config.epochs, config.stop_after)
    progress = {id(run): (run.start, None) for run in runs}  # epochs completed, the last metrics row
    t_runs = {id(run): time.perf_counter() - run.wall0 for run in runs}
    failed: dict[str, str] = {}
    interrupted = None
    with StopSignals() as stop, ExitStack() as files:
        signalled = stop.signalled
        for run in runs:
            if run.metrics_log is not None:
                files.enter_context(run.metrics_log)
        for epoch in range(min(run.start for run in runs), end):
            active = [run for run in runs if run.start <= epoch and run.config.modality not in failed]
            if not active:
                break
            if stopping(signalled, runs[0].ctx):  # between epochs: each last.pt holds the one before
                for run in active:
                    stopped_between(run, epoch, stop.name)
                interrupted = stop.name
                break
            for run in active:
                thaw(run, epoch)
            _epoch_together(active, epoch, stop=signalled)
            for run in active:
                if run.stats.nonfinite:
                    error = nonfinite_error(run, epoch)
                    run.log(f"error: {error}")
                    failed[run.config.modality] = f"{run.config.modality}: {error}"
                    continue
                t_run = t_runs[id(run)]
                row = end_epoch(run, epoch, t_run, signalled) if run.stats.step == len(run.loader) else None
                if row is None:  # a signal in training or validation: every stream saves where it is
                    save_interrupted(run, epoch, time.perf_counter() - t_run, stop.name)
                    interrupted = stop.name
                else:
                    progress[id(run)] = (epoch + 1, row)
            if interrupted:
                break
    summaries = {run.config.modality: run_summary(run, *progress[id(run)], interrupted=interrupted) for run in runs}
    ctx = runs[0].ctx
    return {
        "streams": summaries,
        "failed": failed,
        "interrupted": interrupted,
        "run_dir": str(runs[0].resume_dir),
        "rank": ctx.rank,
    }


def _epoch_together(runs: list[Run], epoch: int, stop: Callable[[], bool]) -> None:
    """One epoch of each stream in `runs`, one step of each per batch, from each one's `stats.step`."""
    from tqdm import tqdm

    ctx, steps = runs[0].ctx, len(runs[0].loader)
    first = {id(run): run.stats.step for run in runs}  # batches done before an interruption
    batches = {}
    for run in runs:
        run.loader.set_epoch(epoch)
        run.train_model.train()
        batches[id(run)] = iter(run.loader)
        for _ in range(first[id(run)]):  # the same batches, not trained again
            next(batches[id(run)])
    live = list(runs)
    with tqdm(
        total=steps,
        initial=min(first.values()),
        desc=f"epoch {epoch + 1}/{runs[0].config.epochs} ({len(runs)} streams)",
        unit="batch",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=None if ctx.is_main else True,
        leave=False,
    ) as bar:
        t0, before = time.perf_counter(), sum(run.stats.samples for run in runs)
        for b in range(min(first.values()), steps):
            if stopping(stop, ctx):  # a signal after the last step's own check: no further batch
                break
            stop_now = False
            for run in [run for run in live if b >= first[id(run)]]:
                stop_now |= _step(run, batches[id(run)], stop)
                if run.stats.nonfinite:
                    live.remove(run)
            rate = (sum(run.stats.samples for run in runs) - before) * ctx.world_size / (time.perf_counter() - t0)
            bar.set_postfix(streams=len(live), sps=f"{rate:.0f}", refresh=False)
            bar.update()
            if stop_now or not live:
                break


def _step(run: Run, batches: Any, stop: Callable[[], bool]) -> bool:
    """One training step of `run` on its next batch, under its own RNG states; whether to stop."""
    t0 = time.perf_counter()
    batch = next(batches)
    t_batch = time.perf_counter()
    set_rng_state(run.rng)
    stop_now = train_step(
        run.train_model,
        batch,
        run.optimizer,
        run.scheduler,
        run.device,
        run.stats,
        amp_dtype=run.amp_dtype,
        ctx=run.ctx,
        stop=stop,
    )
    run.rng = rng_state()
    run.stats.data_wait += t_batch - t0
    run.stats.seconds += time.perf_counter() - t0
    return stop_now
