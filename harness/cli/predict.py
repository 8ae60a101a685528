"""``harness predict`` and ``harness variant-effect``: apply a finished run to a user's sequences
(the work is in :mod:`harness.predict`)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from .errors import friendly_errors

RUN_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
OUT = click.Path(dir_okay=False, path_type=Path)
DEVICES = click.Choice(["auto", "cpu", "cuda", "mps"])
#: Inputs of at least this many sequences get a progress bar (on stderr, when it is a terminal).
PROGRESS_MIN = 10_000


@contextlib.contextmanager
def _progress(total: int, n: int, what: str):
    """A callback advancing a progress bar of ``total`` steps (shown for ``n >= PROGRESS_MIN``)."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True, disable=n < PROGRESS_MIN)
    with progress:
        task = progress.add_task(what, total=total)
        yield lambda: progress.advance(task)


def _open(run_dir: Path, method: str, device: str):
    from ..predict import RunPredictor

    return RunPredictor.open(run_dir, method, device)


@click.command("predict", short_help="Predict sequences with a finished run.")
@click.argument("run_dir", type=RUN_DIR)
@click.argument("seqs", type=FILE)
@click.option("--method", required=True, help="A method of the run, or 'ensemble' (needs its saved stacker).")
@click.option("--out", type=OUT, default=None, help="TSV file to write (atomically; default: standard output).")
@click.option("--device", type=DEVICES, default="auto", show_default=True, help="Where the fold models predict.")
@friendly_errors
def predict_cmd(run_dir: Path, seqs: Path, method: str, out: Path | None, device: str) -> None:
    """Predict SEQS with a finished run: the mean of the method's fold models, as its test.npy was made.

    SEQS: one sequence a line, sequence<TAB>anything lines (a training or test file), or FASTA;
    plain or gzip. Output: '# ' header lines (run, method, units), then id<TAB>sequence<TAB>prediction
    (id: the FASTA name, else the line number)."""
    from ..data.readers import read_sequences
    from ..predict import format_float, header_lines, write_output

    predictor = _open(run_dir, method, device)
    table = read_sequences(seqs)
    with _progress(predictor.steps(len(table)), len(table), f"{method}: {len(table):,} sequences") as step:
        pred = predictor.predict_table(table, step)
    lines = header_lines("predict", run_dir, predictor, len(table))
    lines.append("id\tsequence\tprediction")
    ids = table.meta["ids"]
    lines += [f"{i}\t{s}\t{format_float(p)}" for i, s, p in zip(ids, table.sequences(), pred.tolist())]
    write_output("\n".join(lines) + "\n", out)
    if out is not None:
        click.echo(f"wrote {len(table):,} predictions to {out}", err=True)


@click.command("variant-effect", short_help="Predicted effects of sequence variants.")
@click.argument("run_dir", type=RUN_DIR)
@click.argument("pairs", type=FILE, required=False)
@click.option("--method", required=True, help="A method of the run, or 'ensemble' (needs its saved stacker).")
@click.option("--ref", "ref", default=None, metavar="SEQUENCE",
              help="The reference sequence of a PAIRS file with columns pos, alt_base (instead of a ref column).")
@click.option("--ism", "ism_seq", default=None, metavar="SEQUENCE",
              help="In-silico saturation mutagenesis of SEQUENCE (every position x A, C, G, T) instead of PAIRS.")
@click.option("--out", type=OUT, default=None, help="TSV file to write (atomically; default: standard output).")
@click.option("--png", type=OUT, default=None,
              help="Heat map of --ism (default: --out with suffix .png, else ism.png).")
@click.option("--device", type=DEVICES, default="auto", show_default=True, help="Where the fold models predict.")
@friendly_errors
def variant_effect_cmd(run_dir: Path, pairs: Path | None, method: str, ref: str | None, ism_seq: str | None,
                       out: Path | None, png: Path | None, device: str) -> None:
    """Predicted effect (alt - ref) of sequence variants, with both predictions.

    PAIRS: a tab-separated file with a header and columns ref, alt (two sequences a row), or pos,
    alt_base (1-based position, new base) with a ref column or --ref SEQUENCE; an id column names the
    rows. --ism SEQUENCE instead writes every single-nucleotide substitution's effect (TSV: pos,
    ref_base, A, C, G, T) and a heat map PNG."""
    from ..predict import (
        format_float,
        header_lines,
        ism_heatmap,
        read_pairs,
        write_output,
    )

    if (pairs is None) == (ism_seq is None):
        raise click.UsageError("give either PAIRS or --ism SEQUENCE")
    if ism_seq is not None and (ref is not None):
        raise click.UsageError("--ref goes with PAIRS, not with --ism")
    if png is not None and ism_seq is None:
        raise click.UsageError("--png goes with --ism")
    predictor = _open(run_dir, method, device)
    if ism_seq is not None:
        seq = ism_seq.strip()
        n = 1 + 3 * len(seq)
        with _progress(predictor.steps(n), n, f"{method}: ISM of {len(seq)} nt") as step:
            pred_ref, effects = predictor.ism(seq, step)
        lines = header_lines("variant-effect --ism", run_dir, predictor, n)
        lines += [f"# sequence: {seq}", f"# prediction of the sequence: {format_float(pred_ref)}",
                  "# effect = prediction(mutant) - prediction(sequence); 0 at the sequence's own base",
                  "pos\tref_base\t" + "\t".join("ACGT")]
        lines += [f"{p + 1}\t{seq[p].upper()}\t" + "\t".join(format_float(v) for v in row)
                  for p, row in enumerate(effects.tolist())]
        write_output("\n".join(lines) + "\n", out)
        png = png or (out.with_suffix(".png") if out is not None else Path("ism.png"))
        ism_heatmap(effects, seq, png, f"ISM · {method} · {run_dir.name}", predictor.units)
        click.echo(f"wrote the heat map {png}" + (f" and {out}" if out is not None else ""), err=True)
        return

    variants = read_pairs(pairs, ref)
    n = len(set(variants.ref) | set(variants.alt))
    with _progress(predictor.steps(n), n, f"{method}: {len(variants.ref):,} pairs") as step:
        result = predictor.variant_effects(variants.ref, variants.alt, step)
    lines = header_lines("variant-effect", run_dir, predictor, n)
    lines.append("# effect = pred_alt - pred_ref")
    numbers = [result["pred_ref"], result["pred_alt"], result["effect"]]
    values = ["\t".join(format_float(v) for v in row) for row in np.column_stack(numbers).tolist()]
    if variants.pos is None:
        lines.append("id\tref\talt\tpred_ref\tpred_alt\teffect")
        lines += [f"{i}\t{r}\t{a}\t{v}" for i, r, a, v in zip(variants.ids, variants.ref, variants.alt, values)]
    else:
        if ref is not None:
            lines.append(f"# ref: {ref.strip()}")
        lines.append("id\tpos\tref_base\talt_base\tpred_ref\tpred_alt\teffect")
        lines += [f"{i}\t{p}\t{rb}\t{ab}\t{v}" for i, p, rb, ab, v in
                  zip(variants.ids, variants.pos.tolist(), variants.ref_base, variants.alt_base, values)]
    write_output("\n".join(lines) + "\n", out)
    if out is not None:
        click.echo(f"wrote {len(values):,} variant effects to {out}", err=True)
