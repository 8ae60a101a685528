"""`harness predict` and `harness variant-effect` (issue 16): a finished run applied to a user's sequences.

A tiny kmer-ridge 2-fold run on the session's simulated data: its predictions of the test sequences
must equal ``test.npy`` bit for bit (the same fold models, the same mean over folds), every model load
goes through the digest check, bad inputs fail with ``file:line``, the ensemble without a saved stacker
says what to do.
"""

from __future__ import annotations

import gzip
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from rich.console import Console

from harness import predict as predict_module
from harness.cli import main
from harness.data import read_table
from harness.data.encoding import gc_content
from harness.data.readers import DataError, read_sequences
from harness.data.testset import TEST_FILE
from harness.integrity import IntegrityError
from harness.io import UnsafePath, write_npy
from harness.method import Method, MethodConfig
from harness.predict import EnsembleNotSaved, RunPredictor, load_fold_models, read_pairs
from harness.registry import register
from harness.runner import RunSpec, run
from harness.splits import SplitSpec

SET_METHOD = "test-predict-set"
CALLS: list[int] = []  # rows of each predict call of SetDependent


@dataclass
class SetConfig(MethodConfig):
    pass


@register(SET_METHOD)
class SetDependent(Method):
    """GC-content least squares whose predictions are ranks within each predict call: a method whose
    predictions depend on the set predicted together (as High Schoolers' quantile output)."""

    Config = SetConfig
    predictions_depend_on_set = True

    def fit(self, train, valid=None):
        x = np.c_[gc_content(train.codes), np.ones(len(train))]
        self.coef = np.linalg.lstsq(x, train.y.astype(np.float64), rcond=None)[0]

    def predict(self, seqs):
        CALLS.append(len(seqs))
        raw = np.c_[gc_content(seqs.codes), np.ones(len(seqs))] @ self.coef
        return np.argsort(np.argsort(raw, kind="stable"), kind="stable") / max(len(seqs) - 1, 1)

    def _save_state(self, path):
        np.save(path / "coef.npy", self.coef)

    def _load_state(self, path):
        self.coef = np.load(path / "coef.npy", allow_pickle=False)


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


@pytest.fixture(scope="module")
def finished(kmer_ridge_run) -> Path:
    """The session's finished kmer-ridge 2-fold run (conftest), read-only."""
    return kmer_ridge_run


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert lines, result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)


def _read_tsv(path_or_text) -> tuple[list[str], pd.DataFrame]:
    text = Path(path_or_text).read_text() if isinstance(path_or_text, Path) else path_or_text
    header = [line for line in text.splitlines() if line.startswith("#")]
    return header, pd.read_csv(io.StringIO(text), sep="\t", comment="#", dtype={"id": str})


# ----- fold averaging reproduces test.npy ---------------------------------------------------------
def test_predict_of_the_test_sequences_is_test_npy_bit_for_bit(finished, simulated_dir, tmp_path):
    test_npy = np.load(finished / "methods" / "kmer-ridge" / "test.npy")
    test_file = simulated_dir / TEST_FILE
    predictor = RunPredictor.open(finished, "kmer-ridge", device="cpu")
    assert predictor.n_folds == 2
    np.testing.assert_array_equal(predictor.predict(test_file), test_npy)  # a Path: read_sequences
    np.testing.assert_array_equal(predictor.predict_table(read_table(test_file)), test_npy)
    # both folds count: the mean differs from each fold model alone, and is exactly their mean
    folds = [m.predict(read_table(test_file)) for m in predictor.models]
    assert not np.array_equal(folds[0], folds[1])
    np.testing.assert_array_equal((np.asarray(folds[0], np.float64) + np.asarray(folds[1], np.float64)) / 2, test_npy)

    # the command line, on a gzip copy: every value's text reads back as the same float64
    gz = tmp_path / "test.gz"
    gz.write_bytes(gzip.compress(test_file.read_bytes()))
    out = tmp_path / "pred.tsv"
    result = _cli("predict", finished, gz, "--method", "kmer-ridge", "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    header, frame = _read_tsv(out)
    assert list(frame.columns) == ["id", "sequence", "prediction"]
    np.testing.assert_array_equal(frame["prediction"].to_numpy(), test_npy)
    assert frame["sequence"].tolist() == read_table(test_file).sequences()
    assert frame["id"].tolist() == [str(i) for i in range(1, len(test_npy) + 1)]  # line numbers
    assert header[0] == f"# harness predict: run {finished}, method kmer-ridge, {len(test_npy):,} sequence(s)"
    assert header[1].startswith("# units: training-target scale of train_sequences.txt (targets ")
    assert "mean of 2 fold model(s)" in header[2]
    assert len(header) == 3  # no set-dependence note for kmer-ridge


@pytest.mark.parametrize("kind", ["holdout", "none"])
def test_one_model_runs_predict_with_their_one_model(simulated_dir, tmp_path, kind):
    out = tmp_path / kind
    run(RunSpec(["kmer-ridge"], simulated_dir, split=SplitSpec(kind, holdout_fraction=0.2, seed=1),
                profile="tiny", out=out), _quiet())
    predictor = RunPredictor.open(out, "kmer-ridge", device="cpu")
    assert predictor.n_folds == 1
    np.testing.assert_array_equal(predictor.predict(simulated_dir / TEST_FILE),
                                  np.load(out / "methods" / "kmer-ridge" / "test.npy"))


def test_chunked_prediction_equals_one_call(finished, simulated_dir, monkeypatch):
    """Long inputs are predicted in chunks (progress steps): the result must not change."""
    import harness.cli.predict

    table = read_table(simulated_dir / TEST_FILE)
    predictor = RunPredictor.open(finished, "kmer-ridge", device="cpu")
    whole = predictor.predict_table(table)
    monkeypatch.setattr(predict_module, "PREDICT_CHUNK", 300)
    steps = []
    chunked = predictor.predict_table(table, lambda: steps.append(1))
    np.testing.assert_array_equal(chunked, whole)
    assert len(steps) == predictor.steps(len(table)) == 2 * -(-len(table) // 300)
    monkeypatch.setattr(harness.cli.predict, "PROGRESS_MIN", 1)  # the command with its progress bar on
    result = _cli("predict", finished, simulated_dir / TEST_FILE, "--method", "kmer-ridge")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(_read_tsv(result.output)[1]["prediction"].to_numpy(), whole)


def test_set_dependent_method_gets_the_whole_input_and_a_header_note(simulated_dir, tmp_path, monkeypatch):
    out = tmp_path / "setrun"
    run(RunSpec([SET_METHOD], simulated_dir, split=SplitSpec("kfold", folds=2, seed=0), out=out), _quiet())
    monkeypatch.setattr(predict_module, "PREDICT_CHUNK", 100)  # would split 2,000 rows into 20 calls
    CALLS.clear()
    seqs = tmp_path / "seqs.txt"
    seqs.write_text("".join(s + "\n" for s in read_table(simulated_dir / TEST_FILE).sequences()[:500]))
    result = _cli("predict", out, seqs, "--method", SET_METHOD)
    assert result.exit_code == 0, result.output
    assert CALLS == [500, 500]  # one call per fold model, never chunked
    header, frame = _read_tsv(result.output)
    assert any("predictions depend on the set" in line for line in header)
    test_npy = np.load(out / "methods" / SET_METHOD / "test.npy")
    np.testing.assert_array_equal(RunPredictor.open(out, SET_METHOD).predict(simulated_dir / TEST_FILE), test_npy)


# ----- every model load is verified ---------------------------------------------------------------
def test_changed_model_file_is_refused_before_loading(copy_run, simulated_dir):
    model_dir = copy_run / "methods" / "kmer-ridge" / "fold1" / "model"
    victim = next(p for p in sorted(model_dir.rglob("*")) if p.is_file() and p.name != "method.json")
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="fold1/model/"):
        load_fold_models(copy_run, "kmer-ridge")
    _one_line_error(_cli("predict", copy_run, simulated_dir / TEST_FILE, "--method", "kmer-ridge"),
                    f"fold1/model/{victim.relative_to(model_dir).as_posix()}")
    (model_dir / "planted.npy").write_bytes(b"x")
    victim.write_bytes(victim.read_bytes()[:-1])
    with pytest.raises(IntegrityError, match="planted.npy: not a file the harness saved"):
        load_fold_models(copy_run, "kmer-ridge")


def test_linked_fold_is_refused_and_unfinished_fold_named(copy_run, tmp_path):
    fold0 = copy_run / "methods" / "kmer-ridge" / "fold0"
    elsewhere = tmp_path / "elsewhere"
    shutil.move(fold0, elsewhere)
    fold0.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePath, match="fold0: symbolic link"):
        load_fold_models(copy_run, "kmer-ridge")
    fold0.unlink()
    shutil.move(elsewhere, fold0)
    (fold0 / "done.json").unlink()
    with pytest.raises(FileNotFoundError, match="fold0/done.json: the fold is not finished"):
        load_fold_models(copy_run, "kmer-ridge")


def test_unknown_method_and_not_a_run(finished, tmp_path, simulated_dir):
    _one_line_error(_cli("predict", finished, simulated_dir / TEST_FILE, "--method", "../../etc"),
                    "no finished method '../../etc'", "kmer-ridge")
    _one_line_error(_cli("predict", tmp_path, simulated_dir / TEST_FILE, "--method", "kmer-ridge"),
                    "no run.json here")


# ----- input formats and bad sequences ------------------------------------------------------------
def test_fasta_lines_and_tab_inputs_give_the_same_predictions(finished, tmp_path):
    seqs = ["TGCATTTTTTTCACATCGTGACCGTATTAATTTAGGTTCC", "acgtnacgtaggcatt", "GGGGCCCCAAAATTTTGGCA"]
    (tmp_path / "a.fa").write_text(f">first one\n{seqs[0][:20]}\n{seqs[0][20:]}\n\n>second\n{seqs[1]}\n;comment\n>3rd\n{seqs[2]}\n")
    (tmp_path / "b.txt").write_text(f"{seqs[0]}\n\n{seqs[1]}\n{seqs[2]}\n")
    (tmp_path / "c.tsv").write_text("".join(f"{s}\tname{i}\n" for i, s in enumerate(seqs)))
    fasta = read_sequences(tmp_path / "a.fa")
    assert fasta.meta["ids"] == ["first", "second", "3rd"] and fasta.meta["line"].tolist() == [1, 5, 8]
    assert fasta.sequences() == [s.upper() for s in seqs]
    assert read_sequences(tmp_path / "b.txt").meta["ids"] == ["1", "3", "4"]
    predictor = RunPredictor.open(finished, "kmer-ridge")
    expected = predictor.predict(seqs)
    for name in ("a.fa", "b.txt", "c.tsv"):
        np.testing.assert_array_equal(predictor.predict(tmp_path / name), expected)
    result = _cli("predict", finished, tmp_path / "a.fa", "--method", "kmer-ridge")
    assert result.exit_code == 0, result.output
    _, frame = _read_tsv(result.output)
    assert frame["id"].tolist() == ["first", "second", "3rd"]
    np.testing.assert_array_equal(frame["prediction"].to_numpy(), expected)


def test_bad_sequences_name_file_and_line(finished, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("ACGT\nACXT\n\nACGT\t1\n" + "A" * 1001 + "\n")
    _one_line_error(_cli("predict", finished, bad, "--method", "kmer-ridge"),
                    f"{bad}:2: sequence has 'X' at position 3, not a nucleotide letter",
                    f"{bad}:5: sequence of 1,001 nt exceeds the limit of 1,000 nt")
    fasta = tmp_path / "bad.fa"
    fasta.write_text(">a\nACGT\nAC-T\n>\nACGT\n>empty\n>b\nACGT\n")
    with pytest.raises(DataError) as err:
        read_sequences(fasta)
    assert str(err.value).splitlines() == [
        f"{fasta}:3: sequence has '-' at position 3, not a nucleotide letter",
        f"{fasta}:4: FASTA header without a name",
        f"{fasta}:6: FASTA record 'empty' has no sequence"]
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("ACGT\n>name\nACGT\n")
    with pytest.raises(DataError, match=r"mixed.txt:2: a FASTA header, but the file does not start with one"):
        read_sequences(mixed)
    many = tmp_path / "many.txt"
    many.write_text("".join("ACGU\n" for _ in range(8)))
    with pytest.raises(DataError, match=r"many.txt:5: .*\n\.\.\. and 3 more bad lines$"):
        read_sequences(many)
    for content, message in ((b"", "the file is empty"), (b"\n \n", "holds no sequence"),
                             (b"\xfd7zXZ\x00rest", "xz-compressed data")):
        (tmp_path / "x").write_bytes(content)
        with pytest.raises(DataError, match=message):
            read_sequences(tmp_path / "x")
    with pytest.raises(ValueError, match=r"sequence 1: sequence has 'Z' at position 2"):
        RunPredictor.open(finished, "kmer-ridge").predict(["ACGT", "AZGT"])


# ----- the ensemble ---------------------------------------------------------------------------------
def test_ensemble_without_a_saved_stacker_says_what_to_do(copy_run, simulated_dir, tmp_path):
    seqs = tmp_path / "s.txt"
    seqs.write_text("ACGTACGT\n")
    _one_line_error(_cli("predict", copy_run, seqs, "--method", "ensemble"),
                    "no ensemble in this run", "harness ensemble")
    # what `harness ensemble` of this version leaves: predictions only
    ens = copy_run / "methods" / "ensemble"
    for name in ("test.npy", "stacker_test.npy"):
        write_npy(ens / name, np.load(copy_run / "methods" / "kmer-ridge" / "test.npy"))
    result = _cli("predict", copy_run, seqs, "--method", "ensemble")
    _one_line_error(result, "the ensemble's stacker was not saved", f"re-run `harness ensemble {copy_run}`",
                    "--method kmer-ridge")
    with pytest.raises(EnsembleNotSaved):
        RunPredictor.open(copy_run, "ensemble")


def test_ensemble_prediction_reproduces_the_ensembles_test_npy(simulated_dir, tmp_path):
    """`harness ensemble` saves its stacker; `predict --method ensemble` on the test sequences gives
    the ensemble's test.npy (members' fold means stacked by the verified, reloaded stacker)."""
    from harness.ensemble import ensemble_run

    out = tmp_path / "run"
    run(RunSpec(["kmer-ridge", "kmer-lgbm"], simulated_dir, split=SplitSpec("kfold", folds=2, seed=3), profile="tiny",
                out=out), _quiet())
    ensemble_run(out, "linear")
    got = RunPredictor.open(out, "ensemble").predict(simulated_dir / TEST_FILE)
    np.testing.assert_allclose(got, np.load(out / "methods" / "ensemble" / "test.npy"), rtol=0, atol=1e-12)


# ----- variant effects and ISM ------------------------------------------------------------------------
REF = "TGCATTTTTTTCACATCGTGACCGTATTAATTTAGGTTCCATTAAGGGACAAATTTATCGCCGTCAATCGAGGGAACAACTTACAAGGCCGATTGCGGGTTACGGCTGTT"


def _mutate(seq: str, pos: int, base: str) -> str:
    return seq[:pos - 1] + base + seq[pos:]


def test_variant_effect_pairs_and_positions(finished, tmp_path):
    predictor = RunPredictor.open(finished, "kmer-ridge")
    alts = [_mutate(REF, 20, "A"), _mutate(REF, 50, "T"), REF]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("id\tref\talt\tnote\n" + "".join(f"v{i}\t{REF}\t{a}\tx\n" for i, a in enumerate(alts)))
    result = _cli("variant-effect", finished, pairs, "--method", "kmer-ridge")
    assert result.exit_code == 0, result.output
    header, frame = _read_tsv(result.output)
    pred_ref, pred_alt = predictor.predict([REF])[0], predictor.predict(alts)
    assert frame["id"].tolist() == ["v0", "v1", "v2"]
    np.testing.assert_array_equal(frame["pred_ref"], [pred_ref] * 3)
    np.testing.assert_array_equal(frame["pred_alt"], pred_alt)
    np.testing.assert_array_equal(frame["effect"], pred_alt - pred_ref)
    assert frame["effect"].iloc[2] == 0.0 and frame["effect"].iloc[0] != 0.0
    assert "# effect = pred_alt - pred_ref" in header

    positions = tmp_path / "pos.tsv"
    positions.write_text("pos\talt_base\n20\ta\n50\tT\n")
    result = _cli("variant-effect", finished, positions, "--method", "kmer-ridge", "--ref", REF)
    assert result.exit_code == 0, result.output
    _, frame = _read_tsv(result.output)
    assert frame["ref_base"].tolist() == ["G", "C"] and frame["alt_base"].tolist() == ["A", "T"]
    np.testing.assert_array_equal(frame["effect"], pred_alt[:2] - pred_ref)

    bad = tmp_path / "bad.tsv"
    bad.write_text("pos\talt_base\n0\tA\n20\tQ\n20\n")
    _one_line_error(_cli("variant-effect", finished, bad, "--method", "kmer-ridge", "--ref", REF),
                    f"{bad}:2: pos '0' is not a position 1..110", f"{bad}:3: alt_base 'Q' is not one of A, C, G, T, N",
                    f"{bad}:4: 1 tab-separated columns, the header has 2")
    with pytest.raises(DataError, match=r"pos.tsv:1: columns 'pos' and 'alt_base' need the reference"):
        read_pairs(positions)
    (tmp_path / "cols.tsv").write_text("a\tb\nACGT\tACGA\n")
    with pytest.raises(DataError, match=r"cols.tsv:1: the header needs columns 'ref' and 'alt'"):
        read_pairs(tmp_path / "cols.tsv")


def test_ism_map_tsv_and_png(finished, tmp_path):
    predictor = RunPredictor.open(finished, "kmer-ridge")
    seq = REF[:40] + "N" + REF[41:60]
    pred_ref, effects = predictor.ism(seq)
    assert effects.shape == (len(seq), 4)
    assert pred_ref == predictor.predict([seq])[0]
    for pos, base in ((1, "A"), (17, "G"), (41, "T"), (60, "C")):
        b = "ACGT".index(base)
        expected = 0.0 if seq[pos - 1] == base else predictor.predict([_mutate(seq, pos, base)])[0] - pred_ref
        assert effects[pos - 1, b] == pytest.approx(expected, abs=1e-12)
    own = [(p, "ACGT".index(base)) for p, base in enumerate(seq) if base != "N"]
    assert all(effects[p, b] == 0.0 for p, b in own)  # the sequence's own base: exactly 0
    assert (effects[40] != 0).all()  # N: all four are substitutions

    out = tmp_path / "ism.tsv"
    result = _cli("variant-effect", finished, "--method", "kmer-ridge", "--ism", seq, "--out", out)
    assert result.exit_code == 0, result.output
    header, frame = _read_tsv(out)
    assert list(frame.columns) == ["pos", "ref_base", "A", "C", "G", "T"] and len(frame) == len(seq)
    np.testing.assert_array_equal(frame[list("ACGT")].to_numpy(), effects)
    assert f"# prediction of the sequence: {pred_ref!r}" in header
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    _one_line_error(_cli("variant-effect", finished, "--method", "kmer-ridge", "--ism", "ACXT"),
                    "--ism sequence: sequence has 'X' at position 3")
    usage = _cli("variant-effect", finished, "--method", "kmer-ridge")
    assert usage.exit_code == 2 and "give either PAIRS or --ism SEQUENCE" in usage.output


def test_team_plug_ins_declare_set_dependence_and_units():
    """High Schoolers' paper quantile transform and BHI's normal CDF change what `harness predict` reports."""
    from harness import registry

    hs = registry.get("highschoolers")
    assert hs().predictions_depend_on_set and "quantile level" in hs().prediction_units
    cpu = hs(registry.load_profile(hs, "cpu").config)
    assert not cpu.predictions_depend_on_set and cpu.prediction_units is None
    assert "normal CDF" in registry.get("bhi")().prediction_units
    assert registry.get("kmer-ridge")().prediction_units is None


def test_variant_pairs_read_from_gzip_by_magic_bytes(finished, tmp_path):
    """read_pairs reads gzip as the training readers do (by content, whatever the name); errors name
    the compressed file and the decompressed line (regression: it used to decode the gzip bytes as text)."""
    alts = [_mutate(REF, 20, "A"), _mutate(REF, 50, "T")]
    text = "id\tref\talt\n" + "".join(f"v{i}\t{REF}\t{a}\n" for i, a in enumerate(alts))
    plain, packed, unnamed = tmp_path / "pairs.tsv", tmp_path / "pairs.tsv.gz", tmp_path / "pairs-packed.tsv"
    plain.write_text(text)
    packed.write_bytes(gzip.compress(text.encode()))
    unnamed.write_bytes(gzip.compress(text.encode()))
    expected = read_pairs(plain)
    for path in (packed, unnamed):
        got = read_pairs(path)
        assert (got.ref, got.alt, got.ids) == (expected.ref, expected.alt, expected.ids)
    plain_out = _cli("variant-effect", finished, plain, "--method", "kmer-ridge")
    packed_out = _cli("variant-effect", finished, packed, "--method", "kmer-ridge")
    assert packed_out.exit_code == 0, packed_out.output
    assert _read_tsv(packed_out.output)[1].equals(_read_tsv(plain_out.output)[1])

    bad = tmp_path / "bad.tsv.gz"
    bad.write_bytes(gzip.compress(b"pos\talt_base\n20\tA\n20\tQ\n"))
    with pytest.raises(DataError, match=r"bad\.tsv\.gz:3: alt_base 'Q' is not one of"):
        read_pairs(bad, ref=REF)
    truncated = tmp_path / "truncated.tsv.gz"
    truncated.write_bytes(gzip.compress(text.encode())[:-12])
    with pytest.raises(DataError, match=r"truncated\.tsv\.gz: gzip data cannot be decompressed"):
        read_pairs(truncated)
