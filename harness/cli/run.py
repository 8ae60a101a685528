"""``harness run``: fit, predict and score methods over the folds of a split (the work is in
:mod:`harness.runner`)."""

from __future__ import annotations

import click
from rich.console import Console

from .errors import friendly_errors
from .options import CONFIG_DIR_OPTION, EXISTING, LOGGER_OPTION, PATH


@click.command("run", short_help="Fit, predict and score methods over a split.")
@click.option("--methods", "methods", default="kmer-ridge,kmer-lgbm", show_default=True,
              help="Comma-separated registered method names (see `harness methods list`).")
@click.option("--data", "data", type=PATH, default=None,
              help="Data directory in the official layout (default: $HARNESS_DATA, else simulated data).")
@click.option("--train", type=EXISTING, default=None, help="Training file (default: DATA/train_sequences.txt).")
@click.option("--snv-pairs", type=EXISTING, default=None,
              help="SNV pair CSV (alt_pos, ref_pos) used when the official all_SNVs_seqs.csv is absent.")
@click.option("--split", type=click.Choice(["holdout", "kfold", "none"]), default="holdout", show_default=True,
              help="holdout: one model, --holdout-fraction held out; kfold: --folds models, every row held out "
                   "once (OOF for `harness ensemble`); none: one model on every training row, no OOF (the "
                   "teams' protocol: reproduces a challenge entry).")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True, help="Folds of a kfold split.")
@click.option("--holdout-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1,
              show_default=True, help="Held-out fraction of a holdout split.")
@click.option("--profile", default="default", show_default=True,
              help="Named profile of each method (see `harness methods list`), e.g. paper or cpu.")
@CONFIG_DIR_OPTION
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed of the split; fold k's model gets seed + k.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "tpu", "mps"]), default="auto", show_default=True,
              help="Where models train; a device this machine lacks is refused before anything is written.")
@click.option("--out", type=PATH, default=None,
              help="Run directory (default: runs/<data>-<train>-<split>-<profile>-s<seed>); re-running resumes.")
@click.option("--skip-bad-rows", is_flag=True, help="Drop bad training rows and report counts instead of failing.")
@click.option("--backend", type=click.Choice(["local", "dask", "ray"]), default="local", show_default=True,
              help="Where the (method, fold) jobs run: local processes (joblib loky), a Dask cluster or Ray.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Jobs at once. local: worker processes (default 1: one after another in this process); "
                   "dask/ray: workers of the cluster started here (default one per core), or a cap on a given cluster.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler to connect to with --backend dask (default: $DASK_SCHEDULER_ADDRESS, "
                   "else a local cluster).")
@click.option("--gpus-per-job", type=click.IntRange(min=1), default=1, show_default=True,
              help="GPUs of each job of a GPU method (--device auto/cuda): with --jobs N on G GPUs, at most "
                   "G // K GPU jobs run at once, each on its own GPUs (CUDA_VISIBLE_DEVICES); CPU methods beside. "
                   "ray: num_gpus=K; dask: resources GPU=K.")
@click.option("--devices", type=click.IntRange(min=1), default=1, show_default=True,
              help="GPUs of one fit of a PyTorch method: > 1 trains it with DDP (Lightning), each GPU on "
                   "batch/N rows of every global batch; its job gets N GPUs (as --gpus-per-job N).")
@LOGGER_OPTION
@friendly_errors
def run(methods, data, train, snv_pairs, split, folds, holdout_fraction, profile, config_dir, seed, device, out,
        skip_bad_rows, backend, jobs, scheduler, gpus_per_job, devices, loggers):
    """Fit each method on each fold, predict out-of-fold and test, score, and print the leaderboard."""
    from ..data import resolve_data_dir
    from ..runner import RunSpec
    from ..runner import run as run_spec
    from ..splits import SplitSpec

    names = [m.strip() for m in methods.split(",") if m.strip()]
    if not names:
        raise click.UsageError("--methods is empty")
    spec = RunSpec(names, resolve_data_dir(data), train, snv_pairs,
                   SplitSpec(split, folds, holdout_fraction, seed), profile, device, out, skip_bad_rows,
                   config_dir=config_dir, backend=backend, jobs=jobs, scheduler=scheduler, gpus_per_job=gpus_per_job,
                   devices=devices, loggers=loggers)
    run_spec(spec, Console())
