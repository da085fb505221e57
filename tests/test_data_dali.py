"""The DALI loader, CPU-only (no GPU here; the ``mixed`` nvJPEG path runs only on a GPU box
with DALI installed): same samples, crops, order and resume as the torch loader."""

import pytest
import torch

from cwn_bench.config import from_dict
from cwn_bench.data import build
from cwn_bench.errors import UserError

pytest.importorskip("nvidia.dali")


def config(root, loader, **data):
    return from_dict({"seed": 5, "data": {"root": str(root), "loader": loader, "image_size": 32, "workers": 2, **data},
                      "train": {"batch_size": 64}})


def concat(batches):
    images, labels = zip(*batches)
    return torch.cat(images), torch.cat(labels)


@pytest.fixture(scope="module")
def both(digits_root):
    """Epoch 3 and the val pass from each loader, random-resized crops of 32 px images."""
    out = {}
    for loader in ("torch", "dali"):
        dm = build(config(digits_root, loader, resize_size=36))
        out[loader] = dm, list(dm.train_batches(3)), concat(dm.val_batches())
    return out


def test_dali_delivers_the_torch_loaders_samples_and_crops(both):
    (tdm, ttrain, tval), (ddm, dtrain, dval) = both["torch"], both["dali"]
    assert (ddm.num_classes, ddm.in_shape, ddm.steps_per_epoch) == (tdm.num_classes, tdm.in_shape, tdm.steps_per_epoch)
    assert len(dtrain) == len(ttrain) == 22
    for (ti, tl), (di, dl) in zip(ttrain, dtrain):
        assert torch.equal(tl, dl) and di.shape == ti.shape
        # same crop boxes and mirror flags; PIL and DALI resample slightly differently (in std units)
        assert (ti - di).abs().mean() < 0.02
    assert torch.equal(tval[1], dval[1]) and (tval[0] - dval[0]).abs().mean() < 0.02


def test_dali_resume_is_exact_and_val_shards_cover_once(both, digits_root):
    _, full, val = both["dali"]
    resumed = list(build(config(digits_root, "dali", resize_size=36)).train_batches(3, start_step=20))
    assert len(resumed) == 2
    for (a, la), (b, lb) in zip(full[20:], resumed):
        assert torch.equal(a, b) and torch.equal(la, lb)
    shards = [concat(build(config(digits_root, "dali", resize_size=36), rank=r, world_size=3).val_batches())
              for r in range(3)]
    assert torch.equal(torch.cat([labels for _, labels in shards]), val[1])
    assert torch.equal(torch.cat([images for images, _ in shards]), val[0])


def test_dali_mlp_protocol_matches_torch_statistics(digits_root):
    dms = [build(config(digits_root, loader, grayscale=True, normalize="dataset", train_crop="resize"))
           for loader in ("torch", "dali")]
    assert dms[1].in_shape == (1, 32, 32)
    assert torch.allclose(dms[0].normalize.mean, dms[1].normalize.mean, atol=1e-4)
    assert torch.allclose(dms[0].normalize.inv_std, dms[1].normalize.inv_std, rtol=1e-3)
    images, _ = next(iter(dms[1].train_batches(0)))
    assert images.shape == (64, 1, 32, 32)


def test_dali_reads_in_memory_cifar_like_torch(tmp_path):
    from test_data import write_cifar_python

    write_cifar_python(tmp_path, "cifar10", 20)
    cfgs = [from_dict({"data": {"name": "cifar10", "root": str(tmp_path), "loader": loader, "image_size": 32,
                                "train_crop": "pad_crop", "workers": 1}, "train": {"batch_size": 10}})
            for loader in ("torch", "dali")]
    (ti, tl), (di, dl) = (concat(build(cfg).train_batches(0)) for cfg in cfgs)
    assert torch.equal(tl, dl) and torch.allclose(ti, di, atol=1e-5)  # same 4-px shifts, flips and zero padding


def test_bench_data_alternates_loaders_and_writes_their_ratio(digits_root, tmp_path):
    import json

    from cwn_bench.bench.data import run_data

    out = tmp_path / "data.jsonl"
    rows = run_data(digits_root, ["dali", "torch"], out, batch_size=128, reps=2, image_size=32, warmup=0)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["kind"] == "env" and lines[1:5] == rows
    assert [r["loader"] for r in rows] == ["dali", "torch", "dali", "torch"]
    assert all(r["images"] == 11 * 128 and r["skipped"] == 0 and r["img_per_s"] > 0 and r["cpu_ms_per_img"] > 0
               for r in rows)
    ratios = [rows[0]["img_per_s"] / rows[1]["img_per_s"], rows[2]["img_per_s"] / rows[3]["img_per_s"]]
    assert lines[5]["kind"] == "data_ratio" and lines[5]["ratio"] == pytest.approx(sum(ratios) / 2)


@pytest.mark.parametrize("crop", ["pad_crop", "resize_crop"])
def test_dali_matches_torch_for_the_other_crops(digits_root, crop):
    (ti, tl), (di, dl) = (next(iter(build(config(digits_root, loader, train_crop=crop, grayscale=True,
                                                 resize_size=40)).train_batches(2))) for loader in ("torch", "dali"))
    assert torch.equal(tl, dl) and ti.shape == di.shape == (64, 1, 32, 32)
    assert (ti - di).abs().mean() < 0.02


@pytest.mark.timeout(120)
def test_torch_workers_start_after_a_failed_dali_pass_in_the_same_process(digits_root, tmp_path, monkeypatch):
    """A DALI pass that stopped at a corrupt file can leave its pipeline in cyclic garbage
    (exception -> traceback -> frames -> pipeline); a torch worker forked while it was
    uncollected, whose collector then finalised the inherited pipeline, waited forever in
    its __del__ for DALI's threads. Here the garbage is made sure to outlive the fork (the
    automatic collector off) and the workers collect at every batch, as a long-running
    worker eventually does."""
    import gc
    import shutil

    from cwn_bench.data import torch_loader

    collate = torch_loader._collate
    monkeypatch.setattr(torch_loader, "_collate", lambda items: (gc.collect(), collate(items))[1])
    root = tmp_path / "root"
    shutil.copytree(digits_root, root)
    bad = next((root / "train" / "1").glob("*.jpg"))
    bad.write_bytes(b"not an image")
    gc.disable()
    try:
        try:
            list(build(config(root, "dali")).train_batches(0))
        except UserError as err:
            cycle = [err, str(err)]
            cycle.append(cycle)
        assert str(bad) in cycle[1]
        del cycle  # garbage now, uncollected
        torch_data = build(config(digits_root, "torch"))
        assert sum(len(labels) for _, labels in torch_data.val_batches()) == torch_data.val_size
    finally:
        gc.enable()
