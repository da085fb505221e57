"""Data: the digits folder, the torch and synthetic loaders, sharding, determinism and exact
resume, dataset standardisation, CIFAR/SVHN files. Everything goes through data.build."""

import gc
import os
import multiprocessing
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cwn_bench.config import from_dict
from cwn_bench.data import build, make_digits_dataset, sharding
from cwn_bench.errors import UserError


def config(root, **data):
    batch = data.pop("batch_size", 32)
    return from_dict({"seed": data.pop("seed", 0), "data": {"root": str(root), "image_size": 32, "workers": 0, **data},
                      "train": {"batch_size": batch}})


def concat(batches):
    images, labels = zip(*batches)
    return torch.cat(images), torch.cat(labels)


def test_digits_folder_layout(digits_root):
    for split, count in (("train", 1442), ("val", 355)):
        files = sorted((digits_root / split).glob("*/*.jpg"))
        assert len(files) == count
        assert sorted({f.parent.name for f in files}) == [str(d) for d in range(10)]
    with Image.open(files[0]) as img:
        assert img.format == "JPEG" and img.size == (32, 32) and img.mode == "RGB"
    with pytest.raises(UserError, match="already exists"):
        make_digits_dataset(digits_root)


def test_torch_loader_batches(digits_root):
    dm = build(config(digits_root, workers=2))
    assert (dm.num_classes, dm.in_shape, dm.train_size, dm.val_size) == (10, (3, 32, 32), 1442, 355)
    assert dm.steps_per_epoch == 1442 // 32
    images, labels = next(iter(dm.train_batches(0)))
    assert images.shape == (32, 3, 32, 32) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and 0 <= labels.min() and labels.max() < 10
    assert -3 < images.mean() < 3 and images.std() > 0.3  # ImageNet-normalised, not raw 0..255


def test_order_and_augmentation_are_a_function_of_seed_and_epoch_and_resume_is_exact(digits_root):
    dm = build(config(digits_root, batch_size=64))
    epoch1 = list(dm.train_batches(1))
    assert len(epoch1) == dm.steps_per_epoch == 22
    resumed = list(build(config(digits_root, batch_size=64)).train_batches(1, start_step=19))
    assert len(resumed) == 3
    for (a, la), (b, lb) in zip(epoch1[19:], resumed):
        assert torch.equal(a, b) and torch.equal(la, lb)
    other_epoch, other_seed = next(iter(dm.train_batches(2))), next(iter(build(config(digits_root, batch_size=64, seed=1)).train_batches(1)))
    assert not torch.equal(other_epoch[0], epoch1[0][0]) and not torch.equal(other_seed[0], epoch1[0][0])


def test_a_pass_can_stop_before_the_end_of_the_epoch(digits_root):
    """``stop_step`` (bench data's warm-up) ends a pass after a prefix of the epoch's batches,
    rather than abandoning it with prefetched batches still being decoded."""
    dm = build(config(digits_root, batch_size=64, workers=2))
    epoch1 = list(dm.train_batches(1))
    part = list(dm.train_batches(1, start_step=3, stop_step=6))
    assert len(part) == 3 and all(torch.equal(a, b) and torch.equal(la, lb) for (a, la), (b, lb) in zip(epoch1[3:6], part))
    assert not list(dm.train_batches(1, stop_step=0))


def test_torch_loader_leaves_the_global_rng_alone(digits_root):
    """A run resumed mid-epoch starts the epoch's DataLoader afresh; were its workers' base seed
    drawn from torch's global generator, every later CPU random number (dropout) and the next
    checkpoint's RNG state would be one draw off the uninterrupted run."""
    dm = build(config(digits_root, batch_size=64, workers=1))
    state = torch.get_rng_state()
    next(iter(dm.train_batches(0, start_step=20)))
    next(iter(dm.val_batches()))
    assert torch.equal(torch.get_rng_state(), state)


def worker_pids() -> set[int]:
    return {p.pid for p in multiprocessing.active_children()}


def test_torch_loader_workers_serve_every_pass_and_end_with_the_module(digits_root):
    """One DataLoader per split keeps its workers from pass to pass (restarting them cost ~0.1 s
    per pass); batches stay a function of (seed, epoch), a pass abandoned half-way leaves
    nothing behind for the next one, and the workers end with the data module."""
    before = worker_pids()
    dm = build(config(digits_root, batch_size=64, workers=2))
    epoch1 = list(dm.train_batches(1))
    train_workers = worker_pids() - before
    assert len(train_workers) == 2
    next(iter(dm.val_batches()))  # abandoned with batches queued
    val = list(dm.val_batches())
    next(iter(dm.train_batches(2)))
    in_process = build(config(digits_root, batch_size=64)).train_batches(1)  # workers=0
    for (a, la), (b, lb), (c, lc) in zip(epoch1, dm.train_batches(1), in_process, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(la, lb) and torch.equal(la, lc)
    assert len(val) == 6 and sum(len(labels) for _, labels in val) == dm.val_size
    assert len(worker_pids() - before) == 4 and train_workers <= worker_pids()
    first = dm.train_batches(3)
    next(first)
    next(dm.train_batches(4))
    with pytest.raises(RuntimeError, match="second pass over the same split"):
        next(first)
    del dm, first
    gc.collect()
    assert not worker_pids() - before


@pytest.mark.parametrize("workers", [0, 2])
def test_a_stale_pass_resumed_takes_nothing_from_the_new_one(digits_root, workers):
    """Resuming a pass after a second pass over the same split started is an error, raised
    before it fetches a batch: the new pass still delivers every one of its batches."""
    dm = build(config(digits_root, batch_size=64, workers=workers))
    first = dm.train_batches(1)
    next(first)
    second = dm.train_batches(2)
    batches = [next(second)]
    with pytest.raises(RuntimeError, match="second pass over the same split"):
        next(first)
    batches += list(second)
    assert len(batches) == dm.steps_per_epoch


# exits with a data module alive and a pass abandoned half-way; prints its worker processes' ids
EXIT_WITH_WORKERS = """
import multiprocessing, sys
from cwn_bench.config import from_dict
from cwn_bench.data import build
dm = build(from_dict({"data": {"root": sys.argv[1], "image_size": 8, "workers": 2}, "train": {"batch_size": 64}}))
next(iter(dm.train_batches(0)))
print(*[p.pid for p in multiprocessing.active_children()])
"""


def test_torch_loader_workers_end_with_the_process(digits_root):
    done = subprocess.run([sys.executable, "-c", EXIT_WITH_WORKERS, str(digits_root)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and not done.stderr, done.stderr
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(pids) == 2 and not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def test_sharding_plans():
    plans = [sharding.train_batches(103, 8, seed=3, epoch=0, rank=r, world_size=3) for r in range(3)]
    flat = [i for plan in plans for batch in plan for i in batch]
    assert [len(p) for p in plans] == [34 // 8] * 3 and len(set(flat)) == len(flat)  # equal steps, disjoint
    vals = [i for r in range(3) for batch in sharding.val_batches(10, 4, r, 3) for i in batch]
    assert vals == list(range(10))  # every val sample once, no padding


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_share_val_exactly_once_and_train_equally(digits_root, world_size):
    full_images, full_labels = concat(build(config(digits_root)).val_batches())
    modules = [build(config(digits_root), rank=r, world_size=world_size) for r in range(world_size)]
    images, labels = zip(*(concat(dm.val_batches()) for dm in modules))
    assert torch.equal(torch.cat(labels), full_labels) and torch.allclose(torch.cat(images), full_images)
    assert {dm.steps_per_epoch for dm in modules} == {(1442 // world_size) // 32}
    firsts = [next(iter(dm.train_batches(0)))[0] for dm in modules]
    assert not torch.equal(firsts[0], firsts[1])


def test_channels_last(digits_root):
    images, _ = next(iter(build(from_dict({"data": {"root": str(digits_root), "image_size": 32, "workers": 0},
                                           "train": {"batch_size": 8, "channels_last": True}})).train_batches(0)))
    assert images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()


def test_mlp_protocol_standardises_every_feature_with_train_statistics(digits_root):
    dm = build(config(digits_root, grayscale=True, normalize="dataset", train_crop="resize", batch_size=64))
    assert dm.in_shape == (1, 32, 32)
    raw = np.stack([np.asarray(Image.open(f).convert("L"), dtype=np.float64) / 255
                    for f in sorted((digits_root / "train").glob("*/*.jpg"))])  # 32x32 already: resize is identity
    mean, std = torch.from_numpy(raw.mean(0)).float(), torch.from_numpy(raw.std(0)).float()
    assert torch.allclose(dm.normalize.mean[0], mean, atol=1e-5)
    assert torch.allclose(1 / dm.normalize.inv_std[0], std.clamp_min(1 / 255), atol=1e-5)
    images, _ = concat(dm.train_batches(0))
    varying = std > 0.05
    assert varying.float().mean() > 0.5
    assert images.mean(0)[0][varying].abs().max() < 0.1 and (images.std(0)[0][varying] - 1).abs().max() < 0.05


def test_synthetic_loader():
    cfg = from_dict({"data": {"loader": "synthetic", "image_size": 16, "synthetic_samples": 64, "num_classes": 5},
                     "train": {"batch_size": 8}})
    dm = build(cfg)
    batches = list(dm.train_batches(0))
    assert len(batches) == dm.steps_per_epoch == 8 and batches[0][0].shape == (8, 3, 16, 16)
    assert int(torch.cat([l for _, l in batches]).max()) < 5
    assert torch.equal(list(dm.train_batches(0, start_step=6))[0][0], batches[6][0])
    assert sum(len(l) for _, l in dm.val_batches()) == dm.val_size == 16


# ----------------------------------------------------------------- CIFAR / SVHN files

def write_cifar_python(root, name, n_per_file):
    rng = np.random.default_rng(0)
    folder, files, key, classes = (("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
                                    b"labels", 10) if name == "cifar10" else
                                   ("cifar-100-python", ["train", "test"], b"fine_labels", 100))
    (root / folder).mkdir(parents=True)
    for f in files:
        batch = {b"data": rng.integers(0, 256, (n_per_file, 3072), dtype=np.uint8),
                 key: rng.integers(0, classes, n_per_file).tolist()}
        with open(root / folder / f, "wb") as out:
            pickle.dump(batch, out)
    return batch


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_python_batches(tmp_path, name):
    last = write_cifar_python(tmp_path, name, 20)
    dm = build(config(tmp_path, name=name, train_crop="pad_crop", batch_size=10))
    n_train = 100 if name == "cifar10" else 20
    assert (dm.train_size, dm.val_size, dm.in_shape) == (n_train, 20, (3, 32, 32))
    images, labels = concat(dm.val_batches())
    key = b"labels" if name == "cifar10" else b"fine_labels"
    assert labels.tolist() == last[key]
    expected = torch.from_numpy(last[b"data"].reshape(-1, 3, 32, 32)).float() / 255  # pad_crop val = whole image
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert torch.allclose(images, (expected - mean) / std, atol=1e-5)


def test_cifar10_binary_and_svhn(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        records = rng.integers(0, 256, (4, 3073), dtype=np.uint8)
        records[:, 0] %= 10
        records.tofile(folder / f"{f}.bin")
    dm = build(config(tmp_path, name="cifar10", train_crop="pad_crop", batch_size=4))
    assert concat(dm.val_batches())[1].tolist() == records[:, 0].tolist()
    svhn = tmp_path / "svhn"
    svhn.mkdir()
    for split in ("train", "test"):
        savemat(svhn / f"{split}_32x32.mat", {"X": rng.integers(0, 256, (32, 32, 3, 6), dtype=np.uint8),
                                             "y": np.array([[10], [1], [2], [3], [4], [5]], dtype=np.uint8)})
    dm = build(config(svhn, name="svhn", train_crop="pad_crop", batch_size=3))
    assert concat(dm.val_batches())[1].tolist() == [0, 1, 2, 3, 4, 5]  # label 10 is the digit 0


@pytest.mark.parametrize("name, missing", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
                                           ("svhn", "train_32x32.mat")])
def test_missing_published_files_name_the_path(tmp_path, name, missing):
    with pytest.raises(UserError, match=missing) as err:
        build(config(tmp_path, name=name))
    assert "nothing is fetched" in str(err.value)


def test_make_dataset_cli(tmp_path, digits_root, capsys):
    from cwn_bench import cli

    out = tmp_path / "jpegs"
    assert cli.main(["make-dataset", "jpegs", str(out), "--size", "40", "--classes", "2", "--per-class", "3"]) == 0
    assert len(list((out / "train").glob("*/*.JPEG"))) == 6 and len(list((out / "val").glob("*/*.JPEG"))) == 2
    with Image.open(next((out / "val").glob("*/*.JPEG"))) as img:
        assert img.format == "JPEG" and img.size == (40, 30)
    assert cli.main(["make-dataset", "digits", str(digits_root)]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("mode, fmt, options", [("RGB", "JPEG", {}), ("RGB", "JPEG", {"progressive": True}),
                                                ("CMYK", "JPEG", {}), ("L", "PNG", {})])
def test_header_size_matches_pil(mode, fmt, options):
    import io

    from cwn_bench.data.images import CorruptImageError, check_encoded, encoded_size

    buf = io.BytesIO()
    Image.new(mode, (37, 21)).save(buf, fmt, **options)
    data = buf.getvalue()
    check_encoded(data, "x")
    assert encoded_size(data, "x") == (37, 21)
    with pytest.raises(CorruptImageError, match="x: unreadable image"):
        check_encoded(data[: len(data) // 2], "x")


def test_dali_is_imported_only_by_the_dali_loader(digits_root):
    """The torch loader works where DALI is absent (e.g. a GPU box without it), and asking
    for DALI there is one clear error."""
    import subprocess
    import sys

    script = f"""
import sys
sys.modules["nvidia.dali"] = None  # as if DALI were not installed
from cwn_bench.config import from_dict
from cwn_bench.data import build
from cwn_bench.errors import UserError
cfg = {{"data": {{"root": {str(digits_root)!r}, "image_size": 8, "workers": 0}}, "train": {{"batch_size": 8}}}}
images, _ = next(iter(build(from_dict(cfg)).train_batches(0)))
assert images.shape == (8, 3, 8, 8)
cfg["data"]["loader"] = "dali"
try:
    build(from_dict(cfg))
except UserError as err:
    print(err)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "data.loader=dali needs NVIDIA DALI" in out.stdout and "data.loader=torch" in out.stdout


def test_file_source_paths_stay_shared_with_forked_workers():
    """A worker reading every path of a Python list writes each str's refcount and copies
    its page (~20 MB here, 167 MB for ImageNet); the numpy buffer stays shared."""
    from cwn_bench.data.sources import FileSource

    n = 200_000
    source = FileSource([f"/data/train/n{i % 1000:08d}/n{i % 1000:08d}_{i}.JPEG" for i in range(n)], [0] * n, False)
    assert source.path(12345) == "/data/train/n00000345/n00000345_12345.JPEG"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: read every path and label, report the pages it had to copy
        for i in range(n):
            source.path(i), int(source.labels[i])
        rollup = Path(f"/proc/{os.getpid()}/smaps_rollup").read_text()
        os.write(write, re.search(r"Private_Dirty:\s+(\d+) kB", rollup).group(1).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    copied_kb = int(os.read(read, 64))
    assert copied_kb < 8 * 1024, f"the worker copied {copied_kb} kB"


def test_a_large_crop_is_decoded_at_reduced_scale_with_the_same_region(tmp_path):
    """data.scaled_decode: a JPEG whose crop spans >= 2x the output is decoded at 1/2, 1/4 or
    1/8 scale (PIL's draft) and the same region resized from it; on a smooth image the pixels
    stay within a few grey levels of the full decode's."""
    import io

    import numpy as np
    from PIL import Image

    from cwn_bench.data.augment import Box
    from cwn_bench.data.images import decode
    from cwn_bench.data.transforms import crop_resize, decode_scale

    assert decode_scale(Box(0, 0, 500, 375, False), 224, 500, 375) == 1  # 375 < 2 x 224
    assert decode_scale(Box(10, 20, 300, 200, False), 64, 500, 375) == 2
    assert decode_scale(Box(0, 0, 500, 375, False), 32, 500, 375) == 8
    assert decode_scale(Box(-4, 0, 500, 375, False), 32, 500, 375) == 1  # reaches outside: padded at full scale
    yy, xx = np.mgrid[0:375, 0:500]
    pixels = np.stack([127 + 100 * np.sin(xx * f + yy * f / 2) for f in (0.01, 0.02, 0.03)], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    crop = Box(37, 51, 401, 300, True)
    full = crop_resize(decode(data, "x.jpg", False), crop, 64).float()
    scale = decode_scale(crop, 64, 500, 375)
    reduced_image = decode(data, "x.jpg", False, scale)
    assert scale == 4 and reduced_image.size == (125, 94)
    reduced = crop_resize(reduced_image, crop, 64, scale).float()
    assert reduced.shape == full.shape == (3, 64, 64)
    assert (reduced - full).abs().mean() < 2.0 and (reduced - full).abs().max() < 24
    shifted = crop_resize(reduced_image, crop._replace(x=crop.x + 40), 64, scale).float()
    assert (shifted - full).abs().mean() > 5 * (reduced - full).abs().mean()  # the region matters


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_a_jpeg_decoded_into_a_tensor_has_pil_s_pixels_and_its_crop_too(mode):
    import io

    from cwn_bench.data.augment import Box
    from cwn_bench.data.images import decode, decode_rgb_jpeg
    from cwn_bench.data.transforms import crop_resize, crop_resize_tensor

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:75, 0:100]
    waves = np.stack([127 + 90 * np.sin(xx * f + yy * f / 3) for f in (0.05, 0.11, 0.2)], -1)
    buf = io.BytesIO()
    Image.fromarray(np.clip(waves + rng.normal(0, 20, waves.shape), 0, 255).astype(np.uint8)).convert(mode).save(
        buf, "JPEG", quality=90)
    data = buf.getvalue()
    pil = decode(data, "x.jpg", False)
    tensor = decode_rgb_jpeg(data, "x.jpg")
    assert tensor.shape == (3, 75, 100) and tensor.dtype == torch.uint8
    assert torch.equal(tensor, torch.from_numpy(np.array(pil)).permute(2, 0, 1))
    for crop in (Box(7, 5, 61, 48, False), Box(0, 0, 100, 75, True), Box(30, 20, 20, 15, True)):  # down, whole, up
        assert torch.equal(crop_resize_tensor(tensor, crop, 32), crop_resize(pil, crop, 32))


def test_a_jpeg_that_libjpeg_rejects_is_an_unreadable_image_named_in_one_line(tmp_path):
    import io

    from cwn_bench.data.images import CorruptImageError, decode_rgb_jpeg

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buf, "JPEG")
    good = buf.getvalue()
    sos = good.index(b"\xff\xda")
    with pytest.raises(CorruptImageError) as err:
        decode_rgb_jpeg(good[:sos + 2] + b"\x00\x01" + good[sos + 4:], "bad.jpg")  # a scan header 1 byte long
    assert str(err.value).startswith("bad.jpg: unreadable image (Bogus marker length)") and "\n" not in str(err.value)
