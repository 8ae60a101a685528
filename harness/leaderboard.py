"""``harness leaderboard``: methods × test categories of one or more runs, optionally beside the
published challenge entries, as a terminal table, Markdown, CSV or one self-contained HTML report.

Rows are ranked as the challenge ranked (Rafi et al. 2024): by the mean of each entry's ranks on the
Pearson score (Σ wᵢ·rᵢ² / 4.65) and on the Spearman score (Σ wᵢ·ρᵢ / 4.65) of the chosen board
(:func:`harness.report.rank_methods`). Every score is computed here from the method's ``test.npy``
(read with ``allow_pickle=False``, checked for shape and finite values by
:func:`harness.rundir.load_predictions`) with the run's test set (71k rows: well under a second per
board): ``scores.json`` is an informative cache that could be stale or edited, so it is never the
source of a reported score (a method with ``scores.json`` but no ``test.npy`` is left out, with a
note). A partial board score (a category that cannot be scored) is marked ``*`` in every format and
explained in the notes (:func:`harness.report.score_text`). Published entries (``--reference``) are
prediction files scored by the same scorer (:mod:`harness.scoring`) on the first run's test set;
files holding only the 9,045 public-leaderboard ids appear on the public board only and are listed
as absent elsewhere. With them come the published numbers of :mod:`harness.scoring.published`
(each with its source): where the same submission's prediction file is scored, the published score
is set beside it in the notes; where no prediction file exists, the published numbers are a
reference row (rank ``ref``, "published number", the source's decimals; not ranked, no interval,
no plot: they were not computed here) on the board they were published for.

Every row names what it was trained on: the run's training file, its rows and the split (from
``run.json``), or the challenge's training set for a published entry (:attr:`Entry.training`; a
column of CSV and JSON, under the source elsewhere). Runs whose training tables differ (their
``split.json`` fingerprints) are flagged in the notes ("MIXED training data"): their ranks compare
training data as well as methods.

Uncertainty (``--bootstrap N``, default 200, 0 disables; ``--seed``): every ranked entry gets 95 %
percentile bootstrap intervals of both scores and of every category's r and ρ, and a paired
difference to #1 on the same draws (:func:`harness.scoring.bootstrap.bootstrap_board`: each
category's members, sequences or pairs, resampled independently). Table and Markdown show the
score intervals and, in the notes, whether #1 and #2 differ significantly; CSV, JSON and HTML
carry every interval and the difference of each row to #1.

The HTML report is one self-contained file: the table (sortable by a click on a column header, a
few lines of inline JavaScript; fits a 1280-pixel window), the per-category intervals, and plots
as base64 PNG (matplotlib, Agg canvas; no pyplot state, no external file or network resource):
per-category Pearson r / Spearman ρ bars with their intervals for each entry, the SNV effects
(predicted vs measured alt − ref, the heaviest category, weight 1.25) and per-category
predicted-vs-measured small multiples for the best method (of the runs, not an ensemble; else the
best published entry) and for every ensemble, and the correlation matrix of the entries' test
predictions on the board.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .data import DataError, TestSet, load_test_set
from .data.testset import PAIR_CATEGORIES
from .ensemble import same_snv_source
from .io import read_json
from .report import partial_note, rank_methods, score_text
from .rundir import ENSEMBLE, RunDir, load_predictions, read_run_json, run_methods, run_test_set, snv_pairs_of
from .scoring import BOARDS, WEIGHTS, BoardScore, read_predictions, score
from .scoring.bootstrap import DEFAULT_RESAMPLES, LEVEL, bootstrap_board, category_values
from .scoring.published import PublishedScore, load_published
from .scoring.scorer import board_members

FORMATS = ("table", "md", "csv", "json", "html")
PREDICTION_SUFFIXES = (".json", ".txt", ".tsv")
#: Default reference directory inside a data directory (the published challenge predictions).
REFERENCE_DIR = "reference_predictions"
#: What a published entry was trained on (Rafi et al. 2024: every team trained on the challenge's
#: 6,739,258 training sequences, with its own validation split).
PUBLISHED_TRAINING = "challenge train_sequences.txt (6,739,258 rows) · the team's own split"


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
        test: the test set the entry was scored on (the run's; the first run's for an external entry).
        training: the training data and split it was fitted with, e.g. ``"dev_train.txt (16,370
            rows) · kfold 5, seed 0"`` (:func:`_training_of`; :data:`PUBLISHED_TRAINING` for a
            published entry); every format shows it.
        train_key: the fingerprint of the run's training table (its ``split.json``): runs with
            different keys trained on different data (:func:`build` flags the mix); None for a
            published entry.
        published: board -> the :class:`~harness.scoring.published.PublishedScore` of this
            submission on that board. With ``reported`` it is the entry's only content (a reference
            row); without, it is set beside the score computed here (a note).
        reported: True for a published number with no prediction file: its ``boards`` are the
            published numbers, not scores computed here; it is shown as a reference row (not ranked,
            no interval) on those boards only.
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
    training: str = ""
    train_key: str | None = None
    published: dict[str, PublishedScore] = field(default_factory=dict)
    reported: bool = False
    _pred: np.ndarray | None = field(default=None, repr=False)
    test: TestSet | None = field(default=None, repr=False)

    def predictions(self, test: TestSet | None) -> np.ndarray | None:
        """``(N_test,) float64`` test predictions (NaN where a public-only file has none), or None."""
        if self._pred is None and self.pred_path is not None and test is not None:
            if self.pred_path.suffix == ".npy":
                self._pred = load_predictions(self.pred_path, len(test))
            else:
                self._pred = read_predictions(self.pred_path, test)
        return self._pred


@dataclass
class Row:
    """One entry on one board: ranked (``rank`` ≥ 1, ``score`` computed here), a published number
    (``rank`` None, ``score`` as published: :attr:`reference`) or absent (``rank`` and ``score`` None)."""

    rank: int | None
    entry: Entry
    score: BoardScore | None

    @property
    def reference(self) -> bool:
        """True for a published number shown for reference (not scored here, not ranked)."""
        return self.entry.reported and self.score is not None

    @property
    def rank_text(self) -> str:
        """The rank cell: the rank, ``"ref"`` for a published number, ``"—"`` when absent."""
        return str(self.rank) if self.rank else "ref" if self.reference else "—"

    @property
    def status(self) -> str:
        """``"ranked"``, ``"published"`` (a reference row) or ``"absent"``."""
        return "ranked" if self.rank else "published" if self.reference else "absent"


@dataclass
class Intervals:
    """Bootstrap intervals of one ranked row (:func:`add_intervals`), each ``(lo, hi)``.

    Attributes:
        pearson_score, spearman_score: the two board scores.
        categories: category -> ``{"pearson": (lo, hi), "spearman": (lo, hi)}`` (r and ρ).
        delta: ``{"pearson": (Δ, lo, hi), "spearman": ...}``: this row's score minus #1's, point
            value and the interval of the paired per-draw difference; None for #1 itself and for
            a row scored on another test set than #1 (no common draws).
    """

    pearson_score: tuple[float, float]
    spearman_score: tuple[float, float]
    categories: dict[str, dict[str, tuple[float, float]]]
    delta: dict[str, tuple[float, float, float]] | None = None


@dataclass
class Leaderboard:
    """The entries of one board, ranked; ``test`` is the primary test set when it was loaded;
    ``intervals`` (entry name -> :class:`Intervals`) and ``bootstrap`` (``{"resamples", "seed",
    "level"}``) are filled by :func:`add_intervals`."""

    board: str
    rows: list[Row]
    notes: list[str]
    test: TestSet | None = None
    intervals: dict[str, Intervals] = field(default_factory=dict)
    bootstrap: dict | None = None

    @property
    def ranked(self) -> list[Row]:
        """The rows with a rank (entries that have this board), best first."""
        return [r for r in self.rows if r.rank is not None]

    def category_n(self) -> dict[str, int | None]:
        """Category -> its member count when every row with scores (published ones too) agrees,
        else None (shown per cell)."""
        out = {}
        for cat in WEIGHTS:
            ns = {r.score.categories[cat].n for r in self.rows if r.score is not None and cat in r.score.categories}
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
        training, train_key = _training_of(run_dir, info)
        for method in run_methods(run_dir):
            mdir = RunDir(run_dir).method(method)
            test_path = mdir.test
            if not test_path.exists() and not test_path.is_symlink():
                why = " (its scores.json alone is not trusted)" if mdir.scores.exists() else " (unfinished)"
                notes.append(f"{mdir.path}: no test.npy{why}, left out")
                continue
            pred = load_predictions(test_path, len(test))
            scored = {b: score(pred, test, b) for b in _boards_of(test) if boards is None or b in boards}
            entries.append(Entry(method, method, run_dir.name, False, scored, test_path, run_dir,
                                 _scores_note(mdir.scores, method), bool(info.get("simulated")), training, train_key,
                                 _pred=pred, test=test))
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
            covered = {b: score(pred, primary, b) for b in _boards_of(primary)
                       if np.isfinite(pred[board_members(primary, b)[0]]).all()}
            if not covered:
                notes.append(f"{path}: covers no whole board, left out")
                continue
            note = "public-leaderboard ids only" if set(covered) == {"public"} else ""
            entries.append(Entry(path.stem, path.stem, "published", True, covered, path, None, note,
                                 training=PUBLISHED_TRAINING, _pred=pred, test=primary))
        notes.append(f"external (source 'published'): published prediction files from {ref_dir}, "
                     "scored by this harness's scorer")
        entries += _published_entries(entries, [b for b in _boards_of(primary) if boards is None or b in boards])
    if not entries:
        raise ValueError("nothing to show: no finished methods in the run directories and no --reference")
    _resolve_names(entries)
    return entries, primary, notes


def _published_entries(entries: list[Entry], boards: list[str]) -> list[Entry]:
    """Attach each published score (:func:`~harness.scoring.published.load_published`) on one of
    ``boards`` to the reference entry scored from the same submission's prediction file; return
    the others as reference-row entries (``reported``), one per team."""
    by_file = {e.pred_path.stem: e for e in entries if e.external and e.pred_path is not None}
    teams: dict[str, Entry] = {}
    for pub in load_published():
        if pub.board not in boards:
            continue
        scored = by_file.get(pub.prediction_file) if pub.prediction_file else None
        if scored is not None and pub.board in scored.boards:
            scored.published[pub.board] = pub
            continue
        entry = teams.setdefault(pub.team, Entry(pub.team, pub.team, "published number", True, {}, reported=True,
                                                 training=PUBLISHED_TRAINING))
        entry.boards[pub.board] = pub.board_score()
        entry.published[pub.board] = pub
    return list(teams.values())


def _training_of(run_dir: Path, info: dict) -> tuple[str, str | None]:
    """``(label, key)`` of a run's training data: the label names the training file, its rows and
    the split (from ``run.json``), e.g. ``"dev_train.txt (16,370 rows) · kfold 5, seed 0"``; the key
    is the training table's fingerprint from ``split.json`` (else ``"<file name>:<rows>"``), equal
    for runs trained on the same data. Informative only: never a score."""
    train = info.get("train")
    name = Path(train).name if isinstance(train, str) and train else "unknown training file"
    n = info.get("n_train")
    split = info.get("split") if isinstance(info.get("split"), dict) else {}
    kind = split.get("kind")
    how = {"kfold": f"kfold {split.get('folds')}", "holdout": f"holdout {split.get('holdout_fraction')}",
           "none": "no split (all rows)"}.get(kind, "unknown split")
    label = name + (f" ({n:,} rows)" if isinstance(n, int) else "") + f" · {how}, seed {split.get('seed')}"
    try:
        key = read_json(RunDir(run_dir).split_json, dict).get("train_fingerprint")
    except (OSError, ValueError):
        key = None
    return label, key if isinstance(key, str) and key else f"{name}:{n}"


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
        return f"fallback to {raw.get('used')}: its stacker was worse on the selection criterion (OOF r + ρ and pair consistency)"
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
    present = {e.name: e for e in entries if board in e.boards and not e.reported}
    order = rank_methods({n: {"pearson_score": e.boards[board].pearson_score,
                              "spearman_score": e.boards[board].spearman_score} for n, e in present.items()})
    rows = [Row(i, present[n], present[n].boards[board]) for i, n in enumerate(order, 1)]
    published = sorted((e for e in entries if e.reported and board in e.boards),
                       key=lambda e: -e.boards[board].pearson_score)
    rows += [Row(None, e, e.boards[board]) for e in published]
    rows += [Row(None, e, None) for e in entries if board not in e.boards and not e.reported]
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
        pub = r.entry.published.get(board)
        if r.reference:
            placing = f"{pub.placing}; " if pub.placing else ""
            out_notes.append(f"ref: {_label(r.entry)}: {pub.scores_text} as published ({placing}{pub.source}); "
                             "not scored here (no prediction file): not ranked, no interval")
        elif r.rank is None:
            have = ", ".join(sorted(r.entry.boards))
            out_notes.append(f"absent: {r.entry.name} has predictions for the {have} board only")
        else:
            if r.entry.note:
                out_notes.append(f"{r.entry.name}: {r.entry.note}")
            if pub is not None:
                placing = f", {pub.placing}" if pub.placing else ""
                out_notes.append(f"{r.entry.name}: published {board} score {pub.scores_text}{placing} ({pub.source}); "
                                 f"scored here {r.score.pearson_score:.4f} / {r.score.spearman_score:.4f}")
    if any(e.simulated for e in entries):
        out_notes.append("SIMULATED data in at least one run: its scores say nothing about the challenge")
    trained: dict[str, list[str]] = {}
    for e in entries:
        if not e.external and e.train_key and e.run_dir is not None and e.source not in trained.setdefault(e.train_key, []):
            trained[e.train_key].append(e.source)
    if len(trained) > 1:
        out_notes.append("MIXED training data: the runs were trained on different training tables ("
                         + "; ".join(f"{', '.join(runs)}: {next(e.training for e in entries if e.train_key == k)}"
                                     for k, runs in trained.items())
                         + "); their ranks compare training data as well as methods")
    return Leaderboard(board, rows, [relative_paths(n) for n in out_notes + list(notes or [])], test)


_ABS_PATH = re.compile(r"(?<![\w.])/[^\s(),;]+")


def relative_paths(text: str, start: str | os.PathLike | None = None) -> str:
    """``text`` with every absolute path written relative to ``start`` (default: the working
    directory, e.g. the repository root: ``../shared/data/...``), so a published table carries no
    machine-specific path."""
    start = os.fspath(start) if start is not None else os.getcwd()
    return _ABS_PATH.sub(lambda m: os.path.relpath(m.group(0), start), text)


def add_intervals(lb: Leaderboard, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = LEVEL) -> None:
    """Fill ``lb.intervals`` and ``lb.bootstrap`` and add the notes: percentile bootstrap intervals
    (:func:`harness.scoring.bootstrap.bootstrap_board`, ``resamples`` draws, ``seed``) of every
    ranked row's two scores and category r / ρ, and each row's paired difference to #1. Rows
    scored on the same test set share the draws; a row on another test set (another data
    directory or SNV-pair file) gets its own draws and no difference to #1.

    Raises:
        ValueError: ``resamples`` < 1, a negative seed, or a prediction that cannot be read back.
    """
    groups: dict[int, list[Row]] = {}
    for row in lb.ranked:
        groups.setdefault(id(row.entry.test), []).append(row)
    top = lb.ranked[0]
    pct = f"{100 * level:g} %"
    for rows in groups.values():
        test = rows[0].entry.test
        preds = {}
        for row in rows:
            pred = row.entry.predictions(test)
            if test is None or pred is None:
                raise ValueError(f"{row.entry.name}: no predictions to resample")
            preds[row.entry.name] = pred
        boot = bootstrap_board(preds, test, lb.board, resamples, seed, level)
        for row in rows:
            name = row.entry.name
            cats = {c: {k: boot.interval(name, k, c) for k in ("pearson", "spearman")} for c in boot.n}
            delta = None
            if top in rows and row is not top:
                delta = {k: (getattr(row.score, f"{k}_score") - getattr(top.score, f"{k}_score"),
                             *boot.difference(name, top.entry.name, k)) for k in ("pearson", "spearman")}
            lb.intervals[name] = Intervals(boot.interval(name, "pearson"), boot.interval(name, "spearman"), cats, delta)
    lb.bootstrap = {"resamples": resamples, "seed": seed, "level": level}
    notes = [f"[lo, hi]: {pct} percentile bootstrap interval, {resamples} resamples (seed {seed}) of each category's "
             "members (sequences; pairs for pair categories), every category redrawn independently in each resample "
             "and every entry on the same draws; the score intervals leave out that 'all' shares sequences with the "
             "other categories (harness.scoring.bootstrap)"]
    if len(lb.ranked) >= 2:
        second = lb.ranked[1]
        d = lb.intervals[second.entry.name].delta
        if d is None:
            notes.append(f"#1 {_label(top.entry)} and #2 {_label(second.entry)} were scored on different test sets: "
                         "no paired difference")
        else:
            sig = [k for k in ("pearson", "spearman") if d[k][1] > 0 or d[k][2] < 0]
            verdict = ("neither difference is significant" if not sig else "both differences are significant"
                       if len(sig) == 2 else f"only the {sig[0].capitalize()} score difference is significant")
            notes.append(f"#1 {_label(top.entry)} − #2 {_label(second.entry)} on the same draws: Pearson score "
                         f"{_delta_text(-d['pearson'][0], -d['pearson'][2], -d['pearson'][1])}, Spearman score "
                         f"{_delta_text(-d['spearman'][0], -d['spearman'][2], -d['spearman'][1])}: {verdict} at {pct}")
    lb.notes[1:1] = notes


def _outwards(lo: float, hi: float) -> tuple[float, float]:
    """``(lo, hi)`` rounded outwards to 3 decimals: the shown interval holds the computed one, so a
    4-decimal value inside it is never shown outside it."""
    return float(np.floor(lo * 1000 + 1e-9) / 1000), float(np.ceil(hi * 1000 - 1e-9) / 1000)


def _delta_text(value: float, lo: float, hi: float) -> str:
    lo, hi = _outwards(lo, hi)
    return f"{value:+.4f} [{lo:+.3f}, {hi:+.3f}]"


def _ci(bounds: tuple[float, float] | None) -> str:
    """``[lo, hi]`` with 3 decimals, rounded outwards (:func:`_outwards`); ``""`` without an interval."""
    if not bounds:
        return ""
    lo, hi = _outwards(*bounds)
    return f"[{lo:.3f}, {hi:.3f}]"


# --------------------------------------------------------------------------------------------
# Renderers
# --------------------------------------------------------------------------------------------

def _label(entry: Entry) -> str:
    if entry.reported:
        return f"{entry.name} (published number)"
    return f"{entry.name} (external)" if entry.external else entry.name


def _digits(row: Row) -> int:
    """Decimals of the row's numbers: 4, or as many as the source printed for a published number."""
    return row.entry.published[row.score.board].decimals if row.reference else 4


def _source_text(entry: Entry, sep: str) -> str:
    """The source cell: the run (or ``published``) and, after ``sep``, what it was trained on."""
    return f"{entry.source}{sep}{entry.training}" if entry.training else entry.source


def _cat_header(cat: str, n: int | None) -> str:
    return f"{cat} (n={n:,})" if n is not None else cat


def _pair(score: BoardScore | None, cat: str, with_n: bool, sep: str = " / ", digits: int = 4) -> str:
    if score is None:
        return "absent"
    s = score.categories.get(cat)
    if s is None:
        return "—"
    text = f"{s.pearson:.{digits}f}{sep}{s.spearman:.{digits}f}"
    return f"{text} (n={s.n:,})" if with_n else text


def _score_cell(lb: Leaderboard, row: Row, key: str, sep: str = " ") -> str:
    """``0.2761 [0.268, 0.284]`` (``*`` after a partial score; no interval without a bootstrap);
    ``key``: ``"pearson"`` or ``"spearman"``."""
    s = row.score
    if s is None:
        return "absent"
    text = score_text(getattr(s, f"{key}_score"), s, _digits(row))
    iv = lb.intervals.get(row.entry.name)
    return f"{text}{sep}{_ci(getattr(iv, f'{key}_score'))}" if iv else text


def render_table(lb: Leaderboard, title: str = "Leaderboard", categories: bool = True) -> Table:
    """Rich table: #, method, source, both scores (the bootstrap interval below each, when
    computed), then (``categories``) Pearson r over Spearman ρ per category, its header giving the
    category's ``n``; the caption holds the notes and, per source, what it was trained on."""
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
        cells = [row.rank_text, _label(row.entry), row.entry.source,
                 _score_cell(lb, row, "pearson", "\n"), _score_cell(lb, row, "spearman", "\n")]
        if categories:
            cells += [_pair(s, c, ns[c] is None, "\n", _digits(row) if s else 4) for c in WEIGHTS]
        table.add_row(*map(escape, cells), style="italic" if row.reference else None if s else "dim")  # "[lo, hi]" is no rich markup
    trained = {row.entry.source: row.entry.training for row in lb.rows if row.entry.training}
    table.caption = ("cells: Pearson r over Spearman ρ\n" if categories else "") + "\n".join(map(escape, lb.notes))
    # what each source was trained on (a line per source, not per row: the rows keep two lines)
    table.caption += "".join(escape(f"\ntrained on: {src}: {label}") for src, label in trained.items())
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
                          "(or use --format md, csv, json or html)")
    console.print(table)


def render_markdown(lb: Leaderboard, title: str = "Leaderboard") -> str:
    """GitHub-flavoured Markdown: a title, the table (score cells ``0.2761 [0.268, 0.284]`` with a
    bootstrap, category cells ``r / ρ``) and the notes as a list (the scheme of the intervals and
    whether #1 and #2 differ significantly among them)."""
    ns = lb.category_n()
    head = ["#", "method", "source", "Pearson score", "Spearman score"] + [_cat_header(c, ns[c]) for c in WEIGHTS]
    legend = "Cells: Pearson r / Spearman ρ per test category."
    if lb.bootstrap:
        legend = (f"Scores: value [{100 * lb.bootstrap['level']:g} % bootstrap interval]. "
                  "Other cells: Pearson r / Spearman ρ per test category (their intervals: --format csv, json or html).")
    lines = [f"# {title} · {lb.board} board", "", legend, "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---:" if i in (0, 3, 4) or i >= 5 else "---"
                                                           for i in range(len(head))) + "|"]
    for row in lb.rows:
        s = row.score
        cells = [row.rank_text, _md(_label(row.entry)), _md(_source_text(row.entry, " · ")),
                 _score_cell(lb, row, "pearson"), _score_cell(lb, row, "spearman")]
        cells += [_pair(s, c, ns[c] is None, digits=_digits(row) if s else 4) for c in WEIGHTS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {_md(n)}" for n in lb.notes] + [""]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _f6(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def render_csv(lb: Leaderboard) -> str:
    """CSV, one row per entry: rank (empty when absent or published), method, source, external, board,
    status (``ranked``, ``published``: a published number, not scored here, or ``absent``),
    pearson_score, pearson_score_lo, pearson_score_hi, the same for spearman_score, the paired
    difference to #1 (``pearson_delta`` = this score − #1's, ``pearson_delta_lo``/``_hi``, the same
    for spearman; empty for #1), then per category ``<category>_n``, ``_pearson``, ``_pearson_lo``,
    ``_pearson_hi``, ``_spearman``, ``_spearman_lo``, ``_spearman_hi``, then snv_source, partial (1
    when a weighted category is missing from the scores) and missing (those categories,
    ``;``-separated), then training (the training file, rows and split; :attr:`Entry.training`).
    Interval columns are empty without a bootstrap (``--bootstrap 0``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["rank", "method", "source", "external", "board", "status"]
    for key in ("pearson", "spearman"):
        header += [f"{key}_score", f"{key}_score_lo", f"{key}_score_hi"]
    for key in ("pearson", "spearman"):
        header += [f"{key}_delta", f"{key}_delta_lo", f"{key}_delta_hi"]
    for cat in WEIGHTS:
        header += [f"{cat}_n"] + [f"{cat}_{key}{end}" for key in ("pearson", "spearman") for end in ("", "_lo", "_hi")]
    writer.writerow(header + ["snv_source", "partial", "missing", "training"])
    for row in lb.rows:
        s, iv = row.score, lb.intervals.get(row.entry.name)
        cells = [row.rank or "", row.entry.name, row.entry.source, int(row.entry.external), lb.board, row.status]
        for key in ("pearson", "spearman"):
            bounds = getattr(iv, f"{key}_score") if iv else (None, None)
            cells += [_f6(getattr(s, f"{key}_score") if s else None), _f6(bounds[0]), _f6(bounds[1])]
        for key in ("pearson", "spearman"):
            cells += [_f6(v) for v in iv.delta[key]] if iv and iv.delta else ["", "", ""]
        for cat in WEIGHTS:
            c = s.categories.get(cat) if s else None
            cells.append(c.n if c else "")
            for key in ("pearson", "spearman"):
                bounds = iv.categories[cat][key] if iv and c else (None, None)
                cells += [_f6(getattr(c, key) if c else None), _f6(bounds[0]), _f6(bounds[1])]
        writer.writerow(cells + ([s.snv_source, int(s.partial), ";".join(s.missing)] if s else ["", "", ""])
                        + [row.entry.training])
    return buf.getvalue()


def render_json(lb: Leaderboard, title: str = "Leaderboard") -> str:
    """JSON: ``{"title", "board", "bootstrap": {"resamples", "seed", "level"} | null, "notes",
    "rows": [{"rank" (null when absent), "method", "source", "external", "status", "pearson_score",
    "spearman_score", "pearson_score_ci": [lo, hi] | null, "spearman_score_ci", "delta_vs_1":
    {"pearson": [Δ, lo, hi], "spearman": [...]} | null, "categories": {name: {"n", "pearson",
    "spearman", "pearson_ci", "spearman_ci"}}, "snv_source", "partial", "missing", "note", "training",
    "published": {"pearson_score", "spearman_score", "decimals", "placing", "source"} | null}]}``
    (``status``: ``ranked``, ``published`` for a published number shown for reference, whose scores
    are the published ones, or ``absent``, whose scores are null; ``published`` also on a ranked
    row scored from the same submission's file; no NaN anywhere)."""
    rows = []
    for row in lb.rows:
        s, iv = row.score, lb.intervals.get(row.entry.name)
        item = {"rank": row.rank, "method": row.entry.name, "source": row.entry.source,
                "external": row.entry.external, "status": row.status,
                "pearson_score": s.pearson_score if s else None, "spearman_score": s.spearman_score if s else None,
                "pearson_score_ci": list(iv.pearson_score) if iv else None,
                "spearman_score_ci": list(iv.spearman_score) if iv else None,
                "delta_vs_1": {k: list(v) for k, v in iv.delta.items()} if iv and iv.delta else None,
                "categories": {}, "snv_source": s.snv_source if s else None, "partial": s.partial if s else None,
                "missing": list(s.missing) if s else None, "note": row.entry.note, "training": row.entry.training,
                "published": _published_json(row.entry.published.get(lb.board))}
        for cat, c in (s.categories.items() if s else ()):
            cis = iv.categories.get(cat) if iv else None
            item["categories"][cat] = {"n": c.n, "pearson": c.pearson, "spearman": c.spearman,
                                       "pearson_ci": list(cis["pearson"]) if cis else None,
                                       "spearman_ci": list(cis["spearman"]) if cis else None}
        rows.append(item)
    doc = {"title": title, "board": lb.board, "bootstrap": lb.bootstrap, "notes": lb.notes, "rows": rows}
    return json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def _published_json(pub: PublishedScore | None) -> dict | None:
    if pub is None:
        return None
    return {"pearson_score": pub.pearson_score, "spearman_score": pub.spearman_score, "decimals": pub.decimals,
            "placing": pub.placing, "source": pub.source}


#: Click a header to sort its column (again to reverse); a category header sorts on r, its "ρ" on ρ.
#: Empty cells (absent rows, categories not scored) stay last. Hand-written: a dozen lines.
_SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  heads.forEach(function (th, col) {
    th.addEventListener('click', function (event) {
      var key = event.target.getAttribute('data-k') || 'data-v';
      var dir = th.getAttribute('aria-sort') === 'descending' && th.getAttribute('data-key') === key ? 'ascending'
        : th.getAttribute('aria-sort') === 'ascending' && th.getAttribute('data-key') === key ? 'descending'
        : (th.getAttribute('data-first') || 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute(key), y = b.cells[col].getAttribute(key);
        if (!x || !y) { return (!x) - (!y); }
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
        return dir === 'ascending' ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', dir);
      th.setAttribute('data-key', key);
    });
  });
});
"""

_CSS = ("body{font-family:sans-serif;margin:1em;color:#222;max-width:1400px}"
        "table{border-collapse:collapse;font-size:12px;width:100%}"
        "th,td{border:1px solid #ccc;padding:2px 4px;text-align:right;vertical-align:top}"
        "th{background:#f0f0f0;cursor:pointer;user-select:none;font-weight:600}th small,td small{color:#666;font-weight:normal}"
        "th[aria-sort=descending]::after{content:' ▼'}th[aria-sort=ascending]::after{content:' ▲'}"
        "th .k{text-decoration:underline dotted}"
        ".name{text-align:left;overflow-wrap:anywhere;max-width:16em}td.sig{font-weight:bold}"
        "tr.absent{color:#999}tr.external td.name{font-style:italic}tr.published{background:#f7f7f2}"
        "details{margin:1em 0}figure{margin:1.5em 0}img{max-width:100%}")


def _attr(value) -> str:
    """A ``data-v`` sort key: the number with full precision, text as is, ``""`` for none."""
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, (float, np.floating)) else html.escape(str(value))


def render_html(lb: Leaderboard, title: str = "Leaderboard", max_bars: int = 12) -> str:
    """One self-contained HTML page: the sortable table (scores with their bootstrap intervals,
    the difference to #1, r over ρ per category, intervals in each cell's tooltip), the
    per-category intervals (a sortable table), then the plots as embedded base64 PNG images
    (:func:`_plots`). No external resource; no network.

    Raises:
        ValueError: the primary test set was not loaded (needed for truth and board members).
    """
    if lb.test is None:
        raise ValueError("the HTML report needs the test set of the first run (or --data)")
    ns = lb.category_n()
    esc = html.escape
    boot = lb.bootstrap
    pct = f"{100 * boot['level']:g} %" if boot else ""
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width\"><title>{esc(title)} · {esc(lb.board)} board</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{esc(title)} · {esc(lb.board)} board</h1>",
             "<p>Click a column header to sort (a category: on r; its ρ: on ρ). Cells: Pearson r over Spearman ρ"
             + (f"; scores with their {pct} bootstrap interval; Δ vs #1: the score minus #1's, with the interval of "
                "the paired difference (bold: excludes 0); hover a category cell for its intervals" if boot else "")
             + ".</p>",
             "<table id=\"leaderboard\" class=\"sortable\"><thead><tr>"
             "<th data-first=\"ascending\">#</th><th class=\"name\" data-first=\"ascending\">method<br><small>source</small></th>"
             "<th>Pearson score</th><th>Spearman score</th>"
             + ("<th>Δ vs #1<br><small><span class=\"k\">Pearson</span> / <span class=\"k\" data-k=\"data-w\">"
                "Spearman</span></small></th>" if boot else "")]
    parts += [f"<th>{esc(c)}<br><small>{f'n={ns[c]:,}' if ns[c] is not None else ''}</small><br>"
              "<span class=\"k\">r</span> / <span class=\"k\" data-k=\"data-w\">ρ</span></th>" for c in WEIGHTS]
    parts.append("</tr></thead><tbody>")
    for row in lb.rows:
        s, e, iv = row.score, row.entry, lb.intervals.get(row.entry.name)
        cls = " ".join(c for c in ("absent" if s is None else "", "external" if e.external else "",
                                   "published" if row.reference else "") if c)
        out = [f"<tr class=\"{cls}\">" if cls else "<tr>", f"<td data-v=\"{_attr(row.rank)}\">{row.rank_text}</td>",
               f"<td class=\"name\" data-v=\"{esc(_label(e))}\">{esc(_label(e))}<br><small>{esc(_source_text(e, ' · '))}</small></td>"]
        for key in ("pearson", "spearman"):
            value = getattr(s, f"{key}_score") if s else None
            text = score_text(value, s, _digits(row)) if s else "absent"
            ci = f"<br><small>{_ci(getattr(iv, f'{key}_score'))}</small>" if iv else ""
            out.append(f"<td data-v=\"{_attr(value)}\">{text}{ci}</td>")
        if boot:
            if iv and iv.delta:
                lines, sig = [], False
                for key in ("pearson", "spearman"):
                    d, lo, hi = iv.delta[key]
                    sig = sig or lo > 0 or hi < 0
                    lo, hi = _outwards(lo, hi)
                    lines.append(f"{d:+.4f} <small>[{lo:+.3f}, {hi:+.3f}]</small>")
                sig_class = ' class="sig"' if sig else ""
                out.append(f"<td data-v=\"{_attr(iv.delta['pearson'][0])}\" data-w=\"{_attr(iv.delta['spearman'][0])}\""
                           f"{sig_class}>{'<br>'.join(lines)}</td>")
            else:
                out.append("<td data-v=\"\">—</td>")
        for cat in WEIGHTS:
            c = s.categories.get(cat) if s else None
            if c is None:
                out.append("<td data-v=\"\">—</td>")
                continue
            tip = f"n={c.n:,}"
            if iv:
                r_ci, rho_ci = iv.categories[cat]["pearson"], iv.categories[cat]["spearman"]
                tip += f"; r {c.pearson:.4f} {_ci(r_ci)}; ρ {c.spearman:.4f} {_ci(rho_ci)}"
            digits = _digits(row)
            out.append(f"<td title=\"{esc(tip)}\" data-v=\"{_attr(c.pearson)}\" data-w=\"{_attr(c.spearman)}\">"
                       f"{c.pearson:.{digits}f}<br>{c.spearman:.{digits}f}</td>")
        parts.append("".join(out) + "</tr>")
    parts.append("</tbody></table>")
    parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in lb.notes) + "</ul>")
    if boot:
        parts.append(_category_interval_table(lb, pct))
    for caption, png in _plots(lb, max_bars):
        parts.append(f"<figure><img alt=\"{esc(caption)}\" src=\"data:image/png;base64,{png}\">"
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    parts.append(f"<script>{_SORT_JS}</script>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _category_interval_table(lb: Leaderboard, pct: str) -> str:
    """A collapsed, sortable long table: one row per ranked entry and category with n, weight, r,
    ρ and their intervals."""
    esc = html.escape
    head = ("<details><summary>Per-category " + pct + " bootstrap intervals (a row per entry and category)</summary>"
            "<table id=\"category-intervals\" class=\"sortable\"><thead><tr><th data-first=\"ascending\">#</th>"
            "<th class=\"name\" data-first=\"ascending\">method</th><th class=\"name\" data-first=\"ascending\">category</th><th>n</th><th>weight</th>"
            "<th>Pearson r</th><th>r interval</th><th>Spearman ρ</th><th>ρ interval</th></tr></thead><tbody>")
    rows = []
    for row in lb.ranked:
        iv = lb.intervals.get(row.entry.name)
        for cat, c in row.score.categories.items():
            if iv is None or cat not in iv.categories:
                continue
            (rlo, rhi), (slo, shi) = iv.categories[cat]["pearson"], iv.categories[cat]["spearman"]
            rows.append(f"<tr><td data-v=\"{row.rank}\">{row.rank}</td>"
                        f"<td class=\"name\" data-v=\"{esc(_label(row.entry))}\">{esc(_label(row.entry))}</td>"
                        f"<td class=\"name\" data-v=\"{esc(cat)}\">{esc(cat)}</td><td data-v=\"{c.n}\">{c.n:,}</td>"
                        f"<td data-v=\"{WEIGHTS[cat]}\">{WEIGHTS[cat]:g}</td>"
                        f"<td data-v=\"{_attr(c.pearson)}\">{c.pearson:.4f}</td><td data-v=\"{_attr(rhi - rlo)}\">"
                        f"{_ci((rlo, rhi))}</td><td data-v=\"{_attr(c.spearman)}\">{c.spearman:.4f}</td>"
                        f"<td data-v=\"{_attr(shi - slo)}\">{_ci((slo, shi))}</td></tr>")
    return head + "".join(rows) + "</tbody></table><p><small>An interval column sorts on its width.</small></p></details>"


def _plots(lb: Leaderboard, max_bars: int) -> list[tuple[str, str]]:
    """``[(caption, base64 PNG)]``: category bars (with bootstrap intervals), SNV effects and
    per-category small multiples of the best method and every ensemble, correlation matrix."""
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
                values = np.array([getattr(row.score.categories[c], key) if c in row.score.categories else np.nan
                                   for c in cats])
                iv = lb.intervals.get(row.entry.name)
                err = None
                if iv:
                    bounds = np.array([iv.categories[c][key] if c in iv.categories else (np.nan, np.nan) for c in cats])
                    err = np.clip(np.vstack([values - bounds[:, 0], bounds[:, 1] - values]), 0, None)
                ax.bar(np.arange(len(cats)) + (i - (len(shown) - 1) / 2) * width, values, width,
                       yerr=err, error_kw={"elinewidth": 0.8, "capsize": 1.5}, label=_label(row.entry))
            ax.set_ylabel(label)
            ax.axhline(0, color="black", linewidth=0.5)
            ax.grid(axis="y", alpha=0.3)
        ax.set_xticks(np.arange(len(cats)), cats, rotation=20)
        fig.axes[0].legend(fontsize=8, ncol=min(4, len(shown)), loc="lower left", bbox_to_anchor=(0, 1.02))
        more = f" (top {max_bars} of {len(ranked)})" if len(ranked) > max_bars else ""
        whiskers = f", whiskers: {100 * lb.bootstrap['level']:g} % bootstrap intervals" if lb.bootstrap else ""
        out.append((f"Per-category Pearson r and Spearman ρ on the {lb.board} board{more}{whiskers}", png(fig)))

    test = lb.test
    ids = board_members(test, lb.board)[0]
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
    picks = [(row, category_values(row.entry.predictions(test), test, lb.board))
             for row, _ in best + [(r, p) for r, p in with_pred if is_ensemble(r)]]

    def kind(row: Row) -> str:
        return "ensemble" if is_ensemble(row) else "best method"

    def stats(row: Row, cat: str) -> str:
        c = row.score.categories[cat]
        iv = lb.intervals.get(row.entry.name)
        if iv is None:
            return f"r = {c.pearson:.3f}, ρ = {c.spearman:.3f}"
        return (f"r = {c.pearson:.3f} {_ci(iv.categories[cat]['pearson'])}\n"
                f"ρ = {c.spearman:.3f} {_ci(iv.categories[cat]['spearman'])}")

    snv = [(row, values["SNVs"]) for row, values in picks if "SNVs" in values]
    if snv:
        fig = Figure(figsize=(5.2 * len(snv) + 0.8, 5), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(snv), sharex=True, sharey=True, squeeze=False)[0])
        for ax, (row, (p, t)) in zip(axes, snv):
            hb = _density(ax, t, p, gridsize=60)
            ax.axhline(0, color="grey", linewidth=0.5)
            ax.axvline(0, color="grey", linewidth=0.5)
            ax.set_xlabel("measured alt − ref")
            ax.set_title(f"{_label(row.entry)} ({kind(row)})\n{stats(row, 'SNVs')}", fontsize=9)
        axes[0].set_ylabel("predicted alt − ref")
        if hb is not None:
            fig.colorbar(hb, ax=list(axes), label="pairs (log)")
        names = ", ".join(f"{kind(r)}: {_label(r.entry)}" for r, _ in snv)
        out.append((f"SNV effects, predicted vs measured alt − ref ({names}), {lb.board} board, "
                    f"{len(snv[0][1][1]):,} pairs (weight {WEIGHTS['SNVs']:g}, the heaviest category)", png(fig)))
    for row, values in picks:
        fig = Figure(figsize=(12, 11.5), layout="constrained")
        axes = fig.subplots(3, 3).ravel()
        for ax, cat in zip(axes, cats):
            if cat not in values:
                ax.set_axis_off()
                ax.set_title(f"{cat}: not scored on this board", fontsize=9)
                continue
            p, t = values[cat]
            _density(ax, t, p, gridsize=45)
            pair = " alt − ref" if cat in PAIR_CATEGORIES else ""
            ax.set_xlabel(f"measured{pair}", fontsize=8)
            ax.set_ylabel(f"predicted{pair}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_title(f"{cat} (n={len(t):,}, w={WEIGHTS[cat]:g})\n{stats(row, cat)}", fontsize=9)
        fig.suptitle(f"{_label(row.entry)} ({kind(row)}), {lb.board} board", fontsize=11)
        out.append((f"Predicted vs measured per category ({kind(row)}: {_label(row.entry)}), {lb.board} board, "
                    f"{len(ids):,} sequences", png(fig)))
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


#: Up to this many points a panel is a scatter plot; above, a log-count hexbin.
SCATTER_MAX = 3000


def _density(ax, x: np.ndarray, y: np.ndarray, gridsize: int):
    """Scatter (≤ :data:`SCATTER_MAX` points) or log-count hexbin of ``y`` against ``x`` on ``ax``;
    returns the hexbin (for a colour bar) or None."""
    if len(x) <= SCATTER_MAX:
        ax.scatter(x, y, s=4, alpha=min(0.8, max(0.25, 300 / len(x))), linewidths=0, color="#3b528b")
        return None
    return ax.hexbin(x, y, gridsize=gridsize, bins="log", cmap="viridis", mincnt=1)


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
                     snv_pairs: Path | None = None, title: str = "Leaderboard",
                     bootstrap: int = DEFAULT_RESAMPLES, seed: int = 0) -> Leaderboard | str:
    """Collect, rank, add ``bootstrap`` resampled intervals (seeded by ``seed``; 0 resamples: none;
    :func:`add_intervals`) and render. Returns the rich-table :class:`Leaderboard` for
    ``fmt="table"``, else the rendered text (Markdown, CSV, JSON or HTML).

    Raises:
        ValueError: unknown format or board, a negative ``bootstrap`` or ``seed``; see
            :func:`collect` for the rest.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; choose from {', '.join(BOARDS)}")
    if bootstrap < 0 or seed < 0:
        raise ValueError(f"--bootstrap and --seed must be non-negative (got {bootstrap}, {seed})")
    entries, test, notes = collect(run_dirs, reference, data, snv_pairs, need_test=fmt == "html", boards=[board])
    lb = build(entries, board, notes, test)
    if not lb.ranked:
        raise ValueError(f"no entry has scores on the {board} board")
    if bootstrap:
        add_intervals(lb, bootstrap, seed)
    if fmt == "table":
        return lb
    if fmt == "md":
        return render_markdown(lb, title)
    if fmt == "csv":
        return render_csv(lb)
    if fmt == "json":
        return render_json(lb, title)
    return render_html(lb, title)
