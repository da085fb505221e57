"""`cwn-bench bench step` on CPU: googlenet_bn at a tiny batch and image size."""

import json

from cwn_bench import cli


def test_step_bench_writes_img_per_s_and_ratio_per_batch(tmp_path, capsys):
    out = tmp_path / "step.jsonl"
    assert cli.main(["bench", "step", "--batch-sizes", "2", "--image-size", "64", "--dtype", "fp32", "--device", "cpu",
                     "--reps", "1", "--warmup", "0", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["kind"] == "env" and rows[0]["bench"] == "step" and rows[0]["model"]
    plain, cwn = rows[1:]
    assert (plain["variant"], cwn["variant"]) == ("plain", "cwn")
    for row in (plain, cwn):
        assert row["kind"] == "measurement" and row["batch"] == 2 and row["shape"] == "googlenet_bn:2x3x64x64"
        assert row["img_per_s"] == 2 / row["median_ms"] * 1e3 and row["memory_format"] == "nhwc"
    assert plain["ratio_vs_plain"] == 1.0 and cwn["ratio_vs_plain"] > 0
    assert "img_per_s" in capsys.readouterr().out


def test_step_bench_rejects_a_tiny_image(tmp_path, capsys):
    assert cli.main(["bench", "step", "--image-size", "8", "--device", "cpu", "--out", str(tmp_path / "s.jsonl")]) == 2
    assert "--image-size >= 32" in capsys.readouterr().err


def test_step_bench_refuses_cuda_graphs_on_a_cpu(tmp_path, capsys):
    assert cli.main(["bench", "step", "--cuda-graph", "--device", "cpu", "--out", str(tmp_path / "s.jsonl")]) == 2
    assert "--cuda-graph needs a CUDA device" in capsys.readouterr().err
