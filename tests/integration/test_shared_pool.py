"""The shared-pool comparison scores only the problems where a pick can differ; its
figures must equal those from scoring every candidate."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_shared_pool_figures_equal_scoring_every_candidate(tiny_model_dir, tmp_path):
    from coderanker.evaluation import compare_on_shared_pool, load_scorer
    from coderanker.jsonl import write_jsonl
    from coderanker.metrics import compare_on_pool, gain_per_problem, group_by_problem, pairwise_accuracy
    from coderanker.problems import by_name
    from coderanker.reranker import init_reranker
    from coderanker.sources import starter
    from coderanker.training.reward import RerankerTrainConfig

    problems = starter("eval")[:4]
    write_jsonl(tmp_path / "problems" / "eval-starter.jsonl", (p.to_record() for p in problems))
    statuses = {0: ["passed"] * 3, 1: ["failed"] * 3, 2: ["passed", "failed", "failed"],
                3: ["failed", "passed", "compile_error"]}
    pool = []
    for index, problem in enumerate(problems):
        for sample, status in enumerate(statuses[index]):
            pool.append({"name": problem.name, "language": "py", "completion": f"    return {sample}\n",
                         "response": f"    return {sample}\n```", "sample": sample, "greedy": False,
                         "status": status})
        pool.append({"name": problem.name, "language": "py", "completion": "    pass\n", "response": "    pass\n```",
                     "sample": -1, "greedy": True, "status": "failed"})
    write_jsonl(tmp_path / "pool" / "eval-starter.jsonl", pool)
    config = RerankerTrainConfig(max_length=256, score_batch_size=4)
    current, previous = (init_reranker(tiny_model_dir, tmp_path / name, seed=seed)
                         for name, seed in (("current", 1), ("previous", 2)))

    figures = compare_on_shared_pool(tmp_path / "problems", tmp_path / "pool", "starter", current, previous, config)

    by = by_name(problems)
    now = load_scorer(current, config).score_candidates(by, pool)
    before = load_scorer(previous, config).score_candidates(by, pool)
    full = [{**r, "score": a, "previous_score": b} for r, a, b in zip(pool, now, before, strict=True)]
    compared = compare_on_pool(full, lambda r: r["previous_score"], lambda r: r["score"])
    groups = group_by_problem(full)
    gains = gain_per_problem(groups, lambda r: r["score"])
    assert figures["problems"] == 4 and figures["problems_with_choice"] == 2 and figures["scored"] == 6
    assert figures["reranked_pass@1"] == compared["reranked_pass@1_b"]
    assert figures["previous_reranked_pass@1"] == compared["reranked_pass@1_a"]
    assert figures["difference_vs_previous"] == pytest.approx(compared["difference"])
    assert figures["difference_vs_previous_ci95"] == pytest.approx(compared["difference_ci95"])
    assert figures["reranked_gain"] == pytest.approx(sum(gains) / len(gains))
    assert figures["reranker_pairwise_acc"] == pairwise_accuracy(groups, lambda r: r["score"])
    assert figures["previous_reranker_pairwise_acc"] == pairwise_accuracy(groups, lambda r: r["previous_score"])
