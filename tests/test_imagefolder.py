"Datasets of image files: a tiny ImageFolder written here, checked against PIL, through loaders, fit, embed, score_dataset and the CLI."
import os, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from scoreextrap.data import (IMAGENET_MEAN, IMAGENET_STD, ImageFileDataset, IndexedDataset, TensorImageDataset, crop_flip,
                              get_targets, load_dataset, make_loader)
from scoreextrap.cli import main
from scoreextrap.dynamics import DynamicsRecorder
from scoreextrap.models import SmallCNN, embed
from scoreextrap.pipeline import score_dataset
from scoreextrap.train import fit

CLASSES = ("bars", "blobs", "checks")  # sorted, as ImageFolder numbers them
PER_CLASS, SIZE = 8, 32


def _image(c: int, k: int) -> np.ndarray:
    "A distinct 32x32 RGB picture per class (bright bars, a bright square, a checkerboard) on a dark noisy background."
    rng = np.random.default_rng(100 * c + k)
    a = rng.integers(0, 60, (SIZE, SIZE, 3))
    colour = rng.integers(150, 256, 3)
    if c == 0: a[:, k % 4::4] = colour
    elif c == 1: a[8 + k % 8:24 + k % 8, 4:20] = colour
    else: a[(np.add.outer(np.arange(SIZE), np.arange(SIZE)) // (2 + k % 3)) % 2 == 0] = colour
    return a.astype(np.uint8)


def _write_folder(root: Path) -> Path:
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for k in range(PER_CLASS): Image.fromarray(_image(c, k)).save(root / name / f"img{k}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _write_folder(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="module")
def ds(folder):
    return load_dataset("imagefolder", root=folder, img_size=SIZE)


def _by_pil(path) -> np.ndarray:
    "The file decoded by PIL alone, as float64 [3, H, W] in [0, 1]."
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64).transpose(2, 0, 1) / 255


def test_values_statistics_and_labels_against_pil(ds, folder):
    files = sorted(folder.rglob("*.png"))
    pixels = np.stack([_by_pil(f) for f in files])  # [24, 3, 32, 32]
    # 24 images < the 1 000 sampled: the statistics are those of all pixels, per channel, sample std (n - 1)
    mean, std = pixels.mean((0, 2, 3)), pixels.std((0, 2, 3), ddof=1)
    np.testing.assert_allclose(ds.mean.flatten().numpy(), mean, atol=1e-6)  # float32 storage: ~1e-7 relative
    np.testing.assert_allclose(ds.std.flatten().numpy(), std, atol=1e-6)
    assert len(ds) == 24 and ds.classes == list(CLASSES) and [Path(f) for f in ds.files] == files
    for i, f in enumerate(files):
        x, y = ds[i]
        assert x.dtype == torch.float32 and x.shape == (3, SIZE, SIZE) and int(y) == CLASSES.index(f.parent.name)
        # float32 arithmetic on values of order 1-4 after dividing by std ~0.3: errors below 1e-5
        np.testing.assert_allclose(x.numpy(), (pixels[i] - mean[:, None, None]) / std[:, None, None], atol=1e-5)


def test_resize_and_crop_of_a_non_square_grey_image(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (36, 48), dtype=np.uint8)  # H=36, W=48, one channel
    Image.fromarray(grey).save(tmp_path / "g.png")
    d = ImageFileDataset([tmp_path / "g.png"], [0], img_size=24)
    # shorter side 36 -> 24, longer 48 -> 32 (bilinear, as PIL does it), then the middle 24 columns: 4..27
    want = np.asarray(Image.open(tmp_path / "g.png").convert("RGB").resize((32, 24), Image.BILINEAR))[:, 4:28].transpose(2, 0, 1)
    assert d.pixels(0).shape == (3, 24, 24)
    np.testing.assert_array_equal(d.pixels(0).numpy(), want)
    assert (d.pixels(0)[0] == d.pixels(0)[2]).all()  # grey: R = G = B
    np.testing.assert_allclose(d[0][0].numpy(), (want / 255 - np.array(IMAGENET_MEAN)[:, None, None]) / np.array(IMAGENET_STD)[:, None, None], atol=1e-5)


def test_targets_come_without_decoding_and_items_are_read_lazily(folder, tmp_path):
    copy = shutil.copytree(folder, tmp_path / "copy")
    d = load_dataset("imagefolder", root=copy, img_size=SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    new = np.full((SIZE, SIZE, 3), 200, np.uint8)
    Image.fromarray(new).save(copy / "bars" / "img0.png")  # changed after loading: the dataset reads the new file
    assert (d.pixels(0) == 200).all()
    for f in copy.rglob("*.png"): f.unlink()  # no image left to decode
    assert get_targets(d).tolist() == [0] * 8 + [1] * 8 + [2] * 8
    assert IndexedDataset(d).targets.tolist() == get_targets(d).tolist()
    sub = d.subset([23, 0, 9])
    assert get_targets(sub).tolist() == [2, 0, 1] and sub.classes == list(CLASSES) and torch.equal(sub.mean, d.mean)


def test_loader_with_two_workers_serves_every_image_once(ds):
    seen = []
    for x, y, idx in make_loader(IndexedDataset(ds), batch_size=5, shuffle=True, seed=3, num_workers=2):
        for j, i in enumerate(idx.tolist()):
            assert torch.equal(x[j], ds[i][0]) and int(y[j]) == int(ds.targets[i])
        seen += idx.tolist()
    assert sorted(seen) == list(range(24))


class CountingRecorder(DynamicsRecorder):
    "A recorder that also counts, per epoch, how often each sample index reached it."
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.counts, self._now = [], np.zeros(self.n_samples, np.int64)
    def update(self, idx, logits, targets):
        self._now += np.bincount(np.asarray(idx), minlength=self.n_samples)
        super().update(idx, logits, targets)
    def end_epoch(self):
        self.counts.append(self._now.copy()); self._now[:] = 0
        super().end_epoch()


def test_fit_with_workers_and_augmentation_records_every_sample_once_then_embeds(ds):
    torch.manual_seed(0)
    model = SmallCNN(in_channels=3, n_classes=3, width=8, hidden=16)
    rec = CountingRecorder(len(ds), 3, labels=ds.targets)
    hist = fit(model, ds, 2, batch_size=8, recorder=rec, augment=crop_flip, num_workers=2, device="cpu", progress=False)
    assert len(hist) == 2 and [c.tolist() for c in rec.counts] == [[1] * 24, [1] * 24]
    assert rec.dynamics.p_true.shape == (24, 2) and np.isfinite(rec.dynamics.p_true).all()
    # the same images held in memory (decoded by PIL here) give the same embeddings
    mem = TensorImageDataset(torch.stack([ds.pixels(i) for i in range(24)]), ds.targets, mean=ds.mean.flatten(), std=ds.std.flatten())
    np.testing.assert_allclose(embed(model, ds), embed(model, mem), atol=1e-5)  # float32 sums of a few hundred terms


def test_score_dataset_on_a_subset_of_image_files(ds):
    res = score_dataset(ds, "el2n", subset_frac=0.5, extrapolator="knn", extrapolator_kwargs=dict(k=3), epochs=2, stratify=True,
                        fit_kwargs=dict(num_workers=2, batch_size=8), device="cpu", progress=False)
    assert res.scores.shape == (24,) and np.isfinite(res.scores).all() and len(res.subset_idx) == 12
    assert np.bincount(ds.targets.numpy()[res.subset_idx]).tolist() == [4, 4, 4]  # stratified: 4 of each class


class Pairs(Dataset):
    "A user's own dataset: (tensor, int) items and a `targets` list."
    def __init__(self, n=20):
        g = torch.Generator().manual_seed(0)
        self.x, self.targets = torch.randn(n, 3, 8, 8, generator=g), [i % 2 for i in range(n)]
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i], self.targets[i]


class NoLabels(Pairs):
    def __init__(self): super().__init__(); self.y = self.targets; del self.targets
    def __getitem__(self, i): return self.x[i], self.y[i]


def test_a_users_own_dataset_goes_through_indexed_dataset_loaders_and_fit():
    p = Pairs()
    x, y, i = IndexedDataset(p)[7]
    assert torch.equal(x, p.x[7]) and (y, i) == (1, 7) and get_targets(p).tolist() == p.targets
    seen = torch.cat([b[2] for b in make_loader(IndexedDataset(p), batch_size=6, shuffle=True, num_workers=2)])
    assert sorted(seen.tolist()) == list(range(20))
    rec = CountingRecorder(20, 2, labels=p.targets)
    fit(SmallCNN(in_channels=3, n_classes=2, width=4, hidden=8), p, 1, batch_size=6, recorder=rec, device="cpu", progress=False)
    assert rec.counts[0].tolist() == [1] * 20
    with pytest.raises(ValueError, match="NoLabels has no `targets` or `labels` attribute"): get_targets(NoLabels())


def test_bad_folders_and_names(tmp_path):
    with pytest.raises(ValueError, match="root is required for 'imagefolder'"): load_dataset("imagefolder")
    with pytest.raises(ValueError, match="is not an existing folder"): load_dataset("imagefolder", root=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no class folders"): load_dataset("imagefolder", root=tmp_path / "empty")
    (tmp_path / "two" / "cat").mkdir(parents=True); (tmp_path / "two" / "dog").mkdir()
    Image.fromarray(_image(0, 0)).save(tmp_path / "two" / "cat" / "a.png"); (tmp_path / "two" / "dog" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="class folders without image files under .*: dog"): load_dataset("imagefolder", root=tmp_path / "two")
    (tmp_path / "two" / "dog" / "readme.txt").unlink(); (tmp_path / "two" / "dog").rmdir()
    with pytest.raises(ValueError, match=r"has only the class \['cat'\]; a classifier needs images of at least 2 classes"):
        load_dataset("imagefolder", root=tmp_path / "two")
    with pytest.raises(ValueError, match="unknown dataset 'imagenet22k'; choose one of fashion_mnist, .*imagefolder, imagenet, places365"):
        load_dataset("imagenet22k")
    with pytest.raises(ValueError, match="for train=False it needs root/train and root/val"): load_dataset("imagefolder", root=tmp_path / "two", train=False)


def test_imagenet_wiring_with_a_fake_folder_in_torchvision_layout(tmp_path):
    "torchvision's ImageNet accepts an unpacked layout: meta.bin (WordNet id -> names, val ids) and train/ and val/ of class folders."
    wnids = ("n01440764", "n01443537")
    torch.save(({wnids[0]: ("tench", "Tinca tinca"), wnids[1]: ("goldfish", "Carassius auratus")}, [wnids[0], wnids[1]]), tmp_path / "meta.bin")
    for split, n in (("train", 3), ("val", 2)):
        for c, w in enumerate(wnids):
            (tmp_path / split / w).mkdir(parents=True)
            for k in range(n): Image.fromarray(_image(c, k)).save(tmp_path / split / w / f"{w}_{k}.JPEG", quality=95)
    tr, va = load_dataset("imagenet", root=tmp_path, img_size=16), load_dataset("imagenet", root=tmp_path, train=False, img_size=16)
    assert tr.classes == ["tench", "goldfish"] and tr.targets.tolist() == [0, 0, 0, 1, 1, 1] and va.targets.tolist() == [0, 0, 1, 1]
    assert torch.allclose(tr.mean.flatten(), torch.tensor(IMAGENET_MEAN)) and tr[4][0].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="could not load 'imagenet' .*ILSVRC2012_devkit_t12.tar.gz"):
        load_dataset("imagenet", root=tmp_path / "train")  # no meta.bin, no devkit archive


def test_places365_wiring_with_a_fake_folder_checksums_bypassed(tmp_path, monkeypatch):
    "torchvision checks Places365's file lists against their published MD5 sums, which a fake cannot match: the error without, the wiring with that check patched."
    with pytest.raises(ValueError, match="could not load 'places365'"): load_dataset("places365", root=tmp_path)
    import torchvision.datasets.places365 as tvp
    monkeypatch.setattr(tvp, "check_integrity", lambda *a, **k: True)
    (tmp_path / "categories_places365.txt").write_text("/a/abbey 0\n/b/beach 1\n")
    (tmp_path / "places365_train_standard.txt").write_text("".join(f"/{c[0]}/{c}/{k:08d}.jpg {i}\n" for i, c in enumerate(("abbey", "beach")) for k in (1, 2)))
    (tmp_path / "places365_val.txt").write_text("Places365_val_00000001.jpg 1\n")
    with pytest.raises(ValueError, match="no Places365 images under .*data_256_standard"): load_dataset("places365", root=tmp_path)
    for i, c in enumerate(("abbey", "beach")):
        (tmp_path / "data_256_standard" / c[0] / c).mkdir(parents=True)
        for k in (1, 2): Image.fromarray(_image(i, k)).save(tmp_path / "data_256_standard" / c[0] / c / f"{k:08d}.jpg")
    (tmp_path / "val_256").mkdir(); Image.fromarray(_image(1, 5)).save(tmp_path / "val_256" / "Places365_val_00000001.jpg")
    tr, va = load_dataset("places365", root=tmp_path, img_size=16), load_dataset("places365", root=tmp_path, train=False, img_size=16)
    assert tr.classes == ["/a/abbey", "/b/beach"] and tr.targets.tolist() == [0, 0, 1, 1] and va.targets.tolist() == [1]
    assert tr.pixels(3).shape == (3, 16, 16) and torch.allclose(va.std.flatten(), torch.tensor(IMAGENET_STD))


def _cli(*args):
    exe = shutil.which("scoreextrap") or str(Path(sys.executable).with_name("scoreextrap"))
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=600, env={**os.environ, "SCOREEXTRAP_PROGRESS": "0"})


def test_cli_scores_and_prunes_an_image_folder(folder, tmp_path):
    r = _cli("score", "--dataset", "imagefolder", "--root", folder, "--img-size", SIZE, "--epochs", 2, "--subset-frac", 0.5,
             "--k", 3, "--num-workers", 2, "--out", tmp_path / "s.npz")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "s.npz", allow_pickle=False) as f:
        assert str(f["dataset"]) == "imagefolder" and int(f["n"]) == 24 and len(f["subset_idx"]) == 12 and np.isfinite(f["scores"]).all()
    r = _cli("prune", "--scores", tmp_path / "s.npz", "--keep-frac", 0.5, "--class-balanced", "--dataset", "imagefolder", "--root", folder,
             "--out", tmp_path / "keep.npy")
    assert r.returncode == 0, r.stderr
    keep = np.load(tmp_path / "keep.npy", allow_pickle=False)
    assert np.bincount(keep // PER_CLASS).tolist() == [4, 4, 4]  # files are listed class by class, 8 each: index // 8 is the class


def test_cli_without_root_is_a_one_line_error(tmp_path, capsys):
    assert main(["score", "--dataset", "imagefolder", "--out", str(tmp_path / "x.npz")]) == 2
    assert capsys.readouterr().err == "scoreextrap: error: --dataset imagefolder needs --root, the folder where its images are\n"
    assert main(["score", "--dataset", "imagefolder", "--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "is not an existing folder; 'imagefolder' needs one folder of image files per class" in capsys.readouterr().err
