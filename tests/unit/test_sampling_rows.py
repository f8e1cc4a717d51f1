"""benchmarks/sampling_rows on a small run directory (a tiny random policy, the tiny profile,
a few starter eval problems): one line per batch size, every one sampling the same count."""

from __future__ import annotations

import shutil
from pathlib import Path


def test_each_batch_size_samples_the_problems(tiny_model_dir, tmp_path, capsys):
    from benchmarks.sampling_rows.run import main
    from coderanker.jsonl import write_jsonl
    from coderanker.sources import starter

    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "models/r0/policy")
    shutil.copy(Path(__file__).resolve().parents[2] / "configs/tiny.yaml", run / "params.yaml")
    write_jsonl(run / "data/problems/eval-starter.jsonl", [p.to_record() for p in starter("eval")[:3]])
    main(["--run", str(run), "--problems", "3", "--samples", "2", "--batch-sizes", "2", "6", "--repeats", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("r0's policy, 3 eval-starter problems x 2 samples")
    rows = [line for line in lines if line.startswith(("batch 2:", "batch 6:")) and "samples/s," in line]
    assert len(rows) == 2
    assert lines[-1].startswith("batch 6: ") and lines[-1].endswith("x the samples/s of batch 2")
