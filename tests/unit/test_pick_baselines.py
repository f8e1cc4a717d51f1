"""benchmarks/pick_baselines: the vote counts and the per-rule figures, on small hand-computed
pools, and the command on a run directory laid out as `dvc repro` leaves it (the vote's program
identity, `coderanker.metrics.program_key`, is tested in test_metrics)."""

from __future__ import annotations

import pytest

from benchmarks.pick_baselines.run import main, measure, policy_log_likelihoods, with_votes
from coderanker.jsonl import write_jsonl
from coderanker.metrics import group_by_problem


def sample(name: str, completion: str, status: str, score: float, **extra) -> dict:
    return {"name": name, "language": "py", "completion": completion, "status": status, "score": score,
            "greedy": False, **extra}


def pools() -> dict[str, list[dict]]:
    # p1: two copies of a passing program (one reformatted), three different failing ones, the
    # reranker prefers a failing one; p2: no passing sample; p3: all pass. The greedy candidate
    # never counts as a vote.
    p1 = [sample("p1", "    return a\n", "failed", 0.9), sample("p1", "    return b\n", "failed", 0.1),
          sample("p1", "    return  x + 1\n", "passed", 0.5), sample("p1", "    return (x + 1)\n", "passed", 0.2),
          sample("p1", "    return c\n", "failed", 0.3), sample("p1", "    return a\n", "failed", 0.0, greedy=True),
          sample("p1", "    return a\n", "failed", 0.0, greedy=True)]
    p2 = [sample("p2", "    return 0\n", "failed", 0.1), sample("p2", "    return 0\n", "failed", 0.2),
          sample("p2", "    return 1\n", "failed", 0.3, greedy=True)]
    p3 = [sample("p3", "    return y\n", "passed", 0.1), sample("p3", "    return y\n", "passed", 0.2,
                                                                     greedy=True)]
    return {name: with_votes(group) for name, group in group_by_problem([*p1, *p2, *p3]).items()}


def test_votes_count_samples_only():
    votes = {(r["completion"], r.get("greedy")): r["votes"] for r in pools()["p1"]}
    assert votes[("    return  x + 1\n", False)] == 2 and votes[("    return (x + 1)\n", False)] == 2
    assert votes[("    return a\n", False)] == 1 and votes[("    return a\n", True)] == 1


def test_rules_hand_computed():
    figures = measure(pools(), seed=0)
    # random: p1 2/5, p2 0, p3 1 -> 1.4 / 3
    assert figures["random"]["pass@1"] == pytest.approx(1.4 / 3)
    assert figures["reranker"]["pass@1"] == pytest.approx(1 / 3)  # p1's top score (0.9) fails
    assert figures["consensus"]["pass@1"] == pytest.approx(2 / 3)  # p1's largest group passes
    assert figures["consensus+reranker"]["pass@1"] == pytest.approx(2 / 3)
    assert figures["oracle"]["pass@1"] == pytest.approx(2 / 3)
    assert figures["greedy"]["pass@1"] == pytest.approx(1 / 3)  # p1's two greedy rows fail, p2's, p3's passes
    assert figures["consensus"]["gain"] == pytest.approx((1 - 0.4) / 3)
    assert figures["reranker"]["gain"] == pytest.approx((0 - 0.4) / 3)
    assert figures["consensus"]["minus_greedy"] == pytest.approx(1 / 3)
    assert figures["consensus"]["problems_with_choice"] == 1
    assert (figures["consensus"]["top1_hits"], figures["consensus"]["top1_chance"]) == (1.0, pytest.approx(0.4))
    low, high = figures["consensus"]["gain_ci95"]
    assert 0 <= low <= figures["consensus"]["gain"] <= high
    # p1 alone has a choice: the reranker picks "    return a\n" (13 characters), the vote the
    # earlier of its tied group, "    return  x + 1\n" (18); the passing samples average (18 + 19) / 2
    assert (figures["reranker"]["pick_chars"], figures["reranker"]["passing_chars"]) == (13, 18.5)
    assert figures["consensus"]["pick_chars"] == 18
    assert "pick_chars" not in figures["random"] and "pick_chars" not in figures["oracle"]


def test_rules_pick_from_pools_as_the_evaluate_stage():
    figures = measure(pools(), seed=0, pool=2)
    # p1 ranked by score: fail (0.9), pass (0.5), fail, pass, fail; of its 10 pools of 2, the
    # top one passes in 4 (the 0.5 with any lower one, or the 0.2 with the 0.1); 7 hold a pass
    assert figures["reranker"]["pass@1"] == pytest.approx((0.4 + 0 + 1) / 3)
    assert figures["oracle"]["pass@1"] == pytest.approx((0.7 + 0 + 1) / 3)
    assert figures["random"]["pass@1"] == pytest.approx(1.4 / 3)  # a pool does not change a random pick
    assert figures["reranker"]["top1_hits"] == pytest.approx(0.4)
    assert measure(pools(), seed=0, pool=5) == measure(pools(), seed=0)  # a pool of every sample


def test_command_reads_every_round(tmp_path, capsys):
    rows = [r for group in pools().values() for r in group]
    for round_ in ("r0", "r1"):
        write_jsonl(tmp_path / f"data/{round_}/scored/eval-starter.jsonl",
                    [{k: v for k, v in r.items() if k != "votes"} for r in rows])
    main(["--run", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[:2] for line in lines if line.startswith("| r") and "round" not in line] == [
        [f"| {r}", rule] for r in ("r0", "r1")
        for rule in ("random", "greedy", "reranker", "consensus", "consensus+reranker", "oracle")]
    assert "| r1 | consensus | 0.667 | +0.200" in "\n".join(lines)
    unscored = [{k: v for k, v in r.items() if k not in ("votes", "score", "greedy")} for r in rows]
    write_jsonl(tmp_path / "data/r0/results/train.jsonl", [*unscored, {**unscored[0], "reference": True}])
    main(["--run", str(tmp_path), "--set", "train"])  # no greedy rows, no scores: random, consensus, oracle
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| r0")]
    assert [line.split(" | ")[1] for line in lines] == ["random", "consensus", "oracle"]
    with pytest.raises(SystemExit, match="no data/r"):
        main(["--run", str(tmp_path / "empty")])


def stepwise_log_likelihood(model_dir, problem, response: str) -> float:
    """The response's log-probability one token at a time, each from a forward pass over the
    prefix alone: an independent path to what `policy_log_likelihoods` slices out of one pass."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from coderanker.generation import resolve_style
    from coderanker.reranker import encode_parts

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    query, answer = encode_parts(tokenizer, resolve_style("auto", tokenizer), problem, response, 512)
    total = 0.0
    with torch.inference_mode():
        for i, token in enumerate(answer):
            logits = model(input_ids=torch.tensor([query + answer[:i]])).logits[0, -1].float()
            total += float(torch.log_softmax(logits, dim=-1)[token])
    return total


def test_likelihood_rule_ranks_by_the_generating_policy(tmp_path, capsys, tiny_model_dir):
    from coderanker.problems import by_name, load_problems

    problems = [{"name": name, "language": "py", "prompt": "def f(x):\n", "tests": "assert f(1) == 2\n",
                 "stop_tokens": [], "entry_point": "f"} for name in ("p1", "p2")]
    write_jsonl(tmp_path / "data/problems/eval-starter.jsonl", problems)
    bodies = ["    return x + 1\n", "    return 2\n", "    return x * 2\n", "    return [x] * 3 if x else None\n"]
    rows = [{**sample("p1", body, "passed" if i % 2 else "failed", 0.0, sample=i), "generator": str(tiny_model_dir)}
            for i, body in enumerate(bodies)]
    rows.append({**sample("p2", "    return 0\n", "failed", 0.0), "generator": str(tiny_model_dir)})  # no choice
    write_jsonl(tmp_path / "data/r0/scored/eval-starter.jsonl", rows)
    main(["--run", str(tmp_path), "--likelihood"])
    out = capsys.readouterr().out
    problem = by_name(load_problems(tmp_path / "data/problems/eval-starter.jsonl"))["p1"]
    expected = [stepwise_log_likelihood(tiny_model_dir, problem, body) for body in bodies]
    from transformers import AutoTokenizer

    from coderanker.generation import resolve_style

    style = resolve_style("auto", AutoTokenizer.from_pretrained(tiny_model_dir))
    figures = policy_log_likelihoods(tiny_model_dir, {"p1": problem}, rows[:4], style)
    assert [total for total, _ in figures] == pytest.approx(expected, abs=1e-4)
    top_passes = expected.index(max(expected)) % 2 == 1
    line = next(line for line in out.splitlines() if line.startswith("| r0 | likelihood |"))
    assert line.split(" | ")[2] == f"{(float(top_passes) + 0.0) / 2:.3f}"  # p2 never passes
    assert len(set(expected)) == len(expected)  # distinct: the pick is not a tie
