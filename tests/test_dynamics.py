"Recording and resuming: properties of the recorder, and a training run killed outright then resumed."
import json, signal, subprocess, sys, textwrap, time

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from scoreextrap.data import load_dataset
from scoreextrap.dynamics import FIELDS, Dynamics, DynamicsRecorder, per_sample_dynamics
from scoreextrap.train import fit
from scoreextrap.models import SmallCNN


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 40), c=st.integers(2, 6), bs=st.integers(1, 16), seed=st.integers(0, 10_000))
def test_recorder_is_independent_of_batching_and_order(n, c, bs, seed):
    "Any shuffled split into batches stores the same values as one batch in index order."
    g = torch.Generator().manual_seed(seed)
    logits = [torch.randn(n, c, generator=g) * 3 for _ in range(2)]
    y = torch.randint(0, c, (n,), generator=g)
    rec = DynamicsRecorder(n, c)
    for e in range(2):
        for b in torch.randperm(n, generator=g).split(bs): rec.update(b, logits[e][b], y[b])
        rec.end_epoch()
    dyn = rec.dynamics
    assert dyn.correct.dtype == np.float32  # 1.0 / 0.0 in the recorder's dtype, not bool
    ref0 = per_sample_dynamics(logits[0], y)
    ref1 = per_sample_dynamics(logits[1], y, prev_probs=ref0["probs"])
    for k in FIELDS:
        for t, ref in enumerate((ref0, ref1)):
            np.testing.assert_allclose(getattr(dyn, k)[:, t], ref[k].numpy(), rtol=1e-5, atol=1e-6, equal_nan=True)


def test_fields_against_a_python_loop():
    "Each field computed sample by sample with plain Python math."
    import math
    torch.manual_seed(0)
    z, y = torch.randn(7, 4) * 2, torch.randint(0, 4, (7,))
    out = per_sample_dynamics(z, y)
    for i in range(7):
        zi = z[i].tolist(); yi = int(y[i]); m = max(zi)
        e = [math.exp(v - m) for v in zi]; p = [v / sum(e) for v in e]
        assert math.isclose(out["p_true"][i].item(), p[yi], rel_tol=1e-5)
        assert math.isclose(out["loss"][i].item(), -math.log(p[yi]), rel_tol=1e-5)
        assert out["correct"][i].item() == float(max(range(4), key=lambda c: zi[c]) == yi)
        assert math.isclose(out["margin"][i].item(), zi[yi] - max(v for c, v in enumerate(zi) if c != yi), rel_tol=1e-5, abs_tol=1e-6)
        assert math.isclose(out["el2n"][i].item(), math.sqrt(sum((p[c] - (c == yi)) ** 2 for c in range(4))), rel_tol=1e-5)
        assert math.isclose(out["entropy"][i].item(), -sum(q * math.log(q + 1e-10) for q in p), rel_tol=1e-5)


def test_save_load_roundtrip_and_rejects_bad_files(tmp_path):
    dyn = Dynamics(p_true=np.random.rand(5, 3).astype(np.float32), correct=np.random.rand(5, 3) > .5, labels=np.arange(5))
    dyn.save(tmp_path / "d.npz")
    back = Dynamics.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(back.p_true, dyn.p_true); assert back.fields == ("p_true", "correct")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError): Dynamics.load(tmp_path / "obj.npy")
    np.savez(tmp_path / "bad.npz", p_true=np.zeros((5, 3)), labels=np.arange(4))
    with pytest.raises(ValueError, match="labels must have shape"): Dynamics.load(tmp_path / "bad.npz")


def test_float_correct_with_unseen_samples_roundtrips(tmp_path):
    "`correct` as the recorder stores it (1.0 / 0.0, NaN = not seen) survives save/load bit for bit, NaN included."
    c = np.array([[1, 0, np.nan], [np.nan, 1, 1]], dtype=np.float16)
    Dynamics(correct=c).save(tmp_path / "c.npz")
    back = Dynamics.load(tmp_path / "c.npz").correct
    assert back.dtype == np.float16 and np.array_equal(back, c, equal_nan=True)


def test_fit_rejects_mismatched_recorder_and_checkpoint(tmp_path):
    ds = load_dataset("synthetic", n=64)
    with pytest.raises(ValueError, match="recorder expects 10 samples"):
        fit(SmallCNN(), ds, epochs=1, recorder=DynamicsRecorder(10, 10), progress=False)
    fit(SmallCNN(), ds, epochs=1, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="was made with"):
        fit(SmallCNN(), ds, epochs=1, lr=0.1, checkpoint_dir=tmp_path, progress=False)


TRAIN = """
import sys, numpy as np, torch
from scoreextrap.data import load_dataset
from scoreextrap.dynamics import DynamicsRecorder
from scoreextrap.train import fit
from scoreextrap.models import SmallCNN
torch.set_num_threads(1)
ds = load_dataset("synthetic", n=1500)
torch.manual_seed(5)
model, rec = SmallCNN(), DynamicsRecorder(len(ds), 10, RECORDER_OPTIONS)
fit(model, ds, epochs=EPOCHS, batch_size=100, recorder=rec, checkpoint_dir=sys.argv[1], seed=7, device="cpu", progress=False)
if len(sys.argv) > 2: rec.dynamics.save(sys.argv[2])
"""
EPOCHS = 5


RECORDERS = {"in memory": "", "memory-mapped float16": f"fields=('p_true', 'correct', 'kd'), dtype=np.float16, memmap_dir=sys.argv[1] + '/mm', max_epochs={EPOCHS}"}


@pytest.mark.parametrize("recorder", RECORDERS)
def test_killed_run_resumes_to_identical_arrays(tmp_path, recorder):
    "SIGKILL a training process after its 2nd checkpoint, resume in a new process, compare with an uninterrupted run."
    script = tmp_path / "train.py"
    script.write_text(TRAIN.replace("EPOCHS", str(EPOCHS)).replace(", RECORDER_OPTIONS", RECORDERS[recorder] and ", " + RECORDERS[recorder]))
    ck_killed, ck_clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen([sys.executable, str(script), str(ck_killed)])
    ckpt, done = ck_killed / "checkpoint.pt", 0
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            done = len(json.loads(torch.load(ckpt, weights_only=True)["history"]))
            if done >= 2: break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL); proc.wait()
    assert proc.returncode == -signal.SIGKILL and 2 <= done < EPOCHS, "the run must be killed part-way"
    subprocess.run([sys.executable, str(script), str(ck_killed), str(tmp_path / "resumed.npz")], check=True)
    subprocess.run([sys.executable, str(script), str(ck_clean), str(tmp_path / "clean.npz")], check=True)
    resumed, clean = Dynamics.load(tmp_path / "resumed.npz"), Dynamics.load(tmp_path / "clean.npz")
    assert resumed.n_epochs == clean.n_epochs == EPOCHS and resumed.fields == clean.fields
    for k in clean.fields:
        np.testing.assert_allclose(getattr(resumed, k), getattr(clean, k), rtol=1e-5, atol=1e-6, equal_nan=True)


def test_recorder_state_roundtrip_with_probs():
    "state_dict/load_state_dict restore every epoch, the full probabilities and the previous epoch for kd."
    torch.manual_seed(0)
    n, c = 6, 3
    logits, y = [torch.randn(n, c) for _ in range(3)], torch.randint(0, c, (n,))
    def run(restart):
        rec = DynamicsRecorder(n, c, keep_probs=True)
        for e in range(3):
            if e == restart:
                st = rec.state_dict(); rec = DynamicsRecorder(n, c, keep_probs=True); rec.load_state_dict(st)
            rec.update(torch.arange(n), logits[e], y); rec.end_epoch()
        return rec.dynamics
    a, b = run(None), run(2)
    assert a.probs.shape == (n, 3, c)
    np.testing.assert_array_equal(a.probs, b.probs)
    np.testing.assert_array_equal(a.kd, b.kd)
