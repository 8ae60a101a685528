"""``harness leaderboard``: methods × test categories of one or more runs, optionally beside the
published challenge entries, as a terminal table, Markdown, CSV or one self-contained HTML report.

Rows are ranked as the challenge ranked (Rafi et al. 2024): by the mean of each entry's ranks on the
Pearson score (Σ wᵢ·rᵢ² / 4.65) and on the Spearman score (Σ wᵢ·ρᵢ / 4.65) of the chosen board
(:func:`harness.report.rank_methods`). Every score is computed here from the method's ``test.npy``
(read with ``allow_pickle=False``, checked for shape and finite values by
:func:`harness.runner.load_predictions`) with the run's test set (71k rows: well under a second per
board): ``scores.json`` is an informative cache that could be stale or edited, so it is never the
source of a reported score (a method with ``scores.json`` but no ``test.npy`` is left out, with a
note). A partial board score (a category that cannot be scored) is marked ``*`` in every format and
explained in the notes (:func:`harness.report.score_text`). Published entries (``--reference``) are
prediction files scored by the same scorer (:mod:`harness.scoring`) on the first run's test set;
files holding only the 9,045 public-leaderboard ids appear on the public board only and are listed
as absent elsewhere.

The HTML report embeds its plots as base64 PNG (matplotlib, Agg canvas; no pyplot state, no
external file or network resource): per-category Pearson r / Spearman ρ bars for each entry,
predicted-vs-measured hexbins for the best method (of the runs, not an ensemble; else the best
published entry) and for every ensemble, and the correlation matrix
of the entries' test predictions on the board.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from .data import DataError, TestSet, load_test_set, resolve_data_dir
from .cli_errors import friendly_errors
from .ensemble import ENSEMBLE, read_run_json, run_methods, run_test_set, same_snv_source, snv_pairs_of
from .io import read_json, write_text
from .report import partial_note, rank_methods, score_text
from .scoring import BOARDS, WEIGHTS, BoardScore, read_predictions, score
from .scoring.scorer import board_members

FORMATS = ("table", "md", "csv", "html")
PREDICTION_SUFFIXES = (".json", ".txt", ".tsv")
#: Default reference directory inside a data directory (the published challenge predictions).
REFERENCE_DIR = "reference_predictions"


@dataclass
class Entry:
    """One leaderboard row before ranking.

    Attributes:
        name: display name (``<run dir>/<method>`` when the method name clashes across runs).
        method: the method's own name (or the prediction file's stem for an external entry).
        source: the run directory's name, or ``"published"`` for an external entry.
        external: True for a published challenge entry (``--reference``).
        boards: board -> :class:`BoardScore` for every board the entry covers.
        pred_path: the run's ``test.npy`` or the published prediction file.
        run_dir: the run directory (None for an external entry).
        note: e.g. the ensemble's fallback decision, or ``"public-leaderboard ids only"``.
    """

    name: str
    method: str
    source: str
    external: bool
    boards: dict[str, BoardScore]
    pred_path: Path | None = None
    run_dir: Path | None = None
    note: str = ""
    simulated: bool = False
    _pred: np.ndarray | None = field(default=None, repr=False)

    def predictions(self, test: TestSet | None) -> np.ndarray | None:
        """``(N_test,) float64`` test predictions (NaN where a public-only file has none), or None."""
        if self._pred is None and self.pred_path is not None and test is not None:
            if self.pred_path.suffix == ".npy":
                from .runner import load_predictions

                self._pred = load_predictions(self.pred_path, len(test))
            else:
                self._pred = read_predictions(self.pred_path, test)
        return self._pred


@dataclass
class Row:
    """A ranked (``rank`` ≥ 1) or absent (``rank`` None) entry on one board."""

    rank: int | None
    entry: Entry
    score: BoardScore | None


@dataclass
class Leaderboard:
    """The entries of one board, ranked; ``test`` is the primary test set when it was loaded."""

    board: str
    rows: list[Row]
    notes: list[str]
    test: TestSet | None = None

    @property
    def ranked(self) -> list[Row]:
        """The rows with a rank (entries that have this board), best first."""
        return [r for r in self.rows if r.rank is not None]

    def category_n(self) -> dict[str, int | None]:
        """Category -> its member count when every ranked row agrees, else None (shown per cell)."""
        out = {}
        for cat in WEIGHTS:
            ns = {r.score.categories[cat].n for r in self.ranked if cat in r.score.categories}
            out[cat] = ns.pop() if len(ns) == 1 else None
        return out


# --------------------------------------------------------------------------------------------
# Collecting entries
# --------------------------------------------------------------------------------------------

class _TestSets:
    """Loads each run's test set once (keyed by data directory and SNV-pair file); ``data`` and
    ``snv_pairs``, when given, replace the paths a run recorded (a run made on another machine)."""

    def __init__(self, data: Path | None = None, snv_pairs: Path | None = None) -> None:
        self.cache: dict[tuple, TestSet] = {}
        self.data, self.snv_pairs = data, snv_pairs

    def for_run(self, run_dir: Path, info: dict) -> TestSet:
        data = self.data if self.data is not None else info.get("data_dir")
        pairs = self.snv_pairs if self.snv_pairs is not None else snv_pairs_of(info)
        key = (str(data), str(pairs))
        if key not in self.cache:
            self.cache[key] = run_test_set(run_dir, info, self.data, self.snv_pairs)
        return self.cache[key]

    def for_data(self) -> TestSet:
        key = (str(self.data), str(self.snv_pairs))
        if key not in self.cache:
            self.cache[key] = load_test_set(self.data, self.snv_pairs)
        return self.cache[key]


def collect(run_dirs: list[Path], reference: str | Path | None = None, data: Path | None = None,
            snv_pairs: Path | None = None, need_test: bool = False,
            boards: list[str] | None = None) -> tuple[list[Entry], TestSet | None, list[str]]:
    """Entries of every method of every run, plus the published entries when ``reference`` is given.

    Args:
        run_dirs: run directories of ``harness run``.
        reference: None (no published entries), ``""`` (the default ``<data dir>/reference_predictions``
            of the first run, or of ``data``), or a directory of prediction files (challenge JSON or
            ``sequence<TAB>prediction``).
        data, snv_pairs: the test set when no run directory is given; else they replace the data
            directory and SNV-pair file the runs recorded (runs made on another machine).
        need_test: load the test set of ``data`` when no run directory is given (HTML plots).
        boards: the boards to score the run entries on (default every board of their test set;
            a leaderboard of one board scores that board only).

    Returns:
        ``(entries, primary test set or None, notes)``; the primary test set is the first run's
        (always loaded: every run entry is scored from its ``test.npy``).

    Raises:
        FileNotFoundError: a run directory without ``run.json``; DataError: unreadable prediction
            files or data, or a ``test.npy`` that is pickled, of the wrong shape or not finite (the
            file is named; never scored in part); ValueError: published entries requested for a
            simulated run, or nothing to show.
    """
    from .runner import load_predictions

    sets = _TestSets(data, snv_pairs)
    entries: list[Entry] = []
    notes: list[str] = []
    primary: TestSet | None = None
    primary_info: dict | None = None
    for run_dir in run_dirs:
        info = read_run_json(run_dir)
        test = sets.for_run(run_dir, info)
        if primary_info is None:
            primary_info, primary = info, test
        for method in run_methods(run_dir):
            mdir = run_dir / "methods" / method
            test_path = mdir / "test.npy"
            if not test_path.exists() and not test_path.is_symlink():
                why = " (its scores.json alone is not trusted)" if (mdir / "scores.json").exists() else " (unfinished)"
                notes.append(f"{mdir}: no test.npy{why}, left out")
                continue
            pred = load_predictions(test_path, len(test))
            scored = {b: score(pred, test, b) for b in _boards_of(test) if boards is None or b in boards}
            entries.append(Entry(method, method, run_dir.name, False, scored, test_path, run_dir,
                                 _scores_note(mdir / "scores.json", method), bool(info.get("simulated")), _pred=pred))
    if primary_info is None and (reference is not None or need_test):
        if data is None:
            raise ValueError("no run directory given: pass --data DIR (or set HARNESS_DATA) for the test set")
        primary = sets.for_data()
    if reference is not None:
        if primary is None or primary.simulated or (primary_info or {}).get("simulated"):
            raise ValueError("the published entries are predictions of the real challenge test set; "
                             "this run is on simulated data")
        ref_dir = Path(reference) if reference else Path(primary.directory) / REFERENCE_DIR
        if not ref_dir.is_dir():
            raise DataError(f"{ref_dir}: no directory of reference predictions (give --reference DIR)")
        files = sorted(p for p in ref_dir.iterdir() if p.is_file() and p.suffix in PREDICTION_SUFFIXES)
        if not files:
            raise DataError(f"{ref_dir}: no prediction files (*.json, *.txt, *.tsv)")
        for path in files:
            pred = read_predictions(path, primary)
            boards = {b: score(pred, primary, b) for b in _boards_of(primary)
                      if np.isfinite(pred[board_members(primary, b)[0]]).all()}
            if not boards:
                notes.append(f"{path}: covers no whole board, left out")
                continue
            note = "public-leaderboard ids only" if set(boards) == {"public"} else ""
            entries.append(Entry(path.stem, path.stem, "published", True, boards, path, None, note, _pred=pred))
        notes.append(f"external (source 'published'): published prediction files from {ref_dir}, "
                     "scored by this harness's scorer")
    if not entries:
        raise ValueError("nothing to show: no finished methods in the run directories and no --reference")
    _resolve_names(entries)
    return entries, primary, notes


def _scores_note(path: Path, method: str) -> str:
    """The ensemble's decision recorded in its ``scores.json`` (a note only, never a score); ``""``
    when there is none or the file is unreadable."""
    try:
        raw = read_json(path) if path.is_file() else {}
    except (OSError, ValueError):
        return ""
    if not isinstance(raw, dict):
        return ""
    if raw.get("fallback"):
        return f"fallback to {raw.get('used')}: its stacker was worse on the OOF score"
    if method == ENSEMBLE and raw.get("stacker"):
        return f"{raw['stacker']} stacker"
    return ""


def _boards_of(test: TestSet) -> list[str]:
    return [b for b in BOARDS if b == "full" or test.public_ids is not None]


def _resolve_names(entries: list[Entry]) -> None:
    """Prefix clashing names with their source; number any that still clash."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.name] = counts.get(e.name, 0) + 1
    for e in entries:
        if counts[e.name] > 1:
            e.name = f"{e.source}/{e.method}"
    seen: dict[str, int] = {}
    for e in entries:
        seen[e.name] = seen.get(e.name, 0) + 1
        if seen[e.name] > 1:
            e.name = f"{e.name}#{seen[e.name]}"


def build(entries: list[Entry], board: str, notes: list[str] | None = None, test: TestSet | None = None) -> Leaderboard:
    """Rank the entries on ``board`` (mean rank of the two scores; :func:`harness.report.rank_methods`);
    entries without that board follow, unranked."""
    present = {e.name: e for e in entries if board in e.boards}
    order = rank_methods({n: {"pearson_score": e.boards[board].pearson_score,
                              "spearman_score": e.boards[board].spearman_score} for n, e in present.items()})
    rows = [Row(i, present[n], present[n].boards[board]) for i, n in enumerate(order, 1)]
    rows += [Row(None, e, None) for e in entries if board not in e.boards]
    out_notes = [f"{board} board; ranked by the mean of the ranks on the Pearson score (Σ w·r² / 4.65) and the "
                 "Spearman score (Σ w·ρ / 4.65), as the challenge ranked"]
    sources: list[str] = []
    for r in rows:
        if r.score is not None and not any(same_snv_source(r.score.snv_source, seen) for seen in sources):
            sources.append(r.score.snv_source)
    if sources:
        out_notes.append("SNV pairs: " + "; ".join(sources))
    missing = {c for r in rows if r.score is not None for c in r.score.missing}
    if missing:
        out_notes.append(partial_note(missing))
    for r in rows:
        if r.rank is None:
            have = ", ".join(sorted(r.entry.boards))
            out_notes.append(f"absent: {r.entry.name} has predictions for the {have} board only")
        elif r.entry.note:
            out_notes.append(f"{r.entry.name}: {r.entry.note}")
    if any(e.simulated for e in entries):
        out_notes.append("SIMULATED data in at least one run: its scores say nothing about the challenge")
    return Leaderboard(board, rows, out_notes + list(notes or []), test)


# --------------------------------------------------------------------------------------------
# Renderers
# --------------------------------------------------------------------------------------------

def _label(entry: Entry) -> str:
    return f"{entry.name} (external)" if entry.external else entry.name


def _cat_header(cat: str, n: int | None) -> str:
    return f"{cat} (n={n:,})" if n is not None else cat


def _pair(score: BoardScore | None, cat: str, with_n: bool, sep: str = " / ") -> str:
    if score is None:
        return "absent"
    s = score.categories.get(cat)
    if s is None:
        return "—"
    text = f"{s.pearson:.4f}{sep}{s.spearman:.4f}"
    return f"{text} (n={s.n:,})" if with_n else text


def render_table(lb: Leaderboard, title: str = "Leaderboard", categories: bool = True) -> Table:
    """Rich table: #, method, source, both scores, then (``categories``) Pearson r over Spearman ρ
    per category, its header giving the category's ``n``."""
    ns = lb.category_n()
    table = Table(title=f"{title} · {lb.board} board", box=box.SIMPLE_HEAVY)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("method", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("Pearson\nscore", justify="right", no_wrap=True)
    table.add_column("Spearman\nscore", justify="right", no_wrap=True)
    if categories:
        for cat in WEIGHTS:
            table.add_column(f"{cat}\nn={ns[cat]:,}" if ns[cat] is not None else cat, justify="right", no_wrap=True)
    for row in lb.rows:
        s = row.score
        cells = [str(row.rank) if row.rank else "—", _label(row.entry), row.entry.source,
                 score_text(s.pearson_score, s) if s else "absent", score_text(s.spearman_score, s) if s else "absent"]
        if categories:
            cells += [_pair(s, c, ns[c] is None, "\n") for c in WEIGHTS]
        table.add_row(*cells, style=None if s else "dim")
    table.caption = ("cells: Pearson r over Spearman ρ\n" if categories else "") + "\n".join(lb.notes)
    return table


def print_table(lb: Leaderboard, console: Console, title: str = "Leaderboard") -> None:
    """Print :func:`render_table`; on a console too narrow for the category columns, print the
    scores only and say how to see the rest."""
    from rich.measure import Measurement

    table = render_table(lb, title)
    needed = Measurement.get(console, console.options.update_width(100_000), table).minimum
    if needed > console.width:
        table = render_table(lb, title, categories=False)
        table.caption += (f"\nper-category columns need a terminal {needed} columns wide "
                          "(or use --format md, csv or html)")
    console.print(table)


def render_markdown(lb: Leaderboard, title: str = "Leaderboard") -> str:
    """GitHub-flavoured Markdown: a title, the table (cells ``r / ρ``) and the notes as a list."""
    ns = lb.category_n()
    head = ["#", "method", "source", "Pearson score", "Spearman score"] + [_cat_header(c, ns[c]) for c in WEIGHTS]
    lines = [f"# {title} · {lb.board} board", "", "Cells: Pearson r / Spearman ρ per test category.", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---:" if i in (0, 3, 4) or i >= 5 else "---"
                                                           for i in range(len(head))) + "|"]
    for row in lb.rows:
        s = row.score
        cells = [str(row.rank) if row.rank else "—", _md(_label(row.entry)), _md(row.entry.source),
                 score_text(s.pearson_score, s) if s else "absent", score_text(s.spearman_score, s) if s else "absent"]
        cells += [_pair(s, c, ns[c] is None) for c in WEIGHTS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {_md(n)}" for n in lb.notes] + [""]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_csv(lb: Leaderboard) -> str:
    """CSV, one row per entry: rank (empty when absent), method, source, external, board, status,
    pearson_score, spearman_score, then ``<category>_n``, ``_pearson``, ``_spearman`` per category,
    then snv_source, partial (1 when a weighted category is missing from the scores) and missing
    (those categories, ``;``-separated)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["rank", "method", "source", "external", "board", "status", "pearson_score", "spearman_score"]
    for cat in WEIGHTS:
        header += [f"{cat}_n", f"{cat}_pearson", f"{cat}_spearman"]
    writer.writerow(header + ["snv_source", "partial", "missing"])
    for row in lb.rows:
        s = row.score
        cells = [row.rank or "", row.entry.name, row.entry.source, int(row.entry.external), lb.board,
                 "ranked" if s else "absent", f"{s.pearson_score:.6f}" if s else "", f"{s.spearman_score:.6f}" if s else ""]
        for cat in WEIGHTS:
            c = s.categories.get(cat) if s else None
            cells += [c.n, f"{c.pearson:.6f}", f"{c.spearman:.6f}"] if c else ["", "", ""]
        writer.writerow(cells + ([s.snv_source, int(s.partial), ";".join(s.missing)] if s else ["", "", ""]))
    return buf.getvalue()


def render_html(lb: Leaderboard, title: str = "Leaderboard", max_bars: int = 12) -> str:
    """One self-contained HTML page: the table, then the plots as embedded base64 PNG images.

    Raises:
        ValueError: the primary test set was not loaded (needed for truth and board members).
    """
    if lb.test is None:
        raise ValueError("the HTML report needs the test set of the first run (or --data)")
    ns = lb.category_n()
    esc = html.escape
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)} · {esc(lb.board)} board</title>",
             "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:13px}"
             "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f0f0f0}"
             "td.name,td.src{text-align:left}tr.absent{color:#999}tr.external td.name{font-style:italic}"
             "figure{margin:1.5em 0}img{max-width:100%}</style></head><body>",
             f"<h1>{esc(title)} · {esc(lb.board)} board</h1>",
             "<div style=\"overflow-x:auto\"><table id=\"leaderboard\"><thead><tr><th rowspan=\"2\">#</th><th rowspan=\"2\">method</th>"
             "<th rowspan=\"2\">source</th><th rowspan=\"2\">Pearson score</th><th rowspan=\"2\">Spearman score</th>"]
    parts += [f"<th colspan=\"2\">{esc(_cat_header(c, ns[c]))}</th>" for c in WEIGHTS]
    parts.append("</tr><tr>" + "<th>r</th><th>ρ</th>" * len(WEIGHTS) + "</tr></thead><tbody>")
    for row in lb.rows:
        s, e = row.score, row.entry
        cls = " ".join(c for c in ("absent" if s is None else "", "external" if e.external else "") if c)
        cells = [str(row.rank) if row.rank else "—"]
        out = [f"<tr class=\"{cls}\">" if cls else "<tr>", f"<td>{cells[0]}</td>",
               f"<td class=\"name\">{esc(_label(e))}</td><td class=\"src\">{esc(e.source)}</td>",
               f"<td>{score_text(s.pearson_score, s)}</td><td>{score_text(s.spearman_score, s)}</td>" if s
               else "<td>absent</td><td>absent</td>"]
        for cat in WEIGHTS:
            c = s.categories.get(cat) if s else None
            n = f" title=\"n={c.n:,}\"" if c else ""
            out.append(f"<td{n}>{c.pearson:.4f}</td><td{n}>{c.spearman:.4f}</td>" if c else "<td>—</td><td>—</td>")
        parts.append("".join(out) + "</tr>")
    parts.append("</tbody></table></div>")
    parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in lb.notes) + "</ul>")
    for caption, png in _plots(lb, max_bars):
        parts.append(f"<figure><img alt=\"{esc(caption)}\" src=\"data:image/png;base64,{png}\">"
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _plots(lb: Leaderboard, max_bars: int) -> list[tuple[str, str]]:
    """``[(caption, base64 PNG)]``: category bars, hexbins, correlation matrix."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def png(fig) -> str:
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        return base64.b64encode(buf.getvalue()).decode("ascii")

    out = []
    ranked = lb.ranked
    cats = list(WEIGHTS)
    shown = ranked[:max_bars]
    if shown:
        fig = Figure(figsize=(12, 7.5), layout="constrained")
        for ax, key, label in zip(fig.subplots(2, 1, sharex=True), ("pearson", "spearman"), ("Pearson r", "Spearman ρ")):
            width = 0.8 / len(shown)
            for i, row in enumerate(shown):
                values = [getattr(row.score.categories[c], key) if c in row.score.categories else np.nan for c in cats]
                ax.bar(np.arange(len(cats)) + (i - (len(shown) - 1) / 2) * width, values, width, label=_label(row.entry))
            ax.set_ylabel(label)
            ax.axhline(0, color="black", linewidth=0.5)
            ax.grid(axis="y", alpha=0.3)
        ax.set_xticks(np.arange(len(cats)), cats, rotation=20)
        fig.axes[0].legend(fontsize=8, ncol=min(4, len(shown)), loc="lower left", bbox_to_anchor=(0, 1.02))
        more = f" (top {max_bars} of {len(ranked)})" if len(ranked) > max_bars else ""
        out.append((f"Per-category Pearson r and Spearman ρ on the {lb.board} board{more}", png(fig)))

    test = lb.test
    ids = board_members(test, lb.board)[0]
    truth = np.asarray(test.table.y, dtype=np.float64)[ids]
    with_pred = []
    for row in ranked:
        pred = _board_predictions(row.entry, test, ids)
        if pred is not None:
            with_pred.append((row, pred))
    def is_ensemble(row: Row) -> bool:
        return row.entry.method == ENSEMBLE and not row.entry.external

    # the best method of the runs that is not an ensemble (else the best published one), then every ensemble
    singles = [(r, p) for r, p in with_pred if not is_ensemble(r)]
    best = [(r, p) for r, p in singles if not r.entry.external][:1] or singles[:1]
    picks = best + [(r, p) for r, p in with_pred if is_ensemble(r)]
    for row, pred in picks:
        fig = Figure(figsize=(5.5, 5), layout="constrained")
        ax = fig.subplots()
        hb = ax.hexbin(truth, pred, gridsize=60, bins="log", cmap="viridis", mincnt=1)
        fig.colorbar(hb, ax=ax, label="sequences (log)")
        r = row.score.categories["all"]
        ax.set_xlabel("measured expression")
        ax.set_ylabel("predicted")
        ax.set_title(f"{_label(row.entry)}: r = {r.pearson:.3f}, ρ = {r.spearman:.3f}", fontsize=10)
        kind = "ensemble" if is_ensemble(row) else "best method"
        out.append((f"Predicted vs measured ({kind}: {_label(row.entry)}), {lb.board} board, {len(ids):,} sequences",
                    png(fig)))
    if len(with_pred) >= 2:
        names = [_label(r.entry) for r, _ in with_pred]
        corr = np.corrcoef(np.vstack([p for _, p in with_pred]))
        size = 2.5 + 0.55 * len(names)
        fig = Figure(figsize=(size + 1.5, size), layout="constrained")
        ax = fig.subplots()
        im = ax.imshow(corr, vmin=min(0.0, float(corr.min())), vmax=1.0, cmap="magma")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        if len(names) <= 15:
            for i in range(len(names)):
                for j in range(len(names)):
                    ax.text(j, i, f"{corr[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if corr[i, j] < 0.7 else "black")
        fig.colorbar(im, ax=ax, label="Pearson r")
        out.append((f"Correlation of the entries' test predictions on the {lb.board} board", png(fig)))
    return out


def _board_predictions(entry: Entry, test: TestSet, ids: np.ndarray) -> np.ndarray | None:
    """The entry's predictions on the board's sequences when they come from the same test set."""
    if entry.run_dir is not None:
        info = read_run_json(entry.run_dir)
        if test.directory is None or Path(info.get("data_dir", "")).resolve() != Path(test.directory).resolve():
            return None
    pred = entry.predictions(test)
    if pred is None or pred.shape != (len(test),):
        return None
    sub = pred[ids]
    return sub if np.isfinite(sub).all() else None


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def make_leaderboard(run_dirs: list[Path], board: str = "private", fmt: str = "table",
                     reference: str | Path | None = None, data: Path | None = None,
                     snv_pairs: Path | None = None, title: str = "Leaderboard") -> Leaderboard | str:
    """Collect, rank and render. Returns the rich-table :class:`Leaderboard` for ``fmt="table"``,
    else the rendered text (Markdown, CSV or HTML).

    Raises:
        ValueError: unknown format or board; see :func:`collect` for the rest.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; choose from {', '.join(BOARDS)}")
    entries, test, notes = collect(run_dirs, reference, data, snv_pairs, need_test=fmt == "html", boards=[board])
    lb = build(entries, board, notes, test)
    if not lb.ranked:
        raise ValueError(f"no entry has scores on the {board} board")
    if fmt == "table":
        return lb
    if fmt == "md":
        return render_markdown(lb, title)
    if fmt == "csv":
        return render_csv(lb)
    return render_html(lb, title)


@click.command("leaderboard")
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--board", type=click.Choice(BOARDS), default="private", show_default=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE (atomically) instead of standard output.")
@click.option("--reference", is_flag=False, flag_value="", default=None, metavar="[DIR]",
              help="Add the published challenge entries (default DIR: <data dir>/reference_predictions). "
                   "Put it after the run directories, or write --reference=DIR.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Data directory: the test set when no run directory is given (default: $HARNESS_DATA), "
                   "else the one to re-score the runs with instead of the path in their run.json.")
@click.option("--snv-pairs", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="SNV pair CSV used with --data when the official one is absent (replaces the runs' too).")
@click.option("--title", default="Leaderboard", show_default=True)
@friendly_errors
def leaderboard_cmd(run_dirs, board, fmt, out, reference, data, snv_pairs, title):
    """Methods × test categories (Pearson r, Spearman ρ, n) and the two scores of one or more runs,
    ranked by the mean rank of the two scores as the challenge ranked."""
    run_dirs = list(run_dirs)
    if reference and (Path(reference) / "run.json").is_file():
        run_dirs.append(Path(reference))  # `--reference RUN_DIR` took the run directory as its value
        reference = ""
    if not run_dirs:  # $HARNESS_DATA stands in for --data only without runs: a run knows its own test set
        data = resolve_data_dir(str(data) if data else None)
    if not run_dirs and reference is None:
        raise click.UsageError("give at least one RUN_DIR, or --reference with --data")
    result = make_leaderboard(run_dirs, board, fmt, reference, data, snv_pairs, title)
    if isinstance(result, Leaderboard):
        if out:
            buf = io.StringIO()
            print_table(result, Console(file=buf, width=250), title)
            write_text(out, buf.getvalue())
            click.echo(f"wrote {out}")
        else:
            print_table(result, Console(), title)
        return
    if out:
        write_text(out, result)
        click.echo(f"wrote {out}")
    else:
        click.echo(result, nl=False)
