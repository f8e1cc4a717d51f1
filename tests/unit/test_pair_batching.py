"""benchmarks/pair_batching on a small run directory (a tiny reranker, starter problems and
pairs of their references against wrong bodies): both orders train on the same pairs and the
grouped one pads less."""

from __future__ import annotations

import shutil
from pathlib import Path


def small_run(tiny_model_dir, tmp_path: Path) -> Path:
    from coderanker.jsonl import write_jsonl
    from coderanker.reranker import init_reranker
    from coderanker.sources import starter

    run = tmp_path / "run"
    init_reranker(tiny_model_dir, run / "models/seed/reranker")
    shutil.copy(Path(__file__).resolve().parents[2] / "configs/tiny.yaml", run / "params.yaml")
    problems = starter("train")[:12]
    write_jsonl(run / "data/problems/train.jsonl", [p.to_record() for p in problems])
    wrong = ["    return None\n", "    pass\n", "    return 0\n" * 8]
    write_jsonl(run / "data/r2/pairs/pairs.jsonl",
                [{"name": p.name, "round": "r2", "kind": "pair", "chosen": p.reference, "rejected": body}
                 for p in problems for body in wrong])
    return run


def test_both_orders_train_the_same_pairs_and_grouping_pads_less(tiny_model_dir, tmp_path, capsys, monkeypatch):
    from benchmarks.pair_batching.run import main

    run = small_run(tiny_model_dir, tmp_path)
    monkeypatch.chdir(tmp_path)
    main(["--run", str(run), "--pairs", "32"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("32 of r2's training pairs")
    shares = {line.split(":")[0].strip(): float(line.split(", ")[1].split("%")[0]) for line in lines[1:3]
              if line.strip().startswith(("shuffled:", "grouped:"))}
    assert set(shares) == {"shuffled", "grouped"} and shares["grouped"] < shares["shuffled"]
    assert lines[-1].startswith("group_by_length: ") and lines[-1].endswith("x the pairs/s of shuffled batches")
