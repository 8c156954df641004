"""Bad inputs to data, models and dynamics: each case asserts the exception type, that the message names the
argument (or the file), and that no file under a watched folder changed (sha256 of every file before and after)."""
import json, pickle, shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from scoreextrap.data import TensorImageDataset, add_label_noise, load_dataset, make_loader, synthetic_images
from scoreextrap.dynamics import Dynamics, DynamicsRecorder
from scoreextrap.train import evaluate, fit
from scoreextrap.models import SmallCNN, embed

IMGS = torch.randint(0, 256, (4, 8, 8), dtype=torch.uint8)
TINY = dict(n=32, n_classes=3, img_size=8)  # a synthetic set that trains in well under a second


def _tiny(): return load_dataset("synthetic", **TINY)
def _rec(): return DynamicsRecorder(4, 3)
def _dyn(): return Dynamics(p_true=np.full((3, 2), .5), correct=np.ones((3, 2), bool), labels=[0, 1, 2])

def _save(w, name, **arrays):
    np.savez(w / name, **arrays); return w / name

def _cut(w):
    "A Dynamics file that stopped half-way."
    _dyn().save(w / "whole.npz"); b = (w / "whole.npz").read_bytes()
    (w / "cut.npz").write_bytes(b[:len(b) // 2]); return w / "cut.npz"

def _text(w):
    (w / "notes.npz").write_text("these are notes, not arrays\n"); return w / "notes.npz"

def _npy(w):
    np.save(w / "one.npy", np.zeros(3)); return w / "one.npy"

# Each case: (id, setup(watch) -> call, exception type, words the message must contain).
# `setup` prepares files *before* the folder is hashed; the returned call must change nothing.
CASES = [
    # data
    ("synthetic n=-5", lambda w: lambda: load_dataset("synthetic", n=-5), ValueError, ["n must be an int >= 1"]),
    ("synthetic n_classes=1", lambda w: lambda: load_dataset("synthetic", n_classes=1), ValueError, ["n_classes"]),
    ("synthetic unknown option", lambda w: lambda: load_dataset("synthetic", size=8), ValueError, ["size"]),
    ("synthetic img_size=0", lambda w: lambda: synthetic_images(img_size=0), ValueError, ["img_size"]),
    ("synthetic noise str", lambda w: lambda: synthetic_images(noise="0.3"), ValueError, ["noise"]),
    ("synthetic seed float", lambda w: lambda: synthetic_images(seed=1.5), ValueError, ["seed"]),
    ("label noise fractional targets", lambda w: lambda: add_label_noise([0, 1.5, 2], 0.5, 3), ValueError, ["targets"]),
    ("label noise 2-D targets", lambda w: lambda: add_label_noise(np.zeros((4, 2), int), 0.5, 3), ValueError, ["targets"]),
    ("label noise NaN target", lambda w: lambda: add_label_noise([0, np.nan, 2], 0.5, 3), ValueError, ["targets"]),
    ("label noise frac bool", lambda w: lambda: add_label_noise([0, 1, 2], True, 3), ValueError, ["frac"]),
    ("label noise frac NaN", lambda w: lambda: add_label_noise([0, 1, 2], float("nan"), 3), ValueError, ["frac"]),
    ("label noise num_classes float", lambda w: lambda: add_label_noise([0, 1, 2], 0.5, 3.0), ValueError, ["num_classes"]),
    ("loader batch_size float", lambda w: lambda: make_loader(_tiny(), batch_size=2.5), ValueError, ["batch_size"]),
    ("loader seed str", lambda w: lambda: make_loader(_tiny(), seed="1"), ValueError, ["seed"]),
    ("images fractional targets", lambda w: lambda: TensorImageDataset(IMGS, [0, 1.7, 2, 0]), ValueError, ["targets"]),
    ("images targets wrong length", lambda w: lambda: TensorImageDataset(IMGS, [0, 1]), ValueError, ["targets"]),
    ("images float pixels", lambda w: lambda: TensorImageDataset(IMGS.float(), [0, 1, 2, 0]), ValueError, ["images", "uint8"]),
    # models
    ("cnn n_classes=1", lambda w: lambda: SmallCNN(n_classes=1), ValueError, ["n_classes"]),
    ("cnn width float", lambda w: lambda: SmallCNN(width=8.0), ValueError, ["width"]),
    ("embed batch_size=0", lambda w: lambda: embed(SmallCNN(), _tiny(), batch_size=0), ValueError, ["batch_size"]),
    # Dynamics
    ("labels fractional/NaN", lambda w: lambda: Dynamics(p_true=np.zeros((3, 2)), labels=[0.5, 1.7, np.nan]), ValueError, ["labels"]),
    ("labels bool", lambda w: lambda: Dynamics(p_true=np.zeros((2, 2)), labels=[True, False]), ValueError, ["labels"]),
    ("object field", lambda w: lambda: Dynamics(p_true=np.array([[None, 1]], dtype=object)), ValueError, ["p_true"]),
    ("object field never saved", lambda w: lambda: Dynamics(loss=np.array([[{"a": 1}]], dtype=object)).save(w / "d.npz"),
     ValueError, ["loss"]),
    ("complex field", lambda w: lambda: Dynamics(margin=np.ones((2, 2)) * 1j), ValueError, ["margin", "real"]),
    ("string probs", lambda w: lambda: Dynamics(p_true=np.zeros((2, 2)), probs=np.zeros((2, 2, 3), dtype="U1")), ValueError, ["probs"]),
    ("correct 0.5", lambda w: lambda: Dynamics(correct=np.array([[1.0, 0.5]])), ValueError, ["correct"]),
    ("correct 2 (int)", lambda w: lambda: Dynamics(correct=np.array([[1, 2]])), ValueError, ["correct"]),
    ("empty fields", lambda w: lambda: Dynamics(p_true=np.zeros((0, 3))), ValueError, ["fields"]),
    ("first(T) float", lambda w: lambda: _dyn().first(1.0), ValueError, ["T"]),
    ("save to a folder", lambda w: lambda: _dyn().save(w), ValueError, ["path", "folder"]),
    ("load missing file", lambda w: lambda: Dynamics.load(w / "missing.npz"), FileNotFoundError, ["missing.npz"]),
    ("load truncated", lambda w: (lambda p: lambda: Dynamics.load(p))(_cut(w)), ValueError, ["cut.npz", "damaged", "Dynamics.save"]),
    ("load text file", lambda w: (lambda p: lambda: Dynamics.load(p))(_text(w)), ValueError, ["notes.npz", "damaged"]),
    ("load a .npy", lambda w: (lambda p: lambda: Dynamics.load(p))(_npy(w)), ValueError, ["one.npy", "damaged"]),
    ("load string field", lambda w: (lambda p: lambda: Dynamics.load(p))(_save(w, "s.npz", p_true=np.array([["a", "b"]]))),
     ValueError, ["s.npz", "p_true"]),
    ("load string labels", lambda w: (lambda p: lambda: Dynamics.load(p))(
        _save(w, "l.npz", p_true=np.zeros((2, 2)), labels=np.array(["cat", "dog"]))), ValueError, ["l.npz", "labels"]),
    # DynamicsRecorder
    ("recorder n_samples float", lambda w: lambda: DynamicsRecorder(4.0, 3), ValueError, ["n_samples"]),
    ("recorder n_classes=1", lambda w: lambda: DynamicsRecorder(4, 1), ValueError, ["n_classes"]),
    ("recorder int dtype", lambda w: lambda: DynamicsRecorder(4, 3, dtype=np.int8), ValueError, ["dtype"]),
    ("recorder fractional labels", lambda w: lambda: DynamicsRecorder(3, 3, labels=[0, 1.5, 2]), ValueError, ["labels"]),
    ("update target == n_classes", lambda w: lambda: _rec().update(torch.tensor([0]), torch.randn(1, 3), torch.tensor([3])),
     ValueError, ["targets", "n_classes=3"]),
    ("update negative target", lambda w: lambda: _rec().update(torch.tensor([0, 1]), torch.randn(2, 3), torch.tensor([0, -1])),
     ValueError, ["targets"]),
    ("update float target", lambda w: lambda: _rec().update(torch.tensor([0]), torch.randn(1, 3), torch.tensor([1.0])),
     ValueError, ["targets", "integer"]),
    ("update float idx", lambda w: lambda: _rec().update(torch.tensor([0.0]), torch.randn(1, 3), torch.tensor([1])),
     ValueError, ["idx"]),
    ("state for other n_samples", lambda w: lambda: DynamicsRecorder(5, 3).load_state_dict(_one_epoch().state_dict()),
     ValueError, ["n_samples=5"]),
    ("state without probs", lambda w: lambda: DynamicsRecorder(4, 3, keep_probs=True).load_state_dict(_one_epoch().state_dict()),
     ValueError, ["probs"]),
    # fit and evaluate arguments
    ("fit epochs=0", lambda w: lambda: fit(SmallCNN(), _tiny(), epochs=0, checkpoint_dir=w / "ck"), ValueError, ["epochs"]),
    ("fit batch_size=0", lambda w: lambda: fit(SmallCNN(), _tiny(), epochs=1, batch_size=0, checkpoint_dir=w / "ck"), ValueError, ["batch_size"]),
    ("fit lr str", lambda w: lambda: fit(SmallCNN(), _tiny(), epochs=1, lr="0.1", checkpoint_dir=w / "ck"), ValueError, ["lr"]),
    ("fit lr=0", lambda w: lambda: fit(SmallCNN(), _tiny(), epochs=1, lr=0), ValueError, ["lr"]),
    ("fit momentum 1.5", lambda w: lambda: fit(SmallCNN(), _tiny(), epochs=1, momentum=1.5), ValueError, ["momentum"]),
    ("fit weight_decay<0", lambda w: lambda: fit(SmallCNN(), _tiny(), epochs=1, weight_decay=-1e-4), ValueError, ["weight_decay"]),
    ("fit seed -1", lambda w: lambda: fit(SmallCNN(), _tiny(), epochs=1, seed=-1, checkpoint_dir=w / "ck"), ValueError, ["seed"]),
    ("fit schedule unknown", lambda w: lambda: fit(SmallCNN(), _tiny(), epochs=1, schedule="linear", checkpoint_dir=w / "ck"),
     ValueError, ["schedule"]),
    ("fit recorder not a recorder", lambda w: lambda: fit(SmallCNN(), _tiny(), epochs=1, recorder="yes"), ValueError, ["recorder"]),
    ("fit checkpoint_dir is a file", lambda w: lambda: fit(SmallCNN(), _tiny(), epochs=1, checkpoint_dir=w / "existing.npz"),
     ValueError, ["checkpoint_dir"]),
    ("evaluate batch_size float", lambda w: lambda: evaluate(SmallCNN(), _tiny(), batch_size=8.0), ValueError, ["batch_size"]),
]


def _one_epoch():
    rec = DynamicsRecorder(4, 3)
    rec.update(torch.arange(4), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])); rec.end_epoch()
    return rec


@pytest.mark.parametrize("setup, exc, words", [pytest.param(s, e, n, id=i) for i, s, e, n in CASES])
def test_refused(setup, exc, words, tmp_path, refused):
    (tmp_path / "existing.npz").write_bytes(b"precious")
    call = setup(tmp_path)
    refused(call, exc, words, tmp_path)


# --- checkpoints: made once per module, copied into each test's watched folder ---------------------------------

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    "Two real checkpoints of 2 epochs on TINY: one written without a recorder, one with."
    root = tmp_path_factory.mktemp("ck")
    ds = _tiny()
    fit(SmallCNN(), ds, epochs=2, batch_size=16, checkpoint_dir=root / "plain", device="cpu", progress=False)
    fit(SmallCNN(), ds, epochs=2, batch_size=16, recorder=DynamicsRecorder(len(ds), 10), checkpoint_dir=root / "recorded",
        device="cpu", progress=False)
    return root


def _resume(ckdir, recorder=True):
    ds = _tiny()
    return fit(SmallCNN(), ds, epochs=2, batch_size=16, recorder=DynamicsRecorder(len(ds), 10) if recorder else None,
               checkpoint_dir=ckdir, device="cpu", progress=False)


def _garbage(path): path.write_bytes(b"\x00garbage, not a checkpoint\xff" * 10)
def _truncate(path): b = path.read_bytes(); path.write_bytes(b[:len(b) // 2])
def _empty(path): path.write_bytes(b"")
def _foreign(path): torch.save({"model": {"w": torch.zeros(2)}}, path)  # someone else's torch file: no 'config'
def _a_list(path): torch.save([torch.zeros(2)], path)
def _pickled(path): path.write_bytes(pickle.dumps({"config": "{}", "obj": object}))
def _bad_json(path):
    st = torch.load(path, weights_only=True); st["config"] = "{not json"; torch.save(st, path)

def _fewer_recorded_epochs(path):
    "A recorder state with 1 epoch beside a history of 2."
    st = torch.load(path, weights_only=True)
    st["recorder"] = {k: v[:, :1] if k.startswith("col_") else v for k, v in st["recorder"].items()}
    torch.save(st, path)

CHECKPOINT_CASES = [  # (id, which checkpoint, damage, resume with a recorder, words)
    ("no recorder state", "plain", None, True, ["checkpoint.pt", "holds no recorder state", "recorder=None"]),
    ("recorder epochs != history", "recorded", _fewer_recorded_epochs, True, ["checkpoint.pt", "1 recorded epochs", "2 trained epochs"]),
    ("garbage bytes", "plain", _garbage, False, ["checkpoint.pt", "not a scoreextrap checkpoint", "delete it"]),
    ("truncated", "recorded", _truncate, True, ["checkpoint.pt", "not a scoreextrap checkpoint", "checkpoint_dir"]),
    ("empty file", "plain", _empty, False, ["checkpoint.pt", "not a scoreextrap checkpoint"]),
    ("foreign torch file", "plain", _foreign, False, ["checkpoint.pt", "not a scoreextrap checkpoint", "config"]),
    ("not a dict", "plain", _a_list, False, ["checkpoint.pt", "not a scoreextrap checkpoint", "list"]),
    ("plain pickle", "plain", _pickled, False, ["checkpoint.pt", "not a scoreextrap checkpoint"]),
    ("config not JSON", "plain", _bad_json, False, ["checkpoint.pt", "not a scoreextrap checkpoint", "JSON"]),
]


@pytest.mark.parametrize("which, damage, with_rec, words", [pytest.param(*c[1:], id=c[0]) for c in CHECKPOINT_CASES])
def test_refused_checkpoints(which, damage, with_rec, words, checkpoints, tmp_path, refused):
    "A checkpoint that cannot continue the run is refused, names the file, says what to do, and is left byte-identical."
    ck = tmp_path / "ck"; shutil.copytree(checkpoints / which, ck)
    if damage is not None: damage(ck / "checkpoint.pt")
    msg = refused(lambda: _resume(ck, with_rec), ValueError, words, tmp_path)
    assert "weights_only" not in msg, "never suggest weights_only=False"


def test_resume_from_intact_checkpoints_still_works(checkpoints, tmp_path):
    "The refusals above are not blanket: intact checkpoints resume (nothing to train: all 2 epochs are done)."
    for which, with_rec in (("recorded", True), ("plain", False), ("recorded", False)):
        shutil.copytree(checkpoints / which, tmp_path / which, dirs_exist_ok=True)
        assert len(_resume(tmp_path / which, with_rec)) == 2


# --- properties ---------------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, float("nan"), 0.5, 2.0, -1.0, 1e-9]), min_size=1, max_size=8))
def test_correct_accepts_exactly_zero_one_nan(values):
    "Dynamics(correct=float array) accepts exactly the arrays whose values are all 0, 1 or NaN."
    c = np.array([values])
    ok = all(v in (0.0, 1.0) or np.isnan(v) for v in values)
    if ok: assert np.array_equal(Dynamics(correct=c).correct, c, equal_nan=True)
    else:
        with pytest.raises(ValueError, match="correct"): Dynamics(correct=c)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-3, 6), min_size=1, max_size=6))
def test_update_accepts_exactly_targets_in_range(targets):
    "update accepts a batch iff every target lies in [0, n_classes); a refused batch records nothing."
    rec, n_classes = DynamicsRecorder(6, 4), 4
    y = torch.tensor(targets)
    idx, logits = torch.arange(len(targets)), torch.randn(len(targets), n_classes)
    if all(0 <= t < n_classes for t in targets):
        rec.update(idx, logits, y); assert rec._seen.sum().item() == len(targets)
    else:
        with pytest.raises(ValueError, match="targets"): rec.update(idx, logits, y)
        assert rec._cur is None  # nothing started, nothing stored


def test_unseen_samples_stay_nan_in_correct():
    "A sample missing from an epoch has NaN in every field, `correct` included, in the recorder's dtype."
    for dtype in (np.float32, np.float16):
        rec = DynamicsRecorder(5, 3, dtype=dtype)
        logits = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0]])
        rec.update(torch.tensor([4, 0, 2]), logits, torch.tensor([0, 0, 2]))  # samples 1 and 3 unseen
        with pytest.warns(UserWarning, match="never seen"): rec.end_epoch()
        dyn = rec.dynamics
        assert dyn.correct.dtype == dtype
        # independent expectation: argmax of each row against its target
        np.testing.assert_array_equal(dyn.correct[:, 0], np.array([0.0, np.nan, 1.0, np.nan, 1.0], dtype))
        for k in dyn.fields: assert np.isnan(getattr(dyn, k)[[1, 3], 0]).all(), k


def test_evaluate_restores_train_mode_on_error():
    class Boom(torch.nn.Module):
        def __init__(self): super().__init__(); self.lin = torch.nn.Linear(2, 3)
        def forward(self, x): raise RuntimeError("boom")
    m = Boom().train()
    with pytest.raises(RuntimeError, match="boom"): evaluate(m, _tiny(), device="cpu")
    assert m.training
