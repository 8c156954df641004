"""Fault test: SIGKILL `scoreextrap score --out ...` and a checkpointed `fit` at many random moments.

After every kill the file under its final name is the old file or a complete new one; a killed writer leaves at most
its own temporary `.{name}.{pid}.{rand}.scoreextrap-tmp` beside it (never a part under the final name); the next
write removes such leftovers; and the run that finally completes gives exactly the arrays of an uninterrupted run.

Kill moments come from a seeded RNG: some at a uniform time over the run's expected life (data, training, scoring,
writing, exit), some the instant the run's own temporary appears, so that kills during a write really happen.
Python and torch take seconds to start, and start-up touches no file, so the killed runs are forked from one
interpreter that has imported the library once (`_Forker`): each is a separate OS process running exactly what the
`scoreextrap` command or a training script runs, and SIGKILL ends it as it would end a fresh one. A fresh process per
target is compared with a forked one first. Every run is on the CPU with one thread, so runs with the same seed are
bit-for-bit repeatable; that is checked first, and every comparison after it is exact (no tolerance)."""
import json, os, re, select, shutil, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
import torch

from scoreextrap.cli import load_scores
from scoreextrap.dynamics import FIELDS

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SCOREEXTRAP_PROGRESS": "0", "CUDA_VISIBLE_DEVICES": ""}
HANG_S = 240  # a run that takes this long has hung (an uninterrupted one takes 2-8 s here): fail instead of blocking CI
TMP_SUFFIX = ".scoreextrap-tmp"

N_FIT, EPOCHS = 256, 6
TRAIN = f"""
import sys
import numpy as np, torch
from scoreextrap.data import load_dataset
from scoreextrap.dynamics import FIELDS, DynamicsRecorder
from scoreextrap.train import fit
from scoreextrap.models import SmallCNN

def train(ck, out):
    torch.set_num_threads(1)
    ds = load_dataset("synthetic", n={N_FIT})
    torch.manual_seed(5)
    model, rec = SmallCNN(), DynamicsRecorder(len(ds), 10)
    hist = fit(model, ds, epochs={EPOCHS}, batch_size=64, recorder=rec, checkpoint_dir=ck, seed=7, device="cpu", progress=False)
    dyn = rec.dynamics
    np.savez(out, **{{"hist_" + c: hist[c].to_numpy() for c in hist.columns}}, **{{"dyn_" + k: getattr(dyn, k) for k in FIELDS}},
             **{{"model_" + k: v.numpy() for k, v in model.state_dict().items()}})
"""
TRAIN_MAIN = TRAIN + "\nif __name__ == '__main__': train(sys.argv[1], sys.argv[2])\n"
CLI = [sys.executable, "-c", "import sys; from scoreextrap.cli import main; sys.exit(main(sys.argv[1:]))"]

# One fresh interpreter: imports once, then forks a child per job line {"kind", "args", "cwd"} read from stdin.
# Protocol on stdout: "pid N" after the fork; "exited RC" once the child has ended (RC < 0: killed by signal -RC),
# found with WNOWAIT so the child stays unreaped (its pid cannot be reused while the test may still signal it);
# the test then writes "reap" and the child is reaped before the next job is read.
FORKER = TRAIN + r"""
import json, os, traceback
from scoreextrap.cli import main
JOBS = dict(cli=lambda *argv: main(list(argv)), train=train)
print("ready", flush=True)
while True:
    line = sys.stdin.readline()
    if not line: break
    job = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(job["cwd"])
            fd = os.open("child.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644); os.dup2(fd, 1); os.dup2(fd, 2)
            r = JOBS[job["kind"]](*job["args"]); code = r if isinstance(r, int) else 0
        except SystemExit as e: code = e.code if isinstance(e.code, int) else 1
        except BaseException: traceback.print_exc()
        finally:
            sys.stdout.flush(); sys.stderr.flush(); os._exit(code)
    print("pid", pid, flush=True)
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    print("exited", info.si_status if info.si_code == os.CLD_EXITED else -info.si_status, flush=True)
    sys.stdin.readline()
    os.waitpid(pid, 0)
"""


class _Forker:
    "Drive the FORKER interpreter: run a job to its end, or SIGKILL it at a moment."
    def __init__(self, folder: Path):
        self.log = open(folder / "forker.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-c", FORKER], cwd=folder, env=ENV, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log)
        self.buf = b""
        assert self._line(HANG_S) == "ready", self._why()

    def _why(self): return f"forker: {(Path(self.log.name)).read_text()[-3000:]}"

    def _line(self, timeout):
        "The next protocol line, or None if none came within `timeout` seconds."
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]: return None
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            assert chunk, "the forker died: " + self._why()
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def run(self, kind, args, cwd: Path, *, at=None, watch: Path | None = None, nth: int = 1):
        """Run job `kind(*args)` in `cwd` in a forked child; SIGKILL it `at` seconds after the fork, or the instant its
        `nth` temporary for `watch` appears (busy polling the folder); else let it end. Return (rc, pid, seconds)."""
        self.proc.stdin.write((json.dumps(dict(kind=kind, args=[str(a) for a in args], cwd=str(cwd))) + "\n").encode())
        self.proc.stdin.flush()
        line = self._line(HANG_S); assert line and line.startswith("pid "), (line, self._why())
        pid, t0 = int(line.split()[1]), time.monotonic()
        try:
            if watch is not None:
                mine, seen, names = re.compile(rf"^\.{re.escape(watch.name)}\.{pid}\."), set(), set()
                while not select.select([self.proc.stdout], [], [], 0)[0] and time.monotonic() - t0 < HANG_S:
                    with os.scandir(watch.parent) as it: names.update(e.name for e in it)
                    seen.update(n for n in names if mine.match(n))
                    if len(seen) >= nth: os.kill(pid, signal.SIGKILL); break
            elif at is not None and self._peek(at) is None: os.kill(pid, signal.SIGKILL)
            line = self._line(max(HANG_S - (time.monotonic() - t0), 1))
        finally:
            if not (line or "").startswith("exited"): os.kill(pid, signal.SIGKILL); line = self._line(30)
            self.proc.stdin.write(b"reap\n"); self.proc.stdin.flush()
        assert line and line.startswith("exited"), f"{kind} {args}: no exit reported: " + self._why()
        hung = time.monotonic() - t0 >= HANG_S
        assert not hung, f"{kind} {args} ran {HANG_S} s (hung); killed:\n{(cwd / 'child.log').read_text()[-3000:]}"
        rc, wall = int(line.split()[1]), time.monotonic() - t0
        if watch is not None:  # everything that appeared beside the file while it was written
            pat = _tmp_pattern(watch)
            odd = sorted(n for n in names - {watch.name} if not pat.match(n))
            assert not odd, f"{kind} wrote {odd} beside {watch.name}; temporaries must be named .{watch.name}.<pid>.<rand>{TMP_SUFFIX}"
        assert rc in (0, -signal.SIGKILL), f"{kind} {args} ended with {rc}:\n{(cwd / 'child.log').read_text()[-3000:]}"
        return rc, pid, wall

    def _peek(self, timeout):
        "Wait up to `timeout` s for a protocol line without consuming it."
        line = self._line(timeout)
        if line is not None: self.buf = (line + "\n").encode() + self.buf
        return line

    def close(self):
        self.proc.stdin.close()
        try: self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def forker(tmp_path_factory):
    f = _Forker(tmp_path_factory.mktemp("forker"))
    yield f
    f.close()


def _fresh(cmd, cwd: Path):
    "Start `cmd` as a fresh process (a reference run side by side with a forked one); `_wait` it."
    fh = open(cwd / "fresh.log", "wb")
    return subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=fh, stderr=subprocess.STDOUT), fh


def _wait(p_fh, cwd: Path):
    p, fh = p_fh
    try: rc = p.wait(timeout=HANG_S)
    finally:
        if p.poll() is None: p.kill(); p.wait(timeout=30)
        fh.close()
    assert rc == 0, f"fresh reference run failed ({rc}):\n{(cwd / 'fresh.log').read_text()[-3000:]}"


def _tmp_pattern(final: Path):
    "The names of `final`'s temporaries, the writer's pid as group 1."
    return re.compile(rf"^\.{re.escape(final.name)}\.(\d+)\.[A-Za-z0-9_]+{re.escape(TMP_SUFFIX)}$")


def _leftovers(final: Path) -> dict:
    """Every entry beside `final` in its folder (which holds nothing else), as name -> pid of its writer.
    Fails on anything that is not a temporary of `final`'s naming, and when `final` exists but is not a regular file."""
    assert not final.exists() or final.is_file(), f"{final.name} is not a regular file"
    pat, out = _tmp_pattern(final), {}
    for name in os.listdir(final.parent):
        if name == final.name: continue
        m = pat.match(name)
        assert m, f"unexpected {name!r} beside {final.name}: only temporaries .{final.name}.<pid>.<rand>{TMP_SUFFIX} may be left"
        out[name] = int(m.group(1))
    return out


def _check_leftovers(final: Path, pid: int, rc: int, dead: set, wrote: bool) -> bool:
    "Check the temporaries after run `pid`; `wrote`: it completed a write. Return whether it left its own (killed in a write)."
    left = _leftovers(final)
    assert set(left.values()) <= dead | {pid}, f"temporaries of writers that were not killed: {left}"
    own = [name for name, p in left.items() if p == pid]
    assert len(own) <= 1 and not (own and rc == 0), f"run {pid} (exit {rc}) left {own}"
    if wrote or own:  # it reached a write, whose first act is to remove the temporaries of dead writers
        assert set(left.values()) <= {pid}, f"the write of run {pid} did not remove stale temporaries {left}"
    return bool(own)


# ---------------------------------------------------------------- scoreextrap score --out
SCORE = ["score", "--dataset", "synthetic", "--n", "300", "--epochs", "3", "--seed", "0", "--out"]
N_SCORE_WRITE, N_SCORE_TIME = 8, 16  # kill moments: at the temporary's appearance; at a uniform time


def _assert_same_scores(got: dict, ref: dict, what: str):
    "Every field of two scores files equal, except the timings (wall-clock seconds)."
    assert set(got) == set(ref), f"{what}: fields {sorted(got)} != {sorted(ref)}"
    for k in ref:
        if k != "timings": np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{what}: field {k!r}")


def test_killed_score_leaves_old_or_complete_new_file(tmp_path, forker):
    ref_a, ref_b, work, outdir = (tmp_path / d for d in ("ref_a", "ref_b", "work", "out"))
    for d in (ref_a, ref_b, work, outdir): d.mkdir()
    fresh = _fresh(CLI + SCORE + ["s.npz"], ref_a)
    rc, _, life = forker.run("cli", SCORE + ["s.npz"], ref_b)
    _wait(fresh, ref_a)
    ref = load_scores(ref_a / "s.npz")
    # Determinism first: a fresh `scoreextrap score` and a forked one with the same seed agree exactly.
    _assert_same_scores(load_scores(ref_b / "s.npz"), ref, "two uninterrupted runs")

    # The old file: a complete scores file of the same layout with other scores (an earlier scoring).
    with np.load(ref_a / "s.npz", allow_pickle=False) as f: arrays = {k: f[k] for k in f.files}
    arrays["scores"] = np.random.default_rng(1).random(arrays["scores"].shape)
    old_file = tmp_path / "old.npz"; np.savez(old_file, **arrays)
    old_bytes = old_file.read_bytes()
    assert not np.array_equal(load_scores(old_file)["scores"], ref["scores"])

    out = outdir / "scores.npz"
    rng = np.random.default_rng(20240612)
    queue = list(rng.permutation(["write"] * N_SCORE_WRITE + ["time"] * N_SCORE_TIME))
    dead, landed, runs = set(), dict(before=0, during=0, after=0), 0
    while queue:
        runs += 1
        assert runs <= N_SCORE_WRITE + N_SCORE_TIME + 12, f"too many runs ended before their kill moment: {landed}"
        mode = queue.pop(0)
        if not out.exists() or out.read_bytes() != old_bytes: shutil.copyfile(old_file, out)  # each kill starts from the old file
        kw = dict(watch=out) if mode == "write" else dict(at=rng.uniform(0, life))
        rc, pid, wall = forker.run("cli", SCORE + [out], work, **kw)
        new = out.read_bytes() != old_bytes  # else it is byte for byte the old file
        if new: _assert_same_scores(load_scores(out), ref, f"--out after a kill ({mode})")  # complete, right content
        own = _check_leftovers(out, pid, rc, dead, wrote=new)
        if rc == 0:  # it ended before its kill moment: not a kill; draw another moment of this kind
            assert new; queue.append(mode); life = min(life, wall); continue
        dead.add(pid)
        landed["during" if own else "after" if new else "before"] += 1

    # The next, uninterrupted run writes the complete new file and removes every temporary left by killed writers.
    shutil.copyfile(old_file, out)
    stale = _leftovers(out)
    forker.run("cli", SCORE + [out], work)
    _assert_same_scores(load_scores(out), ref, "the run after the kills")
    assert _leftovers(out) == {}, "temporaries left after an uninterrupted run"
    kills = sum(landed.values())
    print(f"\nscore: {kills} kill moments in {runs} runs; landed before the write {landed['before']}, during it "
          f"{landed['during']}, after it {landed['after']}; {len(stale)} stale temporaries removed by the last run")
    assert kills >= 20 and landed["during"] >= 1, landed


# ---------------------------------------------------------------- fit(checkpoint_dir=...)
N_FIT_KILLS = 24


def _npz(path) -> dict:
    with np.load(path, allow_pickle=False) as f: return {k: f[k] for k in f.files}


def _assert_same_run(got: dict, ref: dict, what: str):
    "Recorder arrays and model state exactly equal; the history has every epoch once, with the same numbers."
    np.testing.assert_array_equal(got["hist_epoch"], np.arange(EPOCHS), err_msg=f"{what}: history epochs")
    assert set(got) == set(ref), f"{what}: {sorted(set(got) ^ set(ref))}"
    for k in ref:  # NaN == NaN here (kd of the first epoch); `seconds` is wall-clock time
        if k != "hist_seconds": np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{what}: {k}")


def _checkpoint_epochs(st: dict, ref: dict) -> int:
    "A complete checkpoint after k epochs: its history and recorded columns are the first k epochs of the reference run."
    hist = json.loads(st["history"]); k = len(hist)
    assert [r["epoch"] for r in hist] == list(range(k)), [r["epoch"] for r in hist]
    for c in ("train_loss", "train_acc", "lr"):
        np.testing.assert_array_equal([r[c] for r in hist], ref[f"hist_{c}"][:k], err_msg=f"checkpoint history {c}")
    for f in FIELDS:
        np.testing.assert_array_equal(st["recorder"][f"col_{f}"].numpy(), ref[f"dyn_{f}"][:, :k], err_msg=f"checkpoint recorder {f}")
    return k


def test_killed_fit_resumes_to_uninterrupted_arrays(tmp_path, forker):
    ref_a, ref_b, work = (tmp_path / d for d in ("ref_a", "ref_b", "work"))
    for d in (ref_a, ref_b, work): d.mkdir()
    (ref_a / "train.py").write_text(TRAIN_MAIN)
    fresh = _fresh([sys.executable, "train.py", "ck", "out.npz"], ref_a)
    rc, _, wall = forker.run("train", ["ck", "out.npz"], ref_b)
    _wait(fresh, ref_a)
    ref = _npz(ref_a / "out.npz")
    _assert_same_run(_npz(ref_b / "out.npz"), ref, "two uninterrupted runs")  # determinism first: fresh vs forked
    # A run on a complete checkpoint only resumes: the same arrays; its wall time is the cost outside training.
    rc, _, t_rest = forker.run("train", ["ck", "again.npz"], ref_b)
    _assert_same_run(_npz(ref_b / "again.npz"), ref, "a resume of a complete checkpoint")
    t_epoch = max(wall - t_rest, 0.1) / EPOCHS
    life = lambda k: t_rest + (EPOCHS - k) * t_epoch  # expected wall time of a run resuming after k epochs

    ck, out = work / "ck", work / "out.npz"
    ck.mkdir()
    ckpt = ck / "checkpoint.pt"
    rng = np.random.default_rng(20240613)
    stats = dict(kills=0, during=0, chains=0, stale=0, after_epochs=[0] * EPOCHS)

    def finish_chain():
        "Resume uninterrupted, compare with the uninterrupted run, and start a new chain from nothing."
        stats["stale"] += len(_leftovers(ckpt))
        out.unlink(missing_ok=True)
        forker.run("train", [ck, out], work)
        _assert_same_run(_npz(out), ref, f"chain {stats['chains']} resumed after kills")
        assert _leftovers(ckpt) == {}, "temporaries left after the resumed run"
        stats["chains"] += 1
        shutil.rmtree(ck); ck.mkdir()

    # k: epochs in the checkpoint; old: its bytes; a chain of 2-5 kills, then it resumes to the end (so kills spread over epochs)
    dead, runs, k, old, chain_left = set(), 0, 0, None, int(rng.integers(2, 6))
    while stats["kills"] < N_FIT_KILLS:
        runs += 1
        assert runs <= N_FIT_KILLS + 15, f"too many runs ended before their kill moment: {stats}"
        write = rng.random() < 1 / 3
        kw = dict(watch=ckpt, nth=int(rng.integers(1, EPOCHS - k + 1))) if write else dict(at=rng.uniform(0, life(k)))
        out.unlink(missing_ok=True)
        rc, pid, _ = forker.run("train", [ck, out], work, **kw)
        if not ckpt.exists():
            assert old is None, "the checkpoint disappeared"
            k_now = 0
        elif old is not None and ckpt.read_bytes() == old:
            k_now = k  # the old file, untouched
        else:  # a complete new checkpoint, holding the first k_now epochs of the uninterrupted run
            k_now = _checkpoint_epochs(torch.load(ckpt, map_location="cpu", weights_only=True), ref)
            assert k_now > k, f"checkpoint went from {k} to {k_now} epochs"
        own = _check_leftovers(ckpt, pid, rc, dead, wrote=k_now > k)
        if rc == 0:  # it ended before its kill moment: that ends this chain
            assert k_now == EPOCHS
            _assert_same_run(_npz(out), ref, "a run that ended before its kill moment")
            stats["chains"] += 1; shutil.rmtree(ck); ck.mkdir(); k, old, chain_left = 0, None, int(rng.integers(2, 6))
            continue
        dead.add(pid); stats["kills"] += 1; stats["during"] += own; stats["after_epochs"][k] += 1
        k, old, chain_left = k_now, ckpt.read_bytes() if ckpt.exists() else None, chain_left - 1
        if k == EPOCHS or chain_left == 0: finish_chain(); k, old, chain_left = 0, None, int(rng.integers(2, 6))
    if k or old is not None or _leftovers(ckpt): finish_chain()
    print(f"\nfit: {stats['kills']} kill moments in {runs} runs, {stats['during']} during a checkpoint write; {stats['chains']} "
          f"chains each resumed to the uninterrupted arrays; kills in runs resuming after 0..{EPOCHS - 1} epochs: "
          f"{stats['after_epochs']}; {stats['stale']} stale temporaries present before a chain's last run")
    assert stats["kills"] >= 20 and stats["during"] >= 1, stats
