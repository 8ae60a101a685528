"""The ``harness`` command line (click). Each command delegates to the module of its concern."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .cli_errors import friendly_errors
from .data import load_test_set, resolve_data_dir

console = Console()
PATH = click.Path(path_type=Path)
EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)
#: ``--config-dir``: the user's profile directory (harness.registry), default $HARNESS_CONFIG, else none
CONFIG_DIR_OPTION = click.option(
    "--config-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), envvar="HARNESS_CONFIG",
    show_envvar=True, default=None,
    help="Your profile directory: tables of DIR/<method>.toml are applied over the profiles the method's package "
         "ships (<package>/configs/<method>.toml); `harness tune` writes [tuned] there.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dream-harness")
def main() -> None:
    """Benchmark, ensemble and export sequence-to-expression models of the DREAM 2022 challenge."""


@main.command()
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
@friendly_errors
def run(methods, data, train, snv_pairs, split, folds, holdout_fraction, profile, config_dir, seed, device, out,
        skip_bad_rows, backend, jobs, scheduler, gpus_per_job):
    """Fit each method on each fold, predict out-of-fold and test, score, and print the leaderboard."""
    from .runner import RunSpec, run as run_spec
    from .splits import SplitSpec

    names = [m.strip() for m in methods.split(",") if m.strip()]
    if not names:
        raise click.UsageError("--methods is empty")
    spec = RunSpec(names, resolve_data_dir(data), train, snv_pairs,
                   SplitSpec(split, folds, holdout_fraction, seed), profile, device, out, skip_bad_rows,
                   config_dir=config_dir, backend=backend, jobs=jobs, scheduler=scheduler, gpus_per_job=gpus_per_job)
    run_spec(spec, console)


@main.command()
@click.argument("pred_file", type=EXISTING)
@click.option("--data", type=PATH, default=None, help="Data directory (default: $HARNESS_DATA).")
@click.option("--board", "boards", type=click.Choice(["public", "private", "full"]), multiple=True,
              help="Board(s) to score (repeatable; default: every board of the data, or the public board "
                   "for a file holding exactly the public ids).")
@click.option("--snv-pairs", type=EXISTING, default=None, help="SNV pair CSV used when the official one is absent.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@friendly_errors
def score(pred_file, data, boards, snv_pairs, as_json):
    """Score a prediction file (challenge JSON or sequence<TAB>prediction) with the official metric.

    Exits 1, naming the test indices, when a board to score lacks a prediction or has a NaN/inf
    one. A board that cannot score every category (no SNV pairs: give --snv-pairs) is scored but
    flagged partial: a warning on stderr and "partial": true with "missing" in --json."""
    from .report import board_table
    from .scoring import board_ids, parse_predictions
    from .scoring import score as score_board

    data_dir = resolve_data_dir(data)
    if data_dir is None:
        raise click.UsageError("give --data DIR or set HARNESS_DATA")
    test = load_test_set(data_dir, snv_pairs)
    parsed = parse_predictions(pred_file, test)
    parsed.raise_problems()
    available = [b for b in ("public", "private", "full") if b == "full" or test.public_ids is not None]
    if boards:
        wanted = list(dict.fromkeys(boards))
        absent = [b for b in wanted if b not in available]
        if absent:
            raise click.ClickException(f"{data_dir}: no public_leaderboard_ids/, so board(s) {', '.join(absent)} "
                                       "cannot be scored")
    elif test.public_ids is not None and np.array_equal(np.flatnonzero(parsed.given), test.public_ids):
        wanted = ["public"]
        click.echo(f"note: {pred_file} holds exactly the {len(test.public_ids):,} public-leaderboard ids: "
                   "scored on the public board only", err=True)
    else:
        wanted = available
    refusals = [f"  {b} board: {why}" for b in wanted if (why := parsed.coverage(board_ids(test, b)))]
    if refusals:
        raise click.ClickException("\n".join([f"{pred_file}: cannot score every board asked for "
                                               f"({parsed.n_values:,} of {len(test):,} test indices given)"]
                                              + refusals))
    results = {b: score_board(parsed.values, test, b) for b in wanted}
    for b, r in results.items():
        if r.partial:
            why = f" (SNV pairs: {r.snv_source}; give --snv-pairs FILE)" if "SNVs" in r.missing else ""
            click.echo(f"warning: PARTIAL {b} board: cannot score {', '.join(r.missing)}{why}; "
                       "they count 0 while the sums are still divided by 4.65, so this is not the challenge's score",
                       err=True)
    if as_json:
        click.echo(json.dumps({"partial": any(r.partial for r in results.values()),
                               "boards": {b: r.to_dict() for b, r in results.items()}}, indent=2))
    else:
        for b, r in results.items():
            console.print(board_table(r, f"{pred_file.name} · {b} board"))


@main.group()
def methods() -> None:
    """List registered methods or scaffold a new plug-in."""


@methods.command("list")
@CONFIG_DIR_OPTION
@friendly_errors
def methods_list(config_dir):
    """Registered methods: name, source package, framework, parameter count of the default config, profiles
    (shipped and from --config-dir)."""
    from . import registry

    table = Table(title="Registered methods")
    for col in ("name", "package", "framework", "parameters", "profiles"):
        table.add_column(col, justify="right" if col == "parameters" else "left")
    broken = []
    for name, cls in registry.available().items():
        try:  # one plug-in that cannot build its default model must not hide the others
            n = cls().num_parameters()
            params = "—" if n is None else f"{n:,}"
        except Exception as exc:  # noqa: BLE001 - reported under the table
            params = "error"
            broken.append(f"{name}: {type(exc).__name__}: {exc}")
        table.add_row(name, registry.source_of(name), cls.framework, params,
                      ", ".join(registry.profile_names(cls, config_dir)))
    console.print(table)
    for line in broken:
        console.print(f"[red]{escape(line)}")


@methods.command("new")
@click.argument("name")
@click.option("--dir", "parent", type=PATH, default=Path("."), show_default=True, help="Where to create the package.")
@friendly_errors
def methods_new(name, parent):
    """Scaffold a plug-in package harness-NAME that registers through the entry point."""
    from .scaffold import scaffold

    root = scaffold(name, parent)
    console.print(f"created {root}\nnext: pip install -e {root} && harness methods list && pytest {root}/tests")


def _add_commands() -> None:
    from .data.check import data_group
    from .ensemble import ensemble_cmd
    from .export import export_cmd, validate_cmd
    from .leaderboard import leaderboard_cmd
    from .tune import tune_cmd

    for command in (data_group, ensemble_cmd, leaderboard_cmd, export_cmd, validate_cmd, tune_cmd):
        main.add_command(command)
    from .cli_predict import predict_cmd, variant_effect_cmd  # harness predict / variant-effect
    main.add_command(predict_cmd)
    main.add_command(variant_effect_cmd)


_add_commands()



if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
