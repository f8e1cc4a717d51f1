"""benchmarks/reranker_seeds on a small run directory: its retraining reproduces the
train_reranker stage's reranker at the stage's seed, its line for the run's own seed is the
evaluate stage's shared-pool comparison (and a metrics file that disagrees is refused), and
another seed trains rerankers of its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

WRONG = ["    return None\n", "    pass\n", "    return 0\n" * 4]


def small_run(tiny_model_dir, tmp_path: Path) -> Path:
    from coderanker.jsonl import write_jsonl
    from coderanker.reranker import init_reranker
    from coderanker.sources import starter

    run = tmp_path / "run"
    init_reranker(tiny_model_dir, run / "models/seed/reranker")
    shutil.copytree(tiny_model_dir, run / "models/seed/policy")
    params = (Path(__file__).resolve().parents[2] / "configs/tiny.yaml").read_text()
    (run / "params.yaml").write_text(params.replace("epochs: 3.0", "epochs: 1.0", 1))
    train, evaluation = starter("train")[:6], starter("eval")[:4]
    write_jsonl(run / "data/problems/train.jsonl", [p.to_record() for p in train])
    write_jsonl(run / "data/problems/eval-starter.jsonl", [p.to_record() for p in evaluation])
    pairs = {round_id: [{"name": p.name, "round": round_id, "kind": "pair", "chosen": p.reference, "rejected": body}
                        for p in train[start::2] for body in WRONG] for start, round_id in enumerate(("r1", "r2"))}
    write_jsonl(run / "data/r1/pairs/pairs.jsonl", pairs["r1"])
    write_jsonl(run / "data/r2/pairs/pairs.jsonl", pairs["r1"] + pairs["r2"])
    # r0's pool: each problem's reference passes, wrong bodies fail (one problem without a choice)
    pool = [{"name": p.name, "sample": i, "completion": body, "response": body,
             "status": "passed" if body == p.reference or p is evaluation[-1] else "failed"}
            for p in evaluation for i, body in enumerate([p.reference, *WRONG])]
    write_jsonl(run / "data/r0/results/eval-starter.jsonl", pool)
    return run


def stage_reranker(run: Path, round_id: str, monkeypatch) -> Path:
    """models/<round>/reranker as the train_reranker stage makes it."""
    from pipelines.train_reranker import main

    monkeypatch.chdir(run)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{run / 'mlflow.db'}")
    main(["--problems", "data/problems", "--pairs", f"data/{round_id}/pairs", "--seed-reranker",
          "models/seed/reranker", "--previous-reranker", "models/seed/reranker", "--policy", "models/seed/policy",
          "--round", round_id, "--out", f"models/{round_id}/reranker"])
    return run / f"models/{round_id}/reranker"


def scores(reranker: Path, run: Path) -> list[float]:
    from coderanker.jsonl import read_jsonl
    from coderanker.problems import by_name, load_problems
    from coderanker.reranker import Reranker

    problems = by_name(load_problems(run / "data/problems/eval-starter.jsonl"))
    pool = read_jsonl(run / "data/r0/results/eval-starter.jsonl")
    return Reranker.load(str(reranker)).score_candidates(problems, pool)


def test_seeds_retrain_as_the_stage_and_compare_as_evaluate(tiny_model_dir, tmp_path, capsys, monkeypatch):
    from benchmarks.reranker_seeds.run import main, train_round
    from coderanker.config import load_params, section
    from coderanker.evaluation import compare_on_shared_pool
    from coderanker.generation import SamplingConfig
    from coderanker.runtime import Placement, training_dtype
    from coderanker.training.ray_train import RayTrainConfig
    from coderanker.training.reward import RerankerTrainConfig

    run = small_run(tiny_model_dir, tmp_path)
    committed = {round_id: stage_reranker(run, round_id, monkeypatch) for round_id in ("r1", "r2")}
    params = load_params(run / "params.yaml")
    config, ray_config = section(params, "reranker", RerankerTrainConfig), section(params, "ray", RayTrainConfig)
    again = train_round(run, "r2", None, config, ray_config, training_dtype(params, ray_config), tmp_path / "again")
    assert scores(again, run) == scores(committed["r2"], run)
    assert json.loads((again / "coderanker.json").read_text()) == json.loads(
        (committed["r2"] / "coderanker.json").read_text())

    # as the evaluate stage compares them: its placement and pool
    shared = compare_on_shared_pool(run / "data/problems", run / "data/r0/results", "starter", committed["r2"],
                                    committed["r1"], config, Placement.from_params(params),
                                    pool=section(params, "sample", SamplingConfig).eval_pool_size)
    assert shared["problems"] == 4 and shared["problems_with_choice"] == 3
    (run / "metrics").mkdir()
    (run / "metrics/r2.json").write_text(json.dumps({"shared_pool": {**shared, "difference_vs_previous": 0.5}}))
    with pytest.raises(SystemExit, match="metrics/r2.json: shared_pool.difference_vs_previous 0.5"):
        main(["--run", str(run), "--seeds"])
    (run / "metrics/r2.json").write_text(json.dumps({"shared_pool": shared}))
    capsys.readouterr()
    main(["--run", str(run), "--seeds", "1"])
    # the figures (the Ray Train workers' trainer logs go to the same stdout)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("seed ", "r2 - r1 "))]
    assert len(lines) == 3
    difference = shared["difference_vs_previous"]
    assert lines[0].startswith(f"seed 0 (the run): r2 {shared['reranked_pass@1']:.3f} vs r1 "
                               f"{shared['previous_reranked_pass@1']:.3f} on starter's r0 pool (4 problems, 3 with a "
                               f"choice, 12 samples scored): r2 - r1 {difference:+.3f} [")
    assert lines[1].startswith("seed 1: r2 ") and "r2 - r1 " in lines[1]
    assert lines[2].startswith("r2 - r1 over 2 seeds: mean ")
    for round_id in ("r1", "r2"):
        retrained = run / f"reranker_seeds/seed-1/{round_id}"
        assert (retrained / "train_metrics.json").is_file()
        assert scores(retrained, run) != scores(committed[round_id], run)  # another order of the same pairs
