"""Resume checkpoints are never trusted (issue 13, security): a planted, forged, truncated or
malformed ``last.ckpt`` is not executed and not resumed; the fit starts over and gives exactly the
weights of a fit that never saw it. Checkpoints the trainer writes load with
``torch.load(weights_only=True)`` and carry the Python/NumPy generator states."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness import training as tt
from harness.integrity import bytes_digest, file_digest

pytestmark = pytest.mark.usefixtures("torch_single_thread")


# ----------------------------------------------------------------------------------------------
# a planted pickle: unpickling it (torch.load(weights_only=False)) writes a marker file
# ----------------------------------------------------------------------------------------------
def plant_marker(path: str) -> dict:
    Path(path).write_text("code from a run directory was executed\n")
    return {}


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return plant_marker, (self.marker,)


def write_forged_sidecar(checkpoint: Path) -> None:
    """What an attacker who knows the scheme writes: a sidecar that matches the planted file."""
    data = checkpoint.read_bytes()
    (checkpoint.parent / tt.CHECKPOINT_DIGEST_NAME).write_text(json.dumps(
        {"file": checkpoint.name, "format": 3, "bytes": len(data), "xxh3_128": bytes_digest(data)}))


# ----------------------------------------------------------------------------------------------
# a tiny trainer
# ----------------------------------------------------------------------------------------------
def _data(n: int = 160, length: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, size=(n, length)).astype(np.uint8)
    y = (codes == 2).sum(1).astype(np.float32) + rng.normal(0, 0.5, n).astype(np.float32)
    return codes, y


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 5, padding=2)
        self.bn = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(6, 1)

    def forward(self, x):
        return self.head(self.drop(torch.relu(self.bn(self.conv(x)))).mean(-1))[:, 0]


def _trainer(checkpoint_dir, *, model_seed: int = 1, callbacks=(), transform=None, max_epochs: int = 3):
    torch.manual_seed(model_seed)
    cfg = tt.TrainConfig(batch_size=32, max_epochs=max_epochs, patience=5, progress=False, seed=2)
    return tt.SeqTrainer(TinyNet(), nn.L1Loss(), lambda m: torch.optim.AdamW(m.parameters(), lr=1e-2), config=cfg,
                      scheduler_factory=lambda o, s, e: torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0),
                      device="cpu", checkpoint_dir=checkpoint_dir, callbacks=callbacks, transform=transform)


def _fit(trainer):
    x, y = _data()
    xv, yv = _data(48, seed=1)
    return trainer.fit(x, y, xv, yv)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A fit that never met a checkpoint: its weights and history."""
    trainer = _trainer(tmp_path_factory.mktemp("reference") / "ck")
    hist = _fit(trainer)
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}, hist


def _assert_fresh(trainer, hist, reference):
    """The fit started over (epochs 1..3) and ended with the reference's weights and history."""
    ref_state, ref_hist = reference
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in ref_hist]
    state = trainer.model.state_dict()
    assert state.keys() == ref_state.keys() and all(torch.equal(state[k], ref_state[k]) for k in state)


class _Interrupt(Exception):
    pass


def _interrupted_checkpoint(ckdir: Path) -> None:
    """Leave the checkpoint of a fit interrupted after epoch 2 in ``ckdir``."""

    def stop(rec):
        if rec["epoch"] == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        _fit(_trainer(ckdir, callbacks=[stop]))


# ----------------------------------------------------------------------------------------------
# the trainer
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sidecar", ["none", "forged"])
def test_planted_pickle_checkpoint_is_not_executed_and_the_fit_starts_over(tmp_path, reference, sidecar):
    ckdir, marker = tmp_path / "checkpoints", tmp_path / "marker.txt"
    ckdir.mkdir()
    planted = ckdir / tt.CHECKPOINT_NAME
    torch.save({"state_dict": {}, "harness": Payload(marker)}, planted)
    if sidecar == "forged":
        write_forged_sidecar(planted)
    trainer = _trainer(ckdir, model_seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = _fit(trainer)
    assert not marker.exists(), "the planted checkpoint was unpickled: its code ran"
    said = [str(w.message) for w in caught if issubclass(w.category, tt.CheckpointWarning)]
    assert len(said) == 1 and said[0].startswith(f"{planted}: ")
    assert said[0].endswith("not resumed, the fit starts from scratch")
    _assert_fresh(trainer, hist, reference)
    # the planted file is replaced by the trainer's own checkpoint, which loads safely and verifies
    blob = torch.load(planted, weights_only=True)
    assert blob["harness"]["history"][-1]["epoch"] == 3
    sidecar_record = json.loads((ckdir / tt.CHECKPOINT_DIGEST_NAME).read_text())
    assert sidecar_record["xxh3_128"] == file_digest(planted) and sidecar_record["bytes"] == planted.stat().st_size


@pytest.mark.parametrize("damage", ["truncated", "truncated+forged sidecar", "flipped byte", "no sidecar",
                                    "bad sidecar", "symlink", "linked directory"])
def test_damaged_checkpoint_restarts_cleanly(tmp_path, reference, damage):
    ckdir = tmp_path / "checkpoints"
    _interrupted_checkpoint(ckdir)
    path, sidecar = ckdir / tt.CHECKPOINT_NAME, ckdir / tt.CHECKPOINT_DIGEST_NAME
    data = path.read_bytes()
    if damage.startswith("truncated"):
        path.write_bytes(data[: len(data) // 2])
        if "forged" in damage:
            write_forged_sidecar(path)
    elif damage == "flipped byte":
        path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "no sidecar":
        sidecar.unlink()
    elif damage == "bad sidecar":
        sidecar.write_text("{not json")
    elif damage == "symlink":  # a link to a file elsewhere is not followed
        outside = tmp_path / "elsewhere.ckpt"
        path.rename(outside)
        path.symlink_to(outside)
    else:  # the checkpoint directory itself links elsewhere
        outside = tmp_path / "elsewhere"
        ckdir.rename(outside)
        ckdir.symlink_to(outside)
    why = {"truncated": "truncated", "truncated+forged sidecar": "does not load as tensors",
           "flipped byte": "digest mismatch",
           "no sidecar": "cannot be verified, its digest record last.ckpt.json is missing",
           "bad sidecar": "unreadable digest record", "symlink": "links are not followed",
           "linked directory": "checkpoint directory is a symbolic link"}[damage]
    trainer = _trainer(ckdir, model_seed=1)
    with pytest.warns(tt.CheckpointWarning, match=why):
        hist = _fit(trainer)
    _assert_fresh(trainer, hist, reference)


def test_verified_checkpoint_that_does_not_fit_the_model_is_rolled_back(tmp_path, reference):
    """A checkpoint that verifies and loads but whose weights do not fit: nothing of it stays in
    the model or optimiser, and the fit equals one that never saw it."""
    ckdir = tmp_path / "checkpoints"
    _interrupted_checkpoint(ckdir)
    path = ckdir / tt.CHECKPOINT_NAME
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["model.head.weight"] = torch.zeros(1, 7)  # wrong shape: load_state_dict fails after conv/bn loaded
    torch.save(blob, path)
    write_forged_sidecar(path)
    trainer = _trainer(ckdir, model_seed=1)
    with pytest.warns(tt.CheckpointWarning, match="not a resumable state for this model"):
        hist = _fit(trainer)
    _assert_fresh(trainer, hist, reference)


def test_checkpoint_is_weights_only_and_resume_continues_python_and_numpy_generators(tmp_path):
    """A transform that draws from NumPy's and Python's global generators: the resumed fit equals
    the uninterrupted one only if the checkpoint restored both."""

    def noisy(x, y, training):
        if training and y is not None:
            y = y + torch.from_numpy(np.random.normal(0, 0.1, len(y)).astype(np.float32)) * random.random()
        return tt.one_hot_codes(x), y

    def seeded_fit(ckdir, callbacks=(), seed=0):
        np.random.seed(seed)
        random.seed(seed)
        trainer = _trainer(ckdir, callbacks=callbacks, transform=noisy, max_epochs=4)
        return trainer, _fit(trainer)

    full, full_hist = seeded_fit(tmp_path / "full")

    def stop(rec):
        if rec["epoch"] == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        seeded_fit(tmp_path / "cut", [stop])
    blob = torch.load(tmp_path / "cut" / tt.CHECKPOINT_NAME, weights_only=True)
    assert blob["harness"]["format"] == 3 and blob["harness"]["rng"]["numpy"]["keys"].dtype == torch.int64
    assert blob["harness"]["rng"]["python"]["words"].shape == (625,)
    resumed, hist = seeded_fit(tmp_path / "cut", seed=99)  # a new process: other generator states
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in full_hist]
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(), full.model.state_dict().values()))


def test_state_that_would_need_pickle_is_refused_when_written(tmp_path):
    def add_array(rec):
        rec["per_row"] = np.zeros(3)  # an ndarray cannot be read back with weights_only=True

    with pytest.raises(TypeError, match=r"checkpoint\['harness'\]\['history'\]\[0\]\['per_row'\]: numpy.ndarray"):
        _fit(_trainer(tmp_path / "ck", callbacks=[add_array]))
    # NumPy scalars are plain values once converted
    assert tt._plain({"a": np.float32(1.5), "b": [np.int64(2)]}) == {"a": 1.5, "b": [2]}
    assert type(tt._plain(np.float64(0.25))) is float


# ----------------------------------------------------------------------------------------------
# a plug-in, as ``harness run`` drives it (the report: camformers)
# ----------------------------------------------------------------------------------------------
def test_camformers_fold_with_planted_checkpoint_retrains(tmp_path):
    from harness.data.table import SeqTable
    from submissions.camformers import Camformers, CamformersConfig

    rng = np.random.default_rng(0)
    table = SeqTable(codes=rng.integers(0, 4, (200, 110)).astype(np.uint8), lengths=np.full(200, 110, np.int32),
                     y=rng.uniform(0, 17, 200).astype(np.float32))
    cfg = CamformersConfig(channels=4, dense=8, batch_size=64, max_epochs=1, progress=False)
    clean = Camformers(cfg, seed=0, device="cpu", work_dir=tmp_path / "clean")
    clean.fit(table)

    work, marker = tmp_path / "fold0" / "work", tmp_path / "marker.txt"
    (work / "checkpoints").mkdir(parents=True)
    planted = work / "checkpoints" / tt.CHECKPOINT_NAME
    torch.save({"model": Payload(marker)}, planted)
    write_forged_sidecar(planted)
    method = Camformers(cfg, seed=0, device="cpu", work_dir=work)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        method.fit(table)
    assert not marker.exists(), "the planted checkpoint was unpickled: its code ran"
    assert [str(w.message).split(": ")[0] for w in caught if issubclass(w.category, tt.CheckpointWarning)] == [
        str(planted)]
    np.testing.assert_array_equal(method.predict(table), clean.predict(table))


# ----------------------------------------------------------------------------------------------
# saved models of the other frameworks
# ----------------------------------------------------------------------------------------------
def _random_table(n: int = 200, seed: int = 0):
    from harness.data.table import SeqTable

    rng = np.random.default_rng(seed)
    return SeqTable(codes=rng.integers(0, 4, (n, 110)).astype(np.uint8), lengths=np.full(n, 110, np.int32),
                    y=rng.uniform(0, 17, n).astype(np.float32))


def test_kmer_ridge_loads_no_pickle(tmp_path):
    """kmer-ridge saves arrays + JSON; a pickled ``model.joblib`` (older harness, or planted) is
    refused without being unpickled, and arrays that do not fit the config are named."""
    from baselines.kmer import KmerRidge, KmerRidgeConfig

    table = _random_table()
    method = KmerRidge(KmerRidgeConfig(k_max=3), seed=0)
    method.fit(table)
    saved, marker = tmp_path / "m", tmp_path / "marker.txt"
    method.save(saved)
    assert sorted(p.name for p in saved.iterdir()) == ["fit_info.json", "method.json", "model.npz"]
    np.testing.assert_array_equal(KmerRidge.load(saved).predict(table), method.predict(table))

    with np.load(saved / "model.npz", allow_pickle=False) as npz:
        arrays = dict(npz)
    np.savez(saved / "model.npz", **{**arrays, "ridge_coef": arrays["ridge_coef"][:-1]})
    with pytest.raises(ValueError, match=r"model.npz: ridge_coef is float\w* \(\d+,\), expected floats of shape"):
        KmerRidge.load(saved)
    np.savez(saved / "model.npz", **{**arrays, "ridge_coef": np.array([Payload(marker)] * len(arrays["ridge_coef"]))},
             allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        KmerRidge.load(saved)
    assert not marker.exists()

    import pickle

    (saved / "model.npz").unlink()
    (saved / "model.joblib").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError, match="model.joblib: a kmer-ridge model pickled by an older harness"):
        KmerRidge.load(saved)
    assert not marker.exists()


def test_kircherlab_load_reads_weights_only(tmp_path):
    """kircherlab rebuilds its network from the config and reads only the weights from
    ``model.keras``: an archive of another architecture (here with a Lambda layer whose code would
    write a marker) is refused with a clear error, a link is not followed."""
    pytest.importorskip("tensorflow")
    from submissions.kircherlab import KircherLab, KircherLabConfig, import_tensorflow

    tf = import_tensorflow()
    table = _random_table(20)
    method = KircherLab(KircherLabConfig(progress=False), seed=0, device="cpu")
    method.model = method.build_model()  # untrained weights are enough for a round trip
    saved, marker = tmp_path / "m", tmp_path / "marker.txt"
    method.save(saved)
    np.testing.assert_array_equal(KircherLab.load(saved, device="cpu").predict(table), method.predict(table))

    inputs = tf.keras.Input(shape=(110, 4))
    # no closure (Keras serialises the function's code): the marker path is a literal in it
    writes_marker = eval(f"lambda x: x * float(__import__('pathlib').Path({str(marker)!r}).write_text('ran'))")
    out = tf.keras.layers.Lambda(writes_marker)(inputs)
    tf.keras.Model(inputs, tf.keras.layers.Dense(18)(tf.keras.layers.Flatten()(out))).save(tmp_path / "other.keras")
    marker.unlink(missing_ok=True)  # building the model above ran the lambda once
    (saved / "model.keras").write_bytes((tmp_path / "other.keras").read_bytes())
    with pytest.raises(ValueError, match=r"model.keras: weights do not fit the 110-nt kircherlab network"):
        KircherLab.load(saved, device="cpu")
    assert not marker.exists()
    (saved / "model.keras").unlink()
    (saved / "model.keras").symlink_to(tmp_path / "other.keras")
    with pytest.raises(FileNotFoundError, match="links are not followed"):
        KircherLab.load(saved, device="cpu")
