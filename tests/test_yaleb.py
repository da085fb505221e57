"""Extended Yale B (CroppedYale) read from a folder in the published layout written here
(real binary PGM files), its paper split, and the data.holdout split."""

from __future__ import annotations

import typing

import numpy as np
import pytest
import torch
from PIL import Image

from cwn_bench.config import ModelConfig, load_config
from cwn_bench.data import build, holdout, yaleb
from cwn_bench.data.sources import ArraySource
from cwn_bench.errors import UserError
from cwn_bench.train import run

LIGHTS = [f"P00A{a:+04d}E{e:+03d}" for a in (0, -10, 10, 20, -20) for e in (0, 20, -20)]  # 15 per subject


def write_cropped_yale(root, subjects=(1, 2, 5), size=(21, 24)):
    """``root/yaleBNN/yaleBNN_<light>.pgm`` (P5 PGM, ``size`` = width x height, each subject a
    different grey ramp), one ambient image and one ``.pgm.bad`` per subject, as published."""
    rng = np.random.default_rng(0)
    for s in subjects:
        folder = root / f"yaleB{s:02d}"
        folder.mkdir(parents=True)
        for light in LIGHTS:
            pixels = rng.integers(0, 256, size[::-1], dtype=np.uint8)
            pixels[0, 0] = s  # the subject, readable back from the image
            Image.fromarray(pixels, mode="L").save(folder / f"yaleB{s:02d}_{light}.pgm")
        Image.fromarray(np.zeros(size[::-1], np.uint8), mode="L").save(folder / f"yaleB{s:02d}_P00_Ambient.pgm")
        (folder / f"yaleB{s:02d}_P00A+130E+20.pgm.bad").write_bytes(b"not an image")
    return root


def test_reads_the_published_layout_and_splits_ten_test_images_per_subject(tmp_path):
    root = write_cropped_yale(tmp_path / "CroppedYale")
    train, test, classes = yaleb.load(root, grayscale=True, seed=0)
    assert classes == ["yaleB01", "yaleB02", "yaleB05"]
    assert len(train) == 3 * 5 and len(test) == 3 * 10  # ambient and .bad files skipped
    assert train.images.shape[1:] == (24, 21) and train.images.dtype == np.uint8
    for source in (train, test):  # labels follow the subject folders
        assert [classes.index(f"yaleB{p:02d}") for p in source.images[:, 0, 0]] == source.labels.tolist()
        assert np.bincount(source.labels).tolist() == ([5] * 3 if source is train else [10] * 3)
    assert not (train.images == 0).all(axis=(1, 2)).any()  # no ambient (all-zero) image
    again, other = yaleb.load(root, True, 0)[1], yaleb.load(root, True, 1)[1]
    assert np.array_equal(again.images, test.images) and not np.array_equal(other.images, test.images)


@pytest.mark.parametrize("damage, message", [
    ("missing", "no such folder; expected the CroppedYale folder"),
    ("parent", "no yaleBNN subject folders .*CroppedYale exists: point data.root at it"),
    ("few", "yaleB02: 10 non-ambient .pgm images; expected more than 10"),
    ("corrupt", "yaleB01_P00A\\+000E\\+00.pgm: unreadable PGM image"),
    ("bomb", "yaleB01_P00A\\+000E\\+00.pgm: unreadable PGM image .*decompression bomb"),  # a small file, a huge header
    ("size", "yaleB05_P00A\\+000E\\+00.pgm: 20x24 pixels, but .*yaleB01_P00A\\+000E\\+00.pgm is 21x24"),
])
def test_a_malformed_folder_is_one_line_naming_the_path(tmp_path, damage, message):
    root = write_cropped_yale(tmp_path / "CroppedYale")
    if damage == "missing":
        root = tmp_path / "nowhere"
    elif damage == "parent":
        root = tmp_path
    elif damage == "few":
        for f in sorted((root / "yaleB02").glob("*E+20.pgm")):
            f.unlink()
    elif damage == "corrupt":
        (root / "yaleB01" / "yaleB01_P00A+000E+00.pgm").write_bytes(b"P5\n21 24\n255\n" + b"\0" * 7)
    elif damage == "bomb":
        (root / "yaleB01" / "yaleB01_P00A+000E+00.pgm").write_bytes(b"P5\n10000 10000\n255\n" + b"\0" * 7)
    else:
        Image.fromarray(np.zeros((24, 20), np.uint8), mode="L").save(root / "yaleB05" / "yaleB05_P00A+000E+00.pgm")
    with pytest.raises(UserError, match=message) as err:
        yaleb.load(root, True, 0)
    assert "\n" not in str(err.value)


def test_holdout_split_sizes_disjointness_and_seed():
    source = ArraySource(np.zeros((200, 2, 2, 3), np.uint8), np.arange(200), grayscale=False)
    train, held = holdout.split(source, 0.05, seed=3)
    assert (len(train), len(held)) == (190, 10)
    assert sorted(train.labels.tolist() + held.labels.tolist()) == list(range(200))  # disjoint, nothing lost
    assert held.labels.tolist() == holdout.split(source, 0.05, 3)[1].labels.tolist()
    assert held.labels.tolist() != holdout.split(source, 0.05, 4)[1].labels.tolist()
    for bad in (0.0, 1.0, 0.001):
        with pytest.raises(UserError, match=f"data.holdout={bad}: expected a fraction in"):
            holdout.split(source, bad, 0)


def test_holdout_of_a_folder_dataset_through_build(digits_root):
    cfg = load_config("configs/mlp_digits.yaml", [f"data.root={digits_root}", "data.holdout=0.05", "train.device=cpu"])
    data = build(cfg)
    assert (data.train_size, data.holdout_size, data.val_size) == (1442 - 72, 72, 355)
    held = [p for p in data.holdout_source._paths]
    assert not set(held) & set(data.train_source._paths)
    images, labels = zip(*data.holdout_batches())
    assert sum(len(x) for x in labels) == 72 and images[0].shape[1:] == (1, 8, 8)
    assert data.splits == {"holdout_size": 72, "split_seeds": {"holdout": 0}}


@pytest.mark.slow
@pytest.mark.skipif("nnn" not in typing.get_args(typing.get_type_hints(ModelConfig)["method"]),
                    reason="configs/mlp_yaleb.yaml sweeps model.method nnn, which comes with issue 11 part A")
@pytest.mark.parametrize("method", ["plain", "cwn"])
def test_the_yaleb_config_trains_with_probes_on_a_published_layout_folder(tmp_path, method):
    root = write_cropped_yale(tmp_path / "CroppedYale", subjects=range(1, 9), size=(42, 48))
    cfg = load_config("configs/mlp_yaleb.yaml", [f"data.root={root}", f"model.method={method}", "train.epochs=2",
                                                 "train.device=cpu", "train.batch_size=8", "train.probe_every=2",
                                                 "train.fim_every=2"])
    assert run(cfg, tmp_path / "run") == "completed"
    text = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"kind": "probe"' in text and '"kind": "fim"' in text and '"holdout_top1_err"' in text
    assert torch.load(sorted((tmp_path / "run" / "checkpoints").glob("*.pt"))[-1], weights_only=True)["epoch"] == 2


def test_the_cli_says_one_line_for_a_wrong_yaleb_root(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "cwn_bench.cli", "train", "configs/mlp_digits.yaml", "data.name=yaleb",
                           f"data.root={tmp_path}", "train.device=cpu", "--run-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"cwn-bench train: error: {tmp_path}: no yaleBNN subject folders; expected the CroppedYale folder of the Extended Yale Face Database "
        "B: ROOT/yaleBNN/yaleBNN_P00A+AAAE+EE.pgm, one folder per subject (38), 64 PGM images each"]
