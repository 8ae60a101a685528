"""The simulated dataset (harness.data.simulate): layout, determinism, pairs and planted effects."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pytest

from harness.data import encoding, load_test_set, read_public_ids, read_table
from harness.data import simulate as sim
from harness.data.testset import CATEGORIES, PAIR_CATEGORIES, PUBLIC_DIR, SUBSET_DIR, TEST_FILE

SINGLE_COLUMNS = ["Unnamed: 0", "tag", "sequence", "pos", "exp"]
PAIR_COLUMNS = ["Unnamed: 0", "alt_tag", "ref_tag", "alt_sequence", "ref_sequence", "alt_pos", "ref_pos", "alt_exp", "ref_exp"]


@pytest.fixture(scope="module")
def marker(simulated_dir):
    return json.loads((simulated_dir / sim.MARKER).read_text())


@pytest.fixture(scope="module")
def tests_sim(simulated_dir):
    return load_test_set(simulated_dir)


@pytest.fixture(scope="module")
def train_sim(simulated_dir):
    return read_table(simulated_dir / sim.TRAIN_FILE)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_docstring_says_simulated():
    assert "NOT challenge data" in sim.__doc__
    assert "SIMULATED" in sim.simulate_dataset.__doc__


def test_deterministic_for_a_seed(tmp_path):
    a = _files(sim.simulate_dataset(tmp_path / "a", n_train=300, n_test=400, seed=3))
    b = _files(sim.simulate_dataset(tmp_path / "b", n_train=300, n_test=400, seed=3))
    assert a == b
    assert len(a) == 1 + 1 + 8 + 8 + 2 + 1  # train, test, csvs, category jsons, ground + sample, marker
    c = _files(sim.simulate_dataset(tmp_path / "c", n_train=300, n_test=400, seed=4))
    assert c[TEST_FILE] != a[TEST_FILE] and c[sim.TRAIN_FILE] != a[sim.TRAIN_FILE]
    # the test set depends on (seed, n_test) only
    d = _files(sim.simulate_dataset(tmp_path / "d", n_train=500, n_test=400, seed=3))
    assert d[TEST_FILE] == a[TEST_FILE] and d[sim.TRAIN_FILE] != a[sim.TRAIN_FILE]


def test_size_checks(tmp_path):
    with pytest.raises(ValueError, match="n_test must be at least 300"):
        sim.simulate_dataset(tmp_path, n_train=10, n_test=100)
    with pytest.raises(ValueError, match="n_train must be at least 1"):
        sim.simulate_dataset(tmp_path, n_train=0)


def test_official_layout_readable(simulated_dir, tests_sim, train_sim, marker):
    assert sim.is_simulated(simulated_dir) and tests_sim.simulated
    assert len(tests_sim) == marker["n_test"]
    assert (tests_sim.table.lengths == 110).all()
    assert list(tests_sim.categories) == list(CATEGORIES)
    assert tests_sim.snv_source.startswith("official")
    for cat, ids in tests_sim.categories.items():
        assert len(ids) > 0
        assert ids.ndim == (2 if cat in PAIR_CATEGORIES else 1)
    singles = np.concatenate([tests_sim.categories[c] for c in CATEGORIES if c not in PAIR_CATEGORIES])
    pairs = np.concatenate([tests_sim.categories[c].ravel() for c in PAIR_CATEGORIES])
    assert len(np.unique(singles)) == len(singles)
    assert len(np.union1d(singles, pairs)) == len(tests_sim)  # every test row is in some category
    seqs = tests_sim.table.sequences()
    assert all(s.startswith(encoding.FLANK_5P) and s.endswith(encoding.FLANK_3P) for s in seqs)
    assert len(set(seqs)) == len(seqs)  # no duplicated test sequence
    assert len(train_sim) == marker["n_train"]


def test_training_file_looks_like_the_real_one(train_sim):
    y = train_sim.y
    assert y.min() >= 0 and y.max() <= 17
    fractional = np.mean(y != np.round(y))
    assert 0.05 < fractional < 0.35  # mostly integers, some fractional averages
    assert 9.5 < y.mean() < 12.5 and 1.5 < y.std() < 3.0
    lengths = train_sim.lengths
    assert 0.75 < np.mean(lengths == 110) < 0.9
    assert lengths.min() >= 100 and lengths.max() <= 113
    with_n = (train_sim.codes == encoding.N).any(axis=1)
    assert 0 < with_n.sum() < 0.02 * len(train_sim)
    seqs = train_sim.sequences()
    assert all(s.startswith(encoding.FLANK_5P) and s.endswith(encoding.FLANK_3P) for s in seqs)


def test_csv_columns_and_json_styles_match_the_real_files(simulated_dir, tests_sim):
    seqs = tests_sim.table.sequences()
    for cat, (csv_name, json_name) in CATEGORIES.items():
        frame = pd.read_csv(simulated_dir / SUBSET_DIR / csv_name)
        if cat in PAIR_CATEGORIES:
            assert list(frame.columns) == PAIR_COLUMNS
            assert frame["alt_sequence"].tolist() == [seqs[i] for i in frame["alt_pos"]]
            assert frame["ref_sequence"].tolist() == [seqs[i] for i in frame["ref_pos"]]
            assert frame["alt_exp"].isna().all()
        else:
            assert list(frame.columns) == SINGLE_COLUMNS
            assert frame["sequence"].tolist() == [seqs[i] for i in frame["pos"]]
            assert frame["exp"].isna().all()
        raw = json.loads((simulated_dir / PUBLIC_DIR / json_name).read_text())
        key = next(iter(raw))
        if cat in PAIR_CATEGORIES:
            assert key.count(",") == 1 and len(raw[key]) == 2
        else:
            assert key.isdigit() and isinstance(raw[key], float)
        ids, truth = read_public_ids(simulated_dir / PUBLIC_DIR / json_name)
        np.testing.assert_allclose(tests_sim.table.y[ids], truth, atol=1e-6)
        members = tests_sim.categories[cat]
        assert len(ids) == max(1, round(sim.PUBLIC_FRACTION * len(members)))
        assert {tuple(np.atleast_1d(r)) for r in ids} <= {tuple(np.atleast_1d(r)) for r in members}
    ground_ids, ground_truth = read_public_ids(simulated_dir / PUBLIC_DIR / "ground.json")
    assert np.array_equal(np.sort(ground_ids), tests_sim.public_ids)
    np.testing.assert_allclose(tests_sim.table.y[ground_ids], ground_truth, atol=1e-6)
    sample = json.loads((simulated_dir / PUBLIC_DIR / "sample_submission.json").read_text())
    assert set(sample) == {str(i) for i in ground_ids}


def test_marker(simulated_dir, tests_sim, marker):
    assert marker["simulated"] is True and "not Random Promoter DREAM Challenge 2022 data" in marker["note"]
    assert isinstance(marker["seed"], int) and marker["version"] == sim.VERSION
    assert marker["model"]["interaction"] == list(sim.INTERACTION)
    assert [m["name"] for m in marker["motifs"]] == list(sim.MOTIF_NAMES)
    assert marker["motifs"][0]["consensus"] == "TTACCCGG"
    assert marker["categories"] == {c: len(ids) for c, ids in tests_sim.categories.items()}
    assert not sim.is_simulated(simulated_dir / SUBSET_DIR)


def _diff_columns(codes, pairs):
    return codes[pairs[:, 0]] != codes[pairs[:, 1]]


def test_snv_pairs_differ_at_exactly_one_position(tests_sim):
    diff = _diff_columns(tests_sim.table.codes, tests_sim.categories["SNVs"])
    assert (diff.sum(axis=1) == 1).all()
    cols = np.argmax(diff, axis=1)
    assert cols.min() >= sim.REGION_START and cols.max() < sim.REGION_START + sim.REGION_LENGTH


@pytest.mark.parametrize("cat", ["motif_perturbation", "motif_tiling"])
def test_motif_pairs_differ_only_inside_a_motif_window(tests_sim, cat):
    pairs = tests_sim.categories[cat]
    diff = _diff_columns(tests_sim.table.codes, pairs)
    assert diff.any(axis=1).all()
    first = np.argmax(diff, axis=1)
    last = diff.shape[1] - 1 - np.argmax(diff[:, ::-1], axis=1)
    assert (last - first < max(m.length for m in sim.MOTIFS)).all()
    assert first.min() >= sim.REGION_START and last.max() < sim.REGION_START + sim.REGION_LENGTH
    assert len(np.unique(pairs[:, 1])) < len(pairs) / 10  # a few references, many alternatives


def test_tiling_places_one_motif_at_successive_positions(tests_sim, simulated_dir):
    frame = pd.read_csv(simulated_dir / SUBSET_DIR / "motif_tiling_seqs.csv")
    for (ref, motif), group in frame.groupby(["ref_tag", frame["alt_tag"].str.split("_").str[1]]):
        positions = group["alt_tag"].str.split("_").str[2].astype(int).to_numpy()
        steps = np.diff(np.sort(positions))
        assert len(positions) > 1 and (steps == steps[0]).all()
        length = sim._MOTIF_BY_NAME[motif].length
        pieces = {a[sim.REGION_START + p : sim.REGION_START + p + length] for a, p in zip(group["alt_sequence"], positions)}
        assert len(pieces) == 1  # the same instance at every position


def test_category_truth_order(tests_sim):
    y = tests_sim.table.y
    mean = {c: y[ids].mean() for c, ids in tests_sim.categories.items() if ids.ndim == 1}
    assert mean["high"] > mean["random"] + 0.5 > mean["low"] + 1.0
    assert y[tests_sim.categories["high"]].min() > np.median(y[tests_sim.categories["random"]])
    assert y.min() > -sim.MAUDE_LIMIT and y.max() < sim.MAUDE_LIMIT


def _insert(codes, name, col):
    out = codes.copy()
    motif = sim._MOTIF_BY_NAME[name]
    inst = sim._instantiate(motif, np.random.default_rng(0), 1)[0]
    out[:, col : col + motif.length] = inst
    return out


@pytest.mark.parametrize("name", sim.MOTIF_NAMES)
def test_planted_motif_effect_direction(name):
    rng = np.random.default_rng(11)
    background = sim._constructs(rng, 400)
    lengths = np.full(400, 110)
    before = sim.latent_activity(background, lengths)
    after = sim.latent_activity(_insert(background, name, 60), lengths)
    sign = np.sign(sim._MOTIF_BY_NAME[name].effect)
    change = sign * (after - before)
    assert np.mean(change > 0) > 0.8
    assert np.mean(change) > 0.3 * abs(sim._MOTIF_BY_NAME[name].effect)


def test_planted_motifs_show_in_the_training_targets(train_sim):
    occ = sim.motif_occupancy(train_sim.codes, train_sim.lengths)
    y = train_sim.y
    for j, motif in enumerate(sim.MOTIFS):
        has = occ[:, j] > 0
        if has.sum() < 50:
            continue
        gap = y[has].mean() - y[~has].mean()
        assert np.sign(gap) == np.sign(motif.effect), motif.name
    r = np.corrcoef(sim.latent_activity(train_sim.codes, train_sim.lengths), y)[0, 1]
    assert r > 0.7


def test_position_and_strand_weights_are_as_documented():
    motif = sim._MOTIF_BY_NAME["TATA"]
    j = sim.MOTIF_NAMES.index("TATA")
    plain = encoding.FLANK_5P + "C" * 80 + encoding.FLANK_3P  # no TATA-like window anywhere
    codes, lengths = encoding.encode([plain] * 4)
    assert (sim.motif_occupancy(codes, lengths)[:, j] == 0).all()
    site, site_rc = "TATAAAAG", "CTTTTATA"
    for row, (seq, p) in enumerate([(site, 19), (site, 89), (site, 53), (site_rc, 53)]):
        codes[row, p : p + 8] = encoding.encode([seq])[0][0]
    occ = sim.motif_occupancy(codes, lengths)[:, j]

    def weight(p):  # documented position weight of a window starting at column p
        x = (p + 4 - 17) / 80
        return 1 + motif.position_slope * (x - 0.5)

    np.testing.assert_allclose(occ, [weight(19), weight(89), weight(53), motif.rc_weight * weight(53)])
    assert occ[1] > occ[0]  # TATA counts more near the 3' end (position_slope > 0)


_COMPLEMENT = str.maketrans("ACGTRYSWKMBDHVN", "TGCAYRSWMKVHDBN")


def _occupancy_by_hand(seq: str) -> list[float]:
    """Direct transcription of the module docstring's definition, one window at a time."""
    out = []
    n = len(seq)
    for motif in sim.MOTIFS:
        total = 0.0
        for consensus, strand_weight in ((motif.consensus, 1.0), (motif.consensus.translate(_COMPLEMENT)[::-1], motif.rc_weight)):
            length = len(consensus)
            for p in range(n - length + 1):
                centre = p + length / 2
                if not 17 <= centre <= n - 13:
                    continue
                miss = sum(seq[p + k] not in sim._IUPAC[consensus[k]] for k in range(length))
                if miss == 0:
                    hit = 1.0
                elif miss == 1 and motif.max_mismatches >= 1:
                    hit = motif.mismatch_weight
                else:
                    continue
                x = min(max((centre - 17) / (n - 30), 0.0), 1.0)
                total += strand_weight * hit * (1 + motif.position_slope * (x - 0.5))
        out.append(total)
    return out


def test_motif_occupancy_matches_the_documented_definition():
    rng = np.random.default_rng(2)
    codes = sim._constructs(rng, 30, (0.3, 0.2, 0.2, 0.3))
    sim._plant(codes, rng, rng.integers(-1, len(sim.MOTIFS), 30))
    seqs = encoding.decode(codes)
    seqs[0] = seqs[0][:60] + "NNNN" + seqs[0][64:]
    seqs[1] = seqs[1][:95] + seqs[1][100:]  # a shorter one
    codes, lengths = encoding.encode(seqs)
    got = sim.motif_occupancy(codes, lengths)
    want = np.array([_occupancy_by_hand(s) for s in seqs])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert (want > 0).sum() > 30


def test_default_data_dir_uses_cache(monkeypatch, simulated_dir):
    monkeypatch.setenv("HARNESS_CACHE", str(simulated_dir.parent))
    stamp = (simulated_dir / sim.MARKER).stat().st_mtime_ns
    assert sim.default_data_dir() == simulated_dir
    assert (simulated_dir / sim.MARKER).stat().st_mtime_ns == stamp  # not regenerated


def test_default_data_dir_generates_atomically(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sim, "simulate_dataset", functools.partial(sim.simulate_dataset, n_train=200, n_test=300))
    target = sim.default_data_dir()
    assert target == tmp_path / "cache" / sim.VERSION
    assert sim.is_simulated(target) and len(load_test_set(target)) == 300
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [sim.VERSION]  # no temp dir left
    assert sim.default_data_dir() == target


def test_default_data_dir_refuses_foreign_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    (tmp_path / sim.VERSION).mkdir()
    (tmp_path / sim.VERSION / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="holds no SIMULATED.json"):
        sim.default_data_dir()
    assert (tmp_path / sim.VERSION / "mine.txt").read_text() == "keep"


def test_cache_root_fallbacks(monkeypatch, tmp_path):
    monkeypatch.delenv("HARNESS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert sim.cache_root() == tmp_path / "dream-harness"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sim.cache_root() == tmp_path / "home" / ".cache" / "dream-harness"
