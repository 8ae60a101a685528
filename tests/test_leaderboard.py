"""`harness leaderboard`: ranking, merging runs, published entries, Markdown/CSV, and the HTML report
rendered by headless Chromium."""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.data import load_test_set
from harness.io import write_json, write_npy
from harness.leaderboard import leaderboard_cmd
from harness.report import rank_methods
from harness.scoring import score_boards

from conftest import REAL_DATA, SNV_PAIRS, needs_real_data

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = needs_real_data


@pytest.fixture(scope="module")
def test_set():
    return load_test_set(REAL_DATA, SNV_PAIRS)


def make_run(root: Path, test_set, members: dict[str, np.ndarray], ensemble: np.ndarray | None = None) -> Path:
    """A finished run directory: run.json and, per method, test.npy and the runner's scores.json."""
    write_json(root / "run.json", {"data_dir": str(REAL_DATA), "simulated": False, "n_test": len(test_set),
                                   "snv_pairs": str(SNV_PAIRS), "snv_source": test_set.snv_source,
                                   "split": {"kind": "kfold", "folds": 5, "seed": 0}})
    preds = dict(members)
    if ensemble is not None:
        preds["ensemble"] = ensemble
    for name, pred in preds.items():
        write_npy(root / "methods" / name / "test.npy", pred)
        boards = score_boards(pred, test_set)
        extra = {"stacker": "linear", "fallback": False, "used": "stacker"} if name == "ensemble" else {}
        write_json(root / "methods" / name / "scores.json", {
            "boards": {b: s.to_dict() for b, s in boards.items()}, "oof_pearson": 0.5, "oof_spearman": 0.5,
            "simulated": False, **extra})
    return root


def noisy(truth: np.ndarray, scale: float, seed: int) -> np.ndarray:
    return truth + scale * truth.std() * np.random.default_rng(seed).normal(size=len(truth))


def invoke(*args):
    return CliRunner().invoke(leaderboard_cmd, [str(a) for a in args], env={"COLUMNS": "250"})


def test_merged_runs_with_published_entries_markdown_and_csv(tmp_path, test_set):
    truth = np.asarray(test_set.table.y, dtype=np.float64)
    run1 = make_run(tmp_path / "run1", test_set, {"A": noisy(truth, 0.02, 1), "B": noisy(truth, 1.0, 2)})
    run2 = make_run(tmp_path / "run2", test_set, {"A": noisy(truth, 2.0, 3)})

    md_path = tmp_path / "board.md"
    result = invoke(run1, run2, "--board", "private", "--format", "md", "--out", md_path, "--reference")
    assert result.exit_code == 0, result.output
    md = md_path.read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    names = [r.split(" | ")[1] for r in rows]
    # the clashing name A is prefixed with its run directory; B is not
    assert {"run1/A", "run2/A", "B", "autosome_org_final (external)"} <= set(names)
    assert len(rows) == 3 + 7  # three run entries, seven published files
    # ranked as the challenge did: the mean rank of the two private scores
    scores = {}
    for r in rows:
        cells = r.strip("| ").split(" | ")
        if cells[0] != "—":
            scores[cells[1]] = {"pearson_score": float(cells[3]), "spearman_score": float(cells[4])}
    assert list(scores) == rank_methods(scores)
    assert list(scores)[0] == "run1/A"  # truth + 0.02 sd noise beats the published entries
    autosome = next(r for r in rows if "autosome_org_final" in r)
    assert " | 0.8197 | 0.8542 | " in autosome  # private score with the reconstructed SNVs (tests/test_scoring.py)
    # public-only JSON files are listed as absent on the private board
    absent = [r for r in rows if r.startswith("| — |")]
    assert len(absent) == 4 and all("_public (external)" in r and "| absent | absent |" in r for r in absent)
    assert "SNVs (n=40,131)" in md and "all (n=62,058)" in md
    assert "absent: bhi_public has predictions for the public board only" in md

    # CSV on the public board: the public-only entries are ranked there, scored as published
    result = invoke(run1, run2, "--format", "csv", "--board", "public", "--reference", REAL_DATA / "reference_predictions")
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(result.output)))
    assert len(table) == 10 and all(r["status"] == "ranked" for r in table)
    camformers = next(r for r in table if r["method"] == "camformers_public")
    assert camformers["external"] == "1" and camformers["source"] == "published"
    assert (round(float(camformers["pearson_score"]), 3), round(float(camformers["spearman_score"]), 3)) == (0.763, 0.823)
    assert int(camformers["SNVs_n"]) == 4670  # the public SNV_PAIRS pairs
    assert [int(r["rank"]) for r in table] == list(range(1, 11))
    run_a = next(r for r in table if r["method"] == "run1/A")
    assert int(run_a["all_n"]) == 9045 and float(run_a["all_pearson"]) > 0.9


def test_table_format_and_usage_errors(tmp_path, test_set):
    truth = np.asarray(test_set.table.y, dtype=np.float64)
    run = make_run(tmp_path / "solo", test_set, {"A": noisy(truth, 0.5, 4), "B": noisy(truth, 0.2, 5)})
    result = invoke(run, "--board", "full")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith("1 "))
    assert lines[first].split()[1] == "B" and lines[first + 2].split()[1] == "A"  # B is closer to the truth
    assert "n=71,103" in result.output
    refused = invoke()
    assert refused.exit_code == 2 and "at least one RUN_DIR" in refused.output
    missing = invoke(tmp_path)
    assert missing.exit_code == 1 and "no run.json" in missing.output


class _Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.rows, self._in_body = [], 0, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows += 1

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
def test_html_report_renders_in_headless_chromium(tmp_path, test_set):
    from PIL import Image

    truth = np.asarray(test_set.table.y, dtype=np.float64)
    a, b = noisy(truth, 0.6, 6), noisy(truth, 0.8, 7)
    run = make_run(tmp_path / "run", test_set, {"A": a, "B": b, "C": noisy(truth, 3.0, 8)}, ensemble=(a + b) / 2)
    html_path = tmp_path / "report.html"
    result = invoke(run, "--format", "html", "--out", html_path)
    assert result.exit_code == 0, result.output
    text = html_path.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained

    dom = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", html_path.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    parsed = _Dom()
    parsed.feed(dom)
    assert parsed.rows == 4  # A, B, C, ensemble
    assert "ensemble" in dom and "run/A" not in dom  # no clash, no prefix
    # bars, hexbin of the best method, hexbin of the ensemble, correlation matrix
    assert len(parsed.images) == 4
    for src in parsed.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        data = base64.b64decode(src[len(prefix):], validate=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
        assert pixels.shape[0] > 200 and pixels.shape[1] > 200 and pixels.std() > 5  # not blank
    assert "Predicted vs measured (best method: A)" in dom  # A has the least noise of the members
    assert "Predicted vs measured (ensemble: ensemble)" in dom


def test_scores_come_from_test_npy_never_from_scores_json(tmp_path, test_set):
    """A reversed test.npy must not keep the old score of its stale scores.json; an untrustworthy
    test.npy stops the leaderboard naming the file; scores.json alone is no entry."""
    truth = np.asarray(test_set.table.y, dtype=np.float64)
    good = noisy(truth, 0.1, 9)
    run = make_run(tmp_path / "run", test_set, {"A": good, "B": noisy(truth, 1.0, 10)})
    stale = json.loads((run / "methods" / "A" / "scores.json").read_text())["boards"]["private"]  # of `good`
    write_npy(run / "methods" / "A" / "test.npy", good[::-1].copy())  # scores.json still holds the good score
    want = score_boards(good[::-1], test_set)["private"]
    result = invoke(run, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(result.output))}
    assert float(rows["A"]["pearson_score"]) == pytest.approx(want.pearson_score, abs=1e-6)
    assert float(rows["A"]["pearson_score"]) < stale["pearson_score"] - 0.5
    assert rows["A"]["rank"] == "2" and rows["B"]["rank"] == "1"

    # scores.json without test.npy: left out with a note, never shown from the cache
    (run / "methods" / "B" / "test.npy").unlink()
    result = invoke(run, "--format", "md")
    assert result.exit_code == 0, result.output
    assert "| B |" not in result.output and "no test.npy (its scores.json alone is not trusted), left out" in result.output

    # a NaN-holding test.npy is refused with the file named (never scored in part); so are a pickled
    # or short one (harness.runner.load_predictions, which the leaderboard reads every test.npy with)
    path = run / "methods" / "A" / "test.npy"
    with_nan = good.copy()
    with_nan[123] = np.nan
    write_npy(path, with_nan)
    result = invoke(run, "--format", "csv")
    assert result.exit_code == 1 and f"{path}: 1 of 71,103 values are NaN or inf (first: index 123)" in result.output
    from harness.data import DataError
    from harness.runner import load_predictions

    for bad, message in [(np.array([{"x": 1}] * 3, dtype=object), "not a readable .npy array"),
                         (good[:-5].copy(), r"shape \(71098,\), expected \(71103,\)")]:
        np.save(path, bad, allow_pickle=True)
        with pytest.raises(DataError, match=f"test.npy: {message}"):
            load_predictions(path, len(good))


def test_partial_scores_are_marked_never_shown_as_whole(tmp_path):
    """Without SNV pairs the private board has no SNV category: every table marks the scores `*`."""
    from rich.console import Console

    from harness.report import leaderboard_table

    public_pairs_only = load_test_set(REAL_DATA)  # no --snv-pairs: SNVs cannot be scored on the private board
    truth = np.asarray(public_pairs_only.table.y, dtype=np.float64)
    pred = noisy(truth, 0.5, 11)
    run = tmp_path / "run"
    write_json(run / "run.json", {"data_dir": str(REAL_DATA), "simulated": False, "n_test": len(truth),
                                  "snv_pairs": None, "snv_source": public_pairs_only.snv_source,
                                  "split": {"kind": "none", "folds": 5, "seed": 0}})
    write_npy(run / "methods" / "A" / "test.npy", pred)
    boards = score_boards(pred, public_pairs_only)
    assert boards["private"].missing == ["SNVs"] and not boards["public"].missing

    md = invoke(run, "--format", "md")
    assert md.exit_code == 0, md.output
    row = next(line for line in md.output.splitlines() if line.startswith("| 1 |"))
    assert f"| {boards['private'].pearson_score:.4f}* | {boards['private'].spearman_score:.4f}* |" in row
    assert "* partial score: SNVs cannot be scored on this board" in md.output
    public = invoke(run, "--format", "md", "--board", "public")
    assert "*" not in next(line for line in public.output.splitlines() if line.startswith("| 1 |"))
    rows = list(csv.DictReader(io.StringIO(invoke(run, "--format", "csv").output)))
    assert rows[0]["partial"] == "1" and rows[0]["missing"] == "SNVs"

    buf = io.StringIO()
    Console(file=buf, width=200).print(leaderboard_table({"A": boards}, ["private", "public"], "private"))
    line = next(x for x in buf.getvalue().splitlines() if " A " in x)
    assert f"{boards['private'].pearson_score:.4f}*" in line and f"{boards['public'].pearson_score:.4f} " in line
    assert "partial score: SNVs" in buf.getvalue()

    # a run made on another machine: its recorded data directory is gone here, --data replaces it
    moved = {**json.loads((run / "run.json").read_text()), "data_dir": str(tmp_path / "elsewhere" / "dream2022")}
    write_json(run / "run.json", moved)
    refused = invoke(run, "--format", "md")
    assert refused.exit_code == 1 and "elsewhere/dream2022 does not exist here" in refused.output
    rescored = invoke(run, "--format", "md", "--data", REAL_DATA)
    assert rescored.exit_code == 0, rescored.output
    assert f"| {boards['private'].pearson_score:.4f}* |" in rescored.output
