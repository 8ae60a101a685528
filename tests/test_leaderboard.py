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
from harness.cli.leaderboard import leaderboard_cmd
from harness.report import rank_methods
from harness.scoring import WEIGHTS, score_boards

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
    result = invoke(run1, run2, "--board", "private", "--format", "md", "--out", md_path, "--reference",
                    "--bootstrap", 20)
    assert result.exit_code == 0, result.output
    md = md_path.read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    names = [r.split(" | ")[1] for r in rows]
    # the clashing name A is prefixed with its run directory; B is not
    assert {"run1/A", "run2/A", "B", "autosome_org_final (external)"} <= set(names)
    assert len(rows) == 3 + 7  # three run entries, seven published files
    # ranked as the challenge did: the mean rank of the two private scores; each score with its
    # bootstrap interval, which holds it
    scores = {}
    for r in rows:
        cells = r.strip("| ").split(" | ")
        if cells[0] != "—":
            for cell in cells[3:5]:
                value, lo, hi = (float(x) for x in cell.replace("[", "").replace("]", "").replace(",", "").split())
                assert lo <= value <= hi
            scores[cells[1]] = {"pearson_score": float(cells[3].split()[0]), "spearman_score": float(cells[4].split()[0])}
    assert list(scores) == rank_methods(scores)
    assert list(scores)[0] == "run1/A"  # truth + 0.02 sd noise beats the published entries
    autosome = next(r for r in rows if "autosome_org_final" in r)
    assert " | 0.8197 [" in autosome and " | 0.8542 [" in autosome  # private score, reconstructed SNVs (test_scoring.py)
    assert "95 % percentile bootstrap interval, 20 resamples (seed 0)" in md
    assert "- #1 run1/A − #2 autosome_org_final (external) on the same draws: Pearson score +" in md
    assert "both differences are significant at 95 %" in md  # 0.02 sd of noise against the winner: far apart
    # public-only JSON files are listed as absent on the private board
    absent = [r for r in rows if r.startswith("| — |")]
    assert len(absent) == 4 and all("_public (external)" in r and "| absent | absent |" in r for r in absent)
    assert "SNVs (n=40,131)" in md and "all (n=62,058)" in md
    assert "absent: bhi_public has predictions for the public board only" in md

    # CSV on the public board: the public-only entries are ranked there, scored as published
    result = invoke(run1, run2, "--format", "csv", "--board", "public", "--bootstrap", 0,
                    "--reference", REAL_DATA / "reference_predictions")
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(result.output)))
    assert all(r["pearson_score_lo"] == r["SNVs_spearman_hi"] == r["pearson_delta"] == "" for r in table)  # no bootstrap
    assert len(table) == 10 and all(r["status"] == "ranked" for r in table)
    camformers = next(r for r in table if r["method"] == "camformers_public")
    assert camformers["external"] == "1" and camformers["source"] == "published"
    assert (round(float(camformers["pearson_score"]), 3), round(float(camformers["spearman_score"]), 3)) == (0.763, 0.823)
    assert int(camformers["SNVs_n"]) == 4670  # the public SNV_PAIRS pairs
    assert [int(r["rank"]) for r in table] == list(range(1, 11))
    run_a = next(r for r in table if r["method"] == "run1/A")
    assert int(run_a["all_n"]) == 9045 and float(run_a["all_pearson"]) > 0.9


def test_published_numbers_are_reference_rows_or_notes_never_ranked(tmp_path, test_set):
    """harness/scoring/published.toml: a published number without a prediction file is a reference
    row on its board (rank "ref", the source's decimals, no interval, status "published"); one whose
    submission's file is scored here is a note beside that score."""
    truth = np.asarray(test_set.table.y, dtype=np.float64)
    run = make_run(tmp_path / "run", test_set, {"A": noisy(truth, 0.02, 1), "B": noisy(truth, 1.0, 2)})

    result = invoke(run, "--board", "full", "--format", "md", "--reference", "--bootstrap", 10)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    ref = [r for r in rows if r.startswith("| ref |")]
    assert len(ref) == 1 and ref[0].startswith("| ref | Camformers (published number) | published number · ")
    cells = ref[0].strip("| ").split(" | ")
    assert cells[3:6] == ["0.753", "0.821", "0.956 / 0.961"]  # the write-up's numbers as printed, no interval
    assert cells[-3] == "0.821 / 0.674 (n=44,340)"  # the official SNV pairs, not the reconstructed 44,795
    header = next(line for line in result.output.splitlines() if line.startswith("| # |"))
    assert "| SNVs |" in header and "| high (n=968) |" in header  # no single SNV n: the cells carry theirs
    ranks = [r.strip("| ").split(" | ")[0] for r in rows]
    assert ranks[:5] == ["1", "2", "3", "4", "5"] and ranks[5] == "ref"  # ranked rows first, unchanged by it
    assert "- ref: Camformers (published number): 0.753 / 0.821 as published (5th on the Pearson score" in result.output
    assert "not scored here (no prediction file): not ranked, no interval" in result.output

    # the private board: autosome.org's file is scored here; its published number is set beside it
    private = invoke(run, "--board", "private", "--format", "md", "--reference", "--bootstrap", 0)
    assert private.exit_code == 0, private.output
    assert "| ref |" not in private.output
    assert ("- autosome_org_final: published private score 0.8184 / 0.8541, 1st (" in private.output
            and "; scored here 0.8197 / 0.8542" in private.output)

    # CSV and JSON say which rows are published numbers
    table = list(csv.DictReader(io.StringIO(invoke(run, "--board", "full", "--format", "csv", "--reference",
                                                   "--bootstrap", 10).output)))
    published = [r for r in table if r["status"] == "published"]
    assert [(r["method"], r["rank"], r["pearson_score_lo"], r["SNVs_n"]) for r in published] == [
        ("Camformers", "", "", "44340")]
    assert {r["status"] for r in table} == {"ranked", "published", "absent"}
    doc = json.loads(invoke(run, "--board", "full", "--format", "json", "--reference", "--bootstrap", 0).output)
    row = next(r for r in doc["rows"] if r["status"] == "published")
    assert row["rank"] is None and row["pearson_score"] == 0.753 and row["pearson_score_ci"] is None
    assert row["published"]["decimals"] == 3 and "write-up" in row["published"]["source"]
    public = json.loads(invoke(run, "--board", "public", "--format", "json", "--reference", "--bootstrap", 0).output)
    cam = next(r for r in public["rows"] if r["method"] == "camformers_public")
    assert cam["status"] == "ranked" and cam["published"]["pearson_score"] == 0.763  # beside its file's score
    assert round(cam["pearson_score"], 3) == 0.763

    html_path = tmp_path / "full.html"
    assert invoke(run, "--board", "full", "--format", "html", "--out", html_path, "--reference",
                  "--bootstrap", 0).exit_code == 0
    page = html_path.read_text()
    assert '<tr class="external published"><td data-v="">ref</td>' in page and ">0.956<br>0.961</td>" in page

    # without --reference no published number appears
    plain = invoke(run, "--board", "full", "--format", "md", "--bootstrap", 0)
    assert plain.exit_code == 0 and "| ref |" not in plain.output and "published number" not in plain.output


def test_table_format_and_usage_errors(tmp_path, test_set):
    truth = np.asarray(test_set.table.y, dtype=np.float64)
    run = make_run(tmp_path / "solo", test_set, {"A": noisy(truth, 0.5, 4), "B": noisy(truth, 0.2, 5)})
    result = invoke(run, "--board", "full", "--bootstrap", 30, "--seed", 5)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith("1 "))
    assert lines[first].split()[1] == "B" and lines[first + 2].split()[1] == "A"  # B is closer to the truth
    assert lines[first + 1].split()[0].startswith("[")  # the score's interval under it
    assert "n=71,103" in result.output and "30 resamples (seed 5)" in result.output
    assert "[lo, hi]: 95 % percentile bootstrap interval" in result.output  # escaped, not read as rich markup
    assert "#1 B − #2 A on the same draws" in result.output
    refused = invoke()
    assert refused.exit_code == 2 and "at least one RUN_DIR" in refused.output
    negative = invoke(run, "--bootstrap", -1)
    assert negative.exit_code == 2 and "-1 is not in the range x>=0" in negative.output
    missing = invoke(tmp_path)
    assert missing.exit_code == 1 and "no run.json" in missing.output


class _Dom(HTMLParser):
    """Images, body rows per table id, and the ``data-check`` attribute of <body>."""

    def __init__(self):
        super().__init__()
        self.images, self.rows, self.check, self._table = [], {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "body":
            self.check = attrs.get("data-check")
        elif tag == "table":
            self._table = attrs.get("id")
        elif tag == "tr" and self._table is not None:
            self.rows[self._table] = self.rows.get(self._table, 0) + 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None


#: Run after the report's own script: clicks headers as a reader would and records the row order
#: and the page width in <body data-check>.
_CLICK_CHECK = """<script>
(function () {
  var t = document.getElementById('leaderboard'), heads = t.tHead.rows[0].cells;
  function names() {
    return Array.prototype.map.call(t.tBodies[0].rows, function (r) { return r.cells[1].getAttribute('data-v'); });
  }
  function head(label) {
    for (var i = 0; i < heads.length; i++) { if (heads[i].textContent.indexOf(label) === 0) { return heads[i]; } }
  }
  var out = {initial: names()};
  head('Pearson score').click(); out.pearson_first = names(); out.aria = head('Pearson score').getAttribute('aria-sort');
  head('Pearson score').click(); out.pearson_second = names();
  head('method').click(); out.method_first = names();
  head('high').querySelector('[data-k]').click(); out.high_rho_first = names();
  out.high_key = head('high').getAttribute('data-key');
  out.scroll_width = document.documentElement.scrollWidth;
  out.inner_width = window.innerWidth;
  document.body.setAttribute('data-check', JSON.stringify(out));
})();
</script>"""


def chromium(tmp_path: Path, *args: str) -> str:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,1000", *args],
        capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path).stdout


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
def test_html_report_renders_in_headless_chromium(tmp_path, test_set):
    from PIL import Image

    truth = np.asarray(test_set.table.y, dtype=np.float64)
    a, b = noisy(truth, 0.6, 6), noisy(truth, 0.8, 7)
    members = {"A": a, "B": b, "C": noisy(truth, 3.0, 8)}
    run = make_run(tmp_path / "run", test_set, members, ensemble=(a + b) / 2)
    html_path = tmp_path / "report.html"
    result = invoke(run, "--format", "html", "--out", html_path, "--bootstrap", 30)
    assert result.exit_code == 0, result.output
    text = html_path.read_text()
    assert "http://" not in text and "https://" not in text and "src=\"data:image/png" in text  # self-contained

    dom = chromium(tmp_path, "--dump-dom", html_path.resolve().as_uri())
    parsed = _Dom()
    parsed.feed(dom)
    assert parsed.rows == {"leaderboard": 1 + 4, "category-intervals": 1 + 4 * 9}  # header + A, B, C, ensemble
    assert "ensemble" in dom and "run/A" not in dom  # no clash, no prefix
    # bars, SNV effects (best method and ensemble side by side), per-category small multiples of the
    # best method and of the ensemble, correlation matrix
    assert len(parsed.images) == 5
    for src in parsed.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        data = base64.b64decode(src[len(prefix):], validate=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
        assert pixels.shape[0] > 200 and pixels.shape[1] > 200 and pixels.std() > 5  # not blank
    assert "Per-category Pearson r and Spearman ρ on the private board, whiskers: 95 % bootstrap intervals" in dom
    assert "SNV effects, predicted vs measured alt − ref (best method: A, ensemble: ensemble), private board, 40,131 pairs" in dom
    assert "Predicted vs measured per category (best method: A)" in dom  # A has the least noise of the members
    assert "Predicted vs measured per category (ensemble: ensemble)" in dom
    assert "#1 ensemble − #2 A on the same draws" in dom

    # the rendered page is not blank and fits a 1280-pixel window
    chromium(tmp_path, "--screenshot=page.png", html_path.resolve().as_uri())
    page = np.asarray(Image.open(tmp_path / "page.png").convert("L"))
    assert page.shape[1] == 1280 and page.std() > 20

    # a click on a header sorts the table (again: reversed); a category's ρ sorts on ρ
    checked = tmp_path / "checked.html"
    checked.write_text(text.replace("</body>", _CLICK_CHECK + "</body>"))
    parsed = _Dom()
    parsed.feed(chromium(tmp_path, "--dump-dom", checked.resolve().as_uri()))
    check = json.loads(parsed.check)
    boards = {n: score_boards(p, test_set, ["private"])["private"] for n, p in {**members, "ensemble": (a + b) / 2}.items()}
    by = lambda key: sorted(boards, key=key, reverse=True)
    assert check["initial"] == rank_methods({n: {"pearson_score": s.pearson_score, "spearman_score": s.spearman_score}
                                             for n, s in boards.items()})
    assert check["pearson_first"] == by(lambda n: boards[n].pearson_score) and check["aria"] == "descending"
    assert check["pearson_second"] == check["pearson_first"][::-1]
    assert check["method_first"] == sorted(boards)
    assert check["high_rho_first"] == by(lambda n: boards[n].categories["high"].spearman)
    assert check["high_key"] == "data-w"  # the ρ sort key, not r's
    assert check["scroll_width"] <= check["inner_width"] == 1280


def test_intervals_in_csv_and_json_are_seeded(tmp_path, test_set):
    """CSV and JSON carry every interval (scores, categories) and the paired difference to #1; the
    same seed gives the same intervals, another seed others."""
    truth = np.asarray(test_set.table.y, dtype=np.float64)
    base = noisy(truth, 0.5, 12)
    run = make_run(tmp_path / "run", test_set, {"A": base, "B": noisy(base, 0.05, 13), "C": noisy(truth, 1.5, 14)})
    first = invoke(run, "--format", "csv", "--bootstrap", 30)
    assert first.exit_code == 0, first.output
    table = {r["method"]: r for r in csv.DictReader(io.StringIO(first.output))}
    top = next(r for r in table.values() if r["rank"] == "1")
    for row in table.values():
        for key in ["pearson_score", "spearman_score"] + [f"{c}_{k}" for c in WEIGHTS for k in ("pearson", "spearman")]:
            assert float(row[f"{key}_lo"]) <= float(row[key]) <= float(row[f"{key}_hi"]), (row["method"], key)
        if row is top:
            assert row["pearson_delta"] == row["spearman_delta_hi"] == ""
            continue
        for key in ("pearson", "spearman"):
            assert float(row[f"{key}_delta"]) == pytest.approx(float(row[f"{key}_score"]) - float(top[f"{key}_score"]),
                                                               abs=2e-6)
            assert float(row[f"{key}_delta_lo"]) <= float(row[f"{key}_delta_hi"])
    assert float(table["C"]["pearson_delta_hi"]) < 0  # far worse than #1 on every draw
    # B is A plus a little noise: their paired difference is far narrower than either interval
    a, b = table["A"], table["B"]
    pair = float(b["pearson_delta_hi"]) - float(b["pearson_delta_lo"]) if a is top else \
        float(a["pearson_delta_hi"]) - float(a["pearson_delta_lo"])
    assert pair < 0.5 * (float(a["pearson_score_hi"]) - float(a["pearson_score_lo"]))

    doc = json.loads(invoke(run, "--format", "json", "--bootstrap", 30).output,
                     parse_constant=lambda c: pytest.fail(f"JSON holds {c}"))
    assert doc["bootstrap"] == {"resamples": 30, "seed": 0, "level": 0.95}
    for item in doc["rows"]:
        row = table[item["method"]]
        assert item["pearson_score_ci"] == pytest.approx([float(row["pearson_score_lo"]), float(row["pearson_score_hi"])],
                                                         abs=1e-6)
        snv = item["categories"]["SNVs"]
        assert snv["spearman_ci"] == pytest.approx([float(row["SNVs_spearman_lo"]), float(row["SNVs_spearman_hi"])],
                                                   abs=1e-6)
        assert (item["delta_vs_1"] is None) == (row is top)
    again = invoke(run, "--format", "csv", "--bootstrap", 30)
    assert again.output == first.output
    other = {r["method"]: r for r in csv.DictReader(io.StringIO(invoke(run, "--format", "csv", "--bootstrap", 30,
                                                                        "--seed", 1).output))}
    assert other["A"]["pearson_score"] == a["pearson_score"] and other["A"]["pearson_score_lo"] != a["pearson_score_lo"]


def test_entries_on_another_test_set_get_their_own_draws_and_no_difference(tmp_path, test_set):
    """A run scored without the SNV-pair file (another test set: partial private board) is resampled
    on its own test set; it has intervals but no paired difference to #1, and the note says so."""
    truth = np.asarray(test_set.table.y, dtype=np.float64)
    run1 = make_run(tmp_path / "run1", test_set, {"A": noisy(truth, 0.1, 15)})
    run2 = tmp_path / "run2"
    write_json(run2 / "run.json", {"data_dir": str(REAL_DATA), "simulated": False, "n_test": len(truth),
                                   "snv_pairs": None, "split": {"kind": "none", "folds": 5, "seed": 0}})
    write_npy(run2 / "methods" / "B" / "test.npy", noisy(truth, 0.3, 16))
    result = invoke(run1, run2, "--format", "json", "--bootstrap", 10)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    rows = {r["method"]: r for r in doc["rows"]}
    assert rows["A"]["rank"] == 1 and rows["B"]["partial"] and rows["B"]["missing"] == ["SNVs"]
    assert rows["B"]["delta_vs_1"] is None and rows["B"]["pearson_score_ci"] is not None
    assert "SNVs" not in rows["B"]["categories"] and rows["A"]["categories"]["SNVs"]["pearson_ci"] is not None
    assert "#1 A and #2 B were scored on different test sets: no paired difference" in doc["notes"]


def test_scores_come_from_test_npy_never_from_scores_json(tmp_path, test_set):
    """A reversed test.npy must not keep the old score of its stale scores.json; an untrustworthy
    test.npy stops the leaderboard naming the file; scores.json alone is no entry."""
    truth = np.asarray(test_set.table.y, dtype=np.float64)
    good = noisy(truth, 0.1, 9)
    run = make_run(tmp_path / "run", test_set, {"A": good, "B": noisy(truth, 1.0, 10)})
    stale = json.loads((run / "methods" / "A" / "scores.json").read_text())["boards"]["private"]  # of `good`
    write_npy(run / "methods" / "A" / "test.npy", good[::-1].copy())  # scores.json still holds the good score
    want = score_boards(good[::-1], test_set)["private"]
    result = invoke(run, "--format", "csv", "--bootstrap", 0)
    assert result.exit_code == 0, result.output
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(result.output))}
    assert float(rows["A"]["pearson_score"]) == pytest.approx(want.pearson_score, abs=1e-6)
    assert float(rows["A"]["pearson_score"]) < stale["pearson_score"] - 0.5
    assert rows["A"]["rank"] == "2" and rows["B"]["rank"] == "1"

    # scores.json without test.npy: left out with a note, never shown from the cache
    (run / "methods" / "B" / "test.npy").unlink()
    result = invoke(run, "--format", "md", "--bootstrap", 0)
    assert result.exit_code == 0, result.output
    assert "| B |" not in result.output and "no test.npy (its scores.json alone is not trusted), left out" in result.output

    # a NaN-holding test.npy is refused with the file named (never scored in part); so are a pickled
    # or short one (harness.rundir.load_predictions, which the leaderboard reads every test.npy with)
    path = run / "methods" / "A" / "test.npy"
    with_nan = good.copy()
    with_nan[123] = np.nan
    write_npy(path, with_nan)
    result = invoke(run, "--format", "csv")
    assert result.exit_code == 1 and f"{path}: 1 of 71,103 values are NaN or inf (first: index 123)" in result.output
    from harness.data import DataError
    from harness.rundir import load_predictions

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

    md = invoke(run, "--format", "md", "--bootstrap", 0)
    assert md.exit_code == 0, md.output
    row = next(line for line in md.output.splitlines() if line.startswith("| 1 |"))
    assert f"| {boards['private'].pearson_score:.4f}* | {boards['private'].spearman_score:.4f}* |" in row
    # the resampled score is partial too (SNVs count 0 in every draw): the mark stays, before its interval
    with_ci = invoke(run, "--format", "md", "--bootstrap", 20)
    row = next(line for line in with_ci.output.splitlines() if line.startswith("| 1 |"))
    assert f"| {boards['private'].pearson_score:.4f}* [" in row and f"| {boards['private'].spearman_score:.4f}* [" in row
    assert "* partial score: SNVs cannot be scored on this board" in md.output
    public = invoke(run, "--format", "md", "--board", "public", "--bootstrap", 0)
    assert "*" not in next(line for line in public.output.splitlines() if line.startswith("| 1 |"))
    rows = list(csv.DictReader(io.StringIO(invoke(run, "--format", "csv", "--bootstrap", 0).output)))
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
    rescored = invoke(run, "--format", "md", "--data", REAL_DATA, "--bootstrap", 0)
    assert rescored.exit_code == 0, rescored.output
    assert f"| {boards['private'].pearson_score:.4f}* |" in rescored.output


def test_notes_carry_no_absolute_paths(tmp_path, monkeypatch):
    """Published tables are committed: paths in their notes are relative to the working directory."""
    from harness.leaderboard import relative_paths

    monkeypatch.chdir(tmp_path)
    text = (f"SNV pairs: given file ({tmp_path.parent / 'data' / 'pairs.csv'}), 44795 pairs; "
            f"files from {tmp_path / 'refs'}, Pearson r / Spearman ρ (Σ w·r² / 4.65)")
    assert relative_paths(text) == ("SNV pairs: given file (../data/pairs.csv), 44795 pairs; files from refs, "
                                    "Pearson r / Spearman ρ (Σ w·r² / 4.65)")
