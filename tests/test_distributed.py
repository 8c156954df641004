"""DynamicsRecorder under torch.distributed: two CPU processes (gloo) feed disjoint shares of known logits and must end
each epoch with exactly the arrays one process records from the same logits."""
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from scoreextrap.dynamics import DynamicsRecorder

N, C, EPOCHS, WORLD = 11, 3, 3, 2


def _logits(epoch):
    g = torch.Generator().manual_seed(100 + epoch)
    return torch.randn(N, C, generator=g) * 3


def _labels():
    return torch.arange(N) % C


def _shares(epoch):
    "What DistributedSampler would hand each rank: a seeded permutation padded with its first index to a multiple of WORLD, strided."
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(epoch)).tolist()
    padded = perm + perm[:(-N) % WORLD]
    return [padded[r::WORLD] for r in range(WORLD)]


STORAGE = {"in memory": {}, "p_true and kd, float16, memory-mapped": dict(fields=("p_true", "kd"), dtype=np.float16, max_epochs=EPOCHS)}


def _record(rank, shares_of, storage="in memory", memmap_dir=None):
    opts = STORAGE[storage] | (dict(memmap_dir=memmap_dir) if "max_epochs" in STORAGE[storage] else {})
    rec = DynamicsRecorder(N, C, labels=_labels(), **opts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # padding repeats must not warn
        for e in range(EPOCHS):
            mine = torch.tensor(shares_of(e)[rank])
            for b in mine.split(2): rec.update(b, _logits(e)[b], _labels()[b])
            rec.end_epoch()
    return {k: np.array(getattr(rec.dynamics, k)) for k in rec.fields}


def _worker(rank, store_path, out_path, storage, memmap_dir):
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=WORLD)
    try: np.savez(f"{out_path}_{rank}.npz", **_record(rank, _shares, storage, memmap_dir))
    finally: dist.destroy_process_group()


@pytest.mark.parametrize("storage", STORAGE)
def test_two_ranks_record_what_one_process_records(tmp_path, storage):
    mp.start_processes(_worker, args=(str(tmp_path / "store"), str(tmp_path / "out"), storage, str(tmp_path / "mm")), nprocs=WORLD, start_method="spawn")
    single = _record(0, lambda e: [torch.randperm(N, generator=torch.Generator().manual_seed(e)).tolist()], storage, tmp_path / "mm_single")
    assert (-N) % WORLD == 1  # one padding repeat per epoch is exercised
    if "max_epochs" in STORAGE[storage]:  # one file per field and rank
        assert sorted(p.name for p in (tmp_path / "mm").iterdir()) == ["kd.rank0.npy", "kd.rank1.npy", "p_true.rank0.npy", "p_true.rank1.npy"]
    for r in range(WORLD):
        got = np.load(tmp_path / f"out_{r}.npz")
        assert sorted(got.files) == sorted(single)
        for k in single:
            np.testing.assert_allclose(got[k], single[k], rtol=0, atol=0, equal_nan=True, err_msg=f"rank {r}, field {k}")


def _unseen_worker(rank, store_path, out_path):
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=WORLD)
    try:
        rec = DynamicsRecorder(N, C)
        idx = torch.tensor([0, 1]) if rank == 0 else torch.tensor([1, 2])  # sample 1 on both ranks; 3.. on none
        rec.update(idx, _logits(0)[idx] * (1 if rank == 0 else -1), _labels()[idx])  # rank 1 predicts the opposite
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            rec.end_epoch()
        np.savez(f"{out_path}_{rank}.npz", p_true=rec.dynamics.p_true, correct=rec.dynamics.correct, text=" ".join(str(x.message) for x in w))
    finally: dist.destroy_process_group()


def test_unseen_samples_stay_nan_and_one_record_wins(tmp_path):
    mp.start_processes(_unseen_worker, args=(str(tmp_path / "store"), str(tmp_path / "out")), nprocs=WORLD, start_method="spawn")
    p = torch.softmax(_logits(0), 1)[torch.arange(N), _labels()].numpy()
    for r in range(WORLD):
        got = np.load(tmp_path / f"out_{r}.npz")
        np.testing.assert_array_equal(got["p_true"][:2, 0], p[:2])  # sample 1: rank 0's record, not an average with rank 1's
        np.testing.assert_allclose(got["p_true"][2, 0], torch.softmax(-_logits(0)[2], 0)[_labels()[2]].item(), rtol=1e-6)
        assert set(got["correct"][:3, 0].tolist()) <= {0.0, 1.0}
        assert np.isnan(got["p_true"][3:, 0]).all() and np.isnan(got["correct"][3:, 0]).all()
        assert "8 of 11 samples were never seen" in str(got["text"]) and "more than once" not in str(got["text"])


# End to end under torchrun: `fit` with 2 processes, and the `scoreextrap score` command.
FIT_SCRIPT = r'''
import json, os, sys
import numpy as np, torch, torch.distributed as dist
from scoreextrap.data import load_dataset
from scoreextrap.dynamics import DynamicsRecorder
from scoreextrap.models import SmallCNN
from scoreextrap.train import fit
out, ckdir, crash = sys.argv[1], sys.argv[2], sys.argv[3] == "crash"
dist.init_process_group("gloo")
rank = dist.get_rank()
ds = load_dataset("synthetic", n=101, img_size=8, n_classes=4)
torch.manual_seed(0)
model, rec = SmallCNN(width=4, hidden=8, n_classes=4), DynamicsRecorder(len(ds), 4, labels=ds.targets)
if crash:  # every rank fails at the end of the third epoch, before it is checkpointed
    orig = rec.end_epoch
    def end_epoch():
        orig()
        if rec.n_epochs == 3: raise RuntimeError("simulated crash")
    rec.end_epoch = end_epoch
hist = fit(model, ds, 4, batch_size=16, recorder=rec, checkpoint_dir=ckdir, device="cpu", progress=False)
np.savez(f"{out}_{rank}.npz", correct=rec.dynamics.correct, p_true=rec.dynamics.p_true, train_acc=hist.train_acc.to_numpy(),
         weight=next(model.parameters()).detach().numpy())
dist.destroy_process_group()
'''


def _torchrun(args, tmp_path, timeout=240):
    import os, subprocess, sys
    env = dict(os.environ, OMP_NUM_THREADS="1", SCOREEXTRAP_PROGRESS="0")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def test_fit_under_torchrun_records_every_sample_once_and_resumes(tmp_path):
    script = tmp_path / "fit2.py"
    script.write_text(FIT_SCRIPT)
    ref = _torchrun([str(script), str(tmp_path / "ref"), str(tmp_path / "ck_ref"), "no"], tmp_path)
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert "never seen" not in ref.stderr and "more than once" not in ref.stderr, ref.stderr[-3000:]
    r0, r1 = (np.load(tmp_path / f"ref_{r}.npz") for r in range(2))
    assert r0["correct"].shape == (101, 4) and not np.isnan(r0["p_true"]).any()  # every sample recorded in every epoch
    for k in ("correct", "p_true", "train_acc", "weight"): np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)  # ranks agree
    # 101 samples in 2 shares of 51 (one padding repeat): the history counts the 102 trained, the recorder the 101 samples once
    n_correct_recorded = r0["correct"].sum(0)
    assert np.all(np.abs(r0["train_acc"] * 102 - n_correct_recorded) <= 1)
    crashed = _torchrun([str(script), str(tmp_path / "res"), str(tmp_path / "ck"), "crash"], tmp_path)
    assert crashed.returncode != 0 and "simulated crash" in crashed.stderr
    assert (tmp_path / "ck" / "checkpoint.pt").exists() and not list((tmp_path / "ck").glob("*.tmp*"))
    resumed = _torchrun([str(script), str(tmp_path / "res"), str(tmp_path / "ck"), "no"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = np.load(tmp_path / "res_0.npz")
    for k in ("correct", "p_true", "weight"): np.testing.assert_allclose(got[k], r0[k], rtol=0, atol=1e-6, err_msg=k)


def test_score_command_under_torchrun_writes_one_file(tmp_path):
    import sys
    from pathlib import Path
    from scoreextrap.cli import load_scores
    exe = Path(sys.executable).parent / "scoreextrap"
    run = _torchrun(["--no-python", str(exe), "score", "--dataset", "synthetic", "--out", "s.npz", "--epochs", "3", "--scorer", "el2n"], tmp_path)  # no --n: torchrun's parser takes it for its own --nnodes
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("wrote s.npz") == 1 and "never seen" not in run.stderr, (run.stdout, run.stderr[-2000:])
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["s.npz"]
    res = load_scores(tmp_path / "s.npz")
    assert res["n"] == 2000 and np.isfinite(res["scores"]).all()  # synthetic's default size; every sample scored
