"""`coderanker profile use tiny && dvc repro` in a fresh copy of the repository: three
self-training rounds with real TRL training on Ray, DVC versioning and MLflow tracking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..helpers import sh

pytestmark = pytest.mark.e2e
ROUNDS = ("r0", "r1", "r2")
STAGES = ("ppo", "sample", "execute", "mine", "train_reranker", "evaluate")


def metrics(repo: Path, round_id: str) -> dict:
    return json.loads((repo / "metrics" / f"{round_id}.json").read_text())


def test_every_round_writes_design_metrics(tiny_repo):
    for round_id in ROUNDS:
        m = metrics(tiny_repo, round_id)
        assert m["round"] == round_id and m["eval"] == m["eval_sets"]["starter"]
        for name, problems in (("starter", 6), ("humaneval", 3)):
            block = m["eval_sets"][name]
            # 3 samples and the planted reference (a random model solves nothing)
            assert block["problems"] == problems and block["samples_per_problem"] == 4
            assert block["pool_size"] == 3  # sample.eval_pool_size: figures over every pool of 3 of the 4
            for key in ("pass@1", "greedy_pass@1", "oracle_pass@n", "reranked_pass@1", "truncation_rate"):
                assert 0.0 <= block[key] <= 1.0
        languages = m["languages"]  # both sets are Python: one row pooling their 9 problems
        assert list(languages) == ["py", "average"] and languages["average"] == languages["py"]
        assert (languages["py"]["sets"], languages["py"]["problems"]) == ("starter,humaneval", 9)
        assert m["train"]["pairs"] > 0
        assert set(m["seconds"]) == {"ppo", "sample", "execute", "mine", "train_reranker", "evaluate"}
    assert metrics(tiny_repo, "r0")["train"]["hard_negatives"] == 0
    assert metrics(tiny_repo, "r1")["train"]["hard_negatives"] > 0
    assert metrics(tiny_repo, "r2")["train"]["pairs"] >= metrics(tiny_repo, "r1")["train"]["pairs"]


def test_eval_figures_are_numbers_in_every_round(tiny_repo):
    for round_id in ROUNDS:
        block = metrics(tiny_repo, round_id)["eval"]
        for key in ("reranker_auc", "reranker_pairwise_acc", "reranked_pass@1", "reranked_gain", "gap_closed",
                    "top1_hit_rate", "top1_chance", "top2_hit_rate", "pruned_reranked_pass@1", "pruned_pass@1",
                    "consensus_pass@1", "consensus_gain", "reranked_minus_consensus"):
            assert isinstance(block[key], float), (round_id, key, block[key])
        for key in ("reranked_gain_ci95", "reranker_pairwise_acc_ci95", "reranked_minus_greedy_ci95",
                    "consensus_gain_ci95", "reranked_minus_consensus_ci95"):
            low, high = block[key]
            assert low <= high, (round_id, key)
        assert block["problems_with_choice"] == 6
        pool = metrics(tiny_repo, round_id)["shared_pool"]
        assert pool["problems"] == 6 and isinstance(pool["difference_vs_previous"], float)
        assert len(pool["difference_vs_previous_ci95"]) == 2


def test_the_reranker_ranks_unseen_problems_above_chance(tiny_repo):
    """Eval problems are never trained on: their pairs (the planted reference against the
    random model's samples) are new to every round's reranker."""
    for round_id in ROUNDS:
        block = metrics(tiny_repo, round_id)["eval"]
        assert block["reranker_pairwise_acc"] >= 0.7, (round_id, block)
        assert block["top1_hit_rate"] > block["top1_chance"], (round_id, block)


def test_reranker_learns_its_training_pairs(tiny_repo):
    for round_id in ROUNDS:
        trained = json.loads((tiny_repo / "models" / round_id / "reranker" / "train_metrics.json").read_text())
        assert trained["train_pair_accuracy_after"] >= 0.8, trained
        assert trained["train_pair_accuracy_after"] > trained["train_pair_accuracy_before"]
        assert trained["train_loss_after"] < trained["train_loss_before"]


def test_ppo_moves_the_policy_and_raises_its_reward(tiny_repo):
    assert not (tiny_repo / "models" / "r0" / "policy" / "train_metrics.json").exists()  # bootstrap round
    for round_id in ("r1", "r2"):
        ppo = json.loads((tiny_repo / "models" / round_id / "policy" / "train_metrics.json").read_text())
        assert ppo["steps"] >= 10 and ppo["kl_mean"] > 0, ppo
        assert ppo["reward_after"] > ppo["reward_before"], ppo


def test_hard_negatives_are_failing_candidates_only(tiny_repo):
    pairs = [json.loads(line) for line in (tiny_repo / "data" / "r2" / "pairs" / "pairs.jsonl").open()]
    hard = [p for p in pairs if p["kind"] == "hard_negative"]
    assert hard and all(p["rejected_status"] not in ("passed", "sandbox_error") for p in hard)
    assert all(p["rejected_status"] != "passed" for p in pairs)


def test_outputs_are_versioned_by_dvc_and_a_second_repro_runs_nothing(tiny_repo):
    lock = (tiny_repo / "dvc.lock").read_text()
    for stage in ("prepare_models", "prepare_data", *(f"{s}@{r}" for s in STAGES for r in ROUNDS)):
        assert f"{stage}:" in lock
    shown = sh(["dvc", "metrics", "show"], tiny_repo)
    assert "metrics/r2.json" in shown and "reranked_pass@1" in shown
    assert "Running stage" not in sh(["dvc", "repro"], tiny_repo)


def test_mlflow_holds_nested_runs_and_the_champion(tiny_repo):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tiny_repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("coderanker")
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    kinds = {}
    for run in runs:
        kinds.setdefault(run.data.tags.get("coderanker.kind"), []).append(run)
    (parent,) = kinds["pipeline"]
    assert parent.info.status == "FINISHED"
    rounds = {r.data.tags["coderanker.round"]: r for r in kinds["round"]}
    assert set(rounds) == set(ROUNDS)
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in rounds.values())
    stages = kinds["stage"]
    assert {(s.data.tags["coderanker.stage"], s.data.tags["coderanker.round"]) for s in stages} == {
        (s, r) for s in STAGES for r in ROUNDS}
    for stage in stages:
        assert stage.data.tags["mlflow.parentRunId"] == rounds[stage.data.tags["coderanker.round"]].info.run_id
        assert stage.data.tags["coderanker.git_commit"] != "unknown"
    train = next(s for s in stages if s.data.tags["coderanker.stage"] == "train_reranker")
    assert len(client.get_metric_history(train.info.run_id, "loss")) >= 2  # a curve, not a point
    evaluate = next(s for s in stages if s.data.tags["coderanker.stage"] == "evaluate")
    artifacts = {a.path for a in client.list_artifacts(evaluate.info.run_id, "plots")}
    assert {"plots/pass_at_1.png", "plots/scores_starter.png"} <= artifacts
    # (MlflowClient.load_table searches runs through the fluent API's tracking URI, not the client's)
    table = json.loads(Path(client.download_artifacts(evaluate.info.run_id, "tables/pass_at_1_by_language.json"))
                       .read_text())
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert [(r["language"], r["problems"]) for r in rows] == [("py", 9), ("average", 9)]
    versions = client.search_model_versions("name='coderanker-reranker'")
    assert len(versions) == 3
    # The champion moves only on evidence: each evaluate run logs its decision and figures,
    # and a version is promoted exactly when its interval's low end is above 0.
    evaluates = {s.data.tags["coderanker.round"]: s for s in stages if s.data.tags["coderanker.stage"] == "evaluate"}
    promoted = []
    for round_id, run in sorted(evaluates.items()):
        low = run.data.metrics.get("promotion.gain_ci95_low")
        assert run.data.tags["coderanker.promotion_why"], round_id
        assert (run.data.tags["coderanker.promotion"] == "promoted") == (low is not None and low > 0), round_id
        if run.data.tags["coderanker.promotion"] == "promoted":
            promoted.append(run.data.tags["coderanker.reranker_version"])
        evidence = client.download_artifacts(run.info.run_id, "evidence/eval.json")
        assert len(json.loads(Path(evidence).read_text())["top1_pass"]) == 6
    # r0's reranker picks the planted reference on every problem: significantly above random.
    assert promoted and promoted[0] == evaluates["r0"].data.tags["coderanker.reranker_version"]
    champion = client.get_model_version_by_alias("coderanker-reranker", "champion")
    assert str(champion.version) == promoted[-1]


def test_every_round_s_reranker_carries_the_likelihood_prior(tiny_repo):
    """The tiny profile sets reranker.likelihood_weight: each trained reranker holds the seed
    policy and names the weight, so mining, evaluation and `coderanker rerank` add the prior."""
    from coderanker.reranker import LIKELIHOOD_POLICY, read_meta

    seed = tiny_repo / "models" / "seed" / "policy" / "model.safetensors"
    for round_id in ROUNDS:
        reranker = tiny_repo / "models" / round_id / "reranker"
        assert read_meta(reranker)["likelihood_weight"] == 0.001
        assert (reranker / LIKELIHOOD_POLICY / "model.safetensors").read_bytes() == seed.read_bytes()
    assert "likelihood_weight" not in read_meta(tiny_repo / "models" / "seed" / "reranker")
