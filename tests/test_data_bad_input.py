"""Bad input through the real loaders (torch and DALI): a clear error naming the path or file,
no traceback from the CLI, or with data.skip_corrupt the file skipped and counted."""

import shutil
import socket
import subprocess
import sys

import pytest
import torch

from cwn_bench import cli
from cwn_bench.config import from_dict
from cwn_bench.data import build
from cwn_bench.errors import UserError

LOADERS = ["torch", "dali"]


@pytest.fixture
def small_root(digits_root, tmp_path):
    """2 classes x 8 train images, 2 x 4 val images copied from the digits folder."""
    root = tmp_path / "small"
    for split, n in (("train", 8), ("val", 4)):
        for label in ("0", "1"):
            (root / split / label).mkdir(parents=True)
            for f in sorted((digits_root / split / label).glob("*.jpg"))[:n]:
                shutil.copy(f, root / split / label / f.name)
    return root


def config(root, loader, **data):
    return from_dict({"data": {"root": str(root), "loader": loader, "image_size": 32, "workers": 1, **data},
                      "train": {"batch_size": 4}})


def epoch(root, loader, **data):
    dm = build(config(root, loader, **data))
    return dm, [len(labels) for _, labels in dm.train_batches(0)]


@pytest.mark.parametrize("loader", LOADERS)
def test_layout_errors_name_the_path(small_root, loader, tmp_path):
    with pytest.raises(UserError, match=f"{tmp_path / 'absent'}: no such folder; expected .*ImageNet layout"):
        build(config(tmp_path / "absent", loader))
    (small_root / "train" / "2").mkdir()
    with pytest.raises(UserError, match=f"{small_root / 'train' / '2'}: empty class folder"):
        build(config(small_root, loader))
    (small_root / "train" / "2").rmdir()
    shutil.rmtree(small_root / "val")
    with pytest.raises(UserError, match=f"{small_root / 'val'}: no such folder"):
        build(config(small_root, loader))


@pytest.mark.parametrize("loader", LOADERS)
def test_fewer_samples_than_ranks(small_root, loader):
    with pytest.raises(UserError, match="16 samples, fewer than the 20 ranks"):
        build(config(small_root, loader), rank=0, world_size=20)
    with pytest.raises(UserError, match="no full batch of 4 on each of 5 rank"):
        build(config(small_root, loader), rank=0, world_size=5)


def make_corrupt(root, kind, split="train"):
    path = root / split / "1" / "bad.jpg"
    good = sorted((root / split / "1").glob("*.jpg"))[0].read_bytes()
    if kind == "text":
        path.write_text("this is not an image\n")
    elif kind == "bomb":  # a decompression bomb: a small, complete JPEG whose frame header says 60000x60000
        sof = good.index(b"\xff\xc0")
        path.write_bytes(good[:sof + 5] + (60000).to_bytes(2, "big") * 2 + good[sof + 9:])
    else:  # a real JPEG cut in half
        path.write_bytes(good[: len(good) // 2])
    return path


@pytest.mark.parametrize("kind", ["text", "truncated", "bomb"])
@pytest.mark.parametrize("loader", LOADERS)
def test_corrupt_file_is_named_or_skipped_and_counted(small_root, loader, kind):
    bad = make_corrupt(small_root, kind)
    with pytest.raises(UserError, match=f"{bad}: unreadable image .*data.skip_corrupt=true"):
        epoch(small_root, loader)
    dm, sizes = epoch(small_root, loader, skip_corrupt=True)
    assert sizes == [4] * 4 and dm.skipped == 1  # 17 files -> 4 full batches; bad.jpg replaced by its neighbour


# one rank of a two-process gloo group building data.normalize=dataset over argv[1]; prints the UserError
BUILD_RANK = """
import datetime, sys
import torch.distributed as dist
from cwn_bench.config import from_dict
from cwn_bench.data import build
from cwn_bench.errors import UserError
root, rank, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                        timeout=datetime.timedelta(seconds=60))
try:
    build(from_dict({"data": {"root": root, "image_size": 8, "workers": 0, "normalize": "dataset"},
                     "train": {"batch_size": 4}}), rank, 2)
except UserError as err:
    print(err)
finally:  # as training's distributed.shutdown: a group left to the interpreter's exit may abort
    dist.destroy_process_group()
"""


def test_an_unreadable_file_in_one_rank_s_statistics_share_stops_every_rank(small_root):
    """Each rank decodes a share of the train split for the dataset statistics; the rank that
    meets bad.jpg (the 17th file: rank 0's third batch) must not leave the other waiting in
    the all_reduce: both stop with the message naming the file."""
    bad = make_corrupt(small_root, "truncated")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    procs = [subprocess.Popen([sys.executable, "-c", BUILD_RANK, str(small_root), str(rank), port], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for rank in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and out.startswith(f"{bad}: unreadable image"), err[-2000:]


@pytest.mark.parametrize("loader", LOADERS)
def test_a_skipped_file_is_not_read_again(small_root, loader):
    """skip_corrupt remembers an unreadable file (DALI: in the main process; torch: in the val
    split's one persistent worker) and passes over it unread in later passes, with the same
    count and replacement. The file is mended after the first pass: only a re-read would see it."""
    bad = make_corrupt(small_root, "truncated", split="val")
    dm = build(config(small_root, loader, skip_corrupt=True))
    first = list(dm.val_batches())
    assert dm.skipped == 1
    shutil.copy(sorted((small_root / "val" / "1").glob("*.jpg"))[0], bad)
    again = list(dm.val_batches())
    assert dm.skipped == 2
    assert all(torch.equal(a, b) and torch.equal(la, lb) for (a, la), (b, lb) in zip(first, again, strict=True))
    mended = build(config(small_root, loader, skip_corrupt=True))
    assert sum(len(labels) for _, labels in mended.val_batches()) == 9 and mended.skipped == 0


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("kind", ["truncated", "bomb"])
def test_bench_data_reports_bad_input_in_one_line(small_root, loader, tmp_path, capsys, kind):
    bad = make_corrupt(small_root, kind)
    out = tmp_path / "bench.jsonl"
    args = ["bench", "data", str(small_root), "--loader", loader, "--batch-size", "4", "--image-size", "32",
            "--warmup", "0", "--out", str(out)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cwn-bench bench: error: ") and str(bad) in err and "Traceback" not in err
    assert cli.main(args[:-2] + ["--skip-corrupt", "--out", str(tmp_path / "ok.jsonl")]) == 0
    assert '"skipped": 1' in (tmp_path / "ok.jsonl").read_text().splitlines()[-1]
