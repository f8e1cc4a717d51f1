"""The decode loop (shared prefill, reserved cache, rows leaving the batch) against plain
`model.generate`, and the precision paths of sampling and scoring, on the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from coderanker.decoding import DecodeRequest, decode_group, pack, reserved_cache, sample_tokens
from coderanker.generation import SamplingConfig, generate, prompt_ids, stop_strings
from coderanker.prompting import truncate_at_stop
from coderanker.sources import starter

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def hf_greedy(model, tokenizer, problem, style: str, tokens: int) -> str:
    import torch

    ids = torch.tensor([prompt_ids(problem, tokenizer, style)])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=tokens,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


@pytest.mark.parametrize("style", ["prefill", "completion"])
def test_greedy_decoding_of_a_padded_batch_matches_generate_one_by_one(tiny, style):
    model, tokenizer = tiny
    problems = starter("eval")[:4]  # prompts of different lengths: left padding in one batch
    config = SamplingConfig(max_new_tokens=20, batch_size=8, seed=0)
    answers = decode_group(model, tokenizer, [DecodeRequest(p, 1, greedy=True) for p in problems], style, config, 0)
    for problem, [(text, truncated)] in zip(problems, answers, strict=True):
        reference = hf_greedy(model, tokenizer, problem, style, 20)
        stops = stop_strings(problem, style)
        assert reference.startswith(text)  # ours ends at the first stop string, generate runs on
        assert truncate_at_stop(text, stops) == truncate_at_stop(reference, stops)
        if truncated:
            assert text == reference


def test_the_reserved_cache_gives_the_logits_of_the_dynamic_cache(tiny):
    import torch
    from transformers import DynamicCache

    model, tokenizer = tiny
    ids = torch.tensor([prompt_ids(starter("eval")[0], tokenizer, "prefill")] * 3)
    logits = []
    for cache in (DynamicCache(config=model.config), reserved_cache(model, ids.shape[1] + 4)):
        with torch.inference_mode():
            out = [model(input_ids=ids, cache=cache, use_cache=True).logits[:, -1]]
            cache.batch_select_indices(torch.tensor([2, 0]))  # two rows leave... in another order
            for step in range(3):
                token = torch.tensor([[5 + step], [9 + step]])
                out.append(model(input_ids=token, cache=cache, use_cache=True).logits[:, -1])
        logits.append(out)
    for dynamic, reserved in zip(*logits, strict=True):
        assert torch.allclose(dynamic, reserved, atol=1e-5)


def test_the_samples_of_a_problem_share_a_prefill_yet_differ_and_are_seeded(tiny):
    model, tokenizer = tiny
    problems = starter("eval")[:3]
    config = SamplingConfig(samples_per_problem=5, greedy=True, max_new_tokens=12, batch_size=10, seed=3)
    first = list(generate(model, tokenizer, problems, config))
    assert first == list(generate(model, tokenizer, problems, config))
    for problem in problems:
        texts = [c["response"] for c in first if c["name"] == problem.name and not c["greedy"]]
        assert len(texts) == 5 and len(set(texts)) > 1
    assert all(isinstance(c["truncated"], bool) for c in first)
    assert {c["sample"] for c in first if c["greedy"]} == {-1}


def test_pack_keeps_a_problems_samples_together_and_kinds_apart():
    problems = starter("eval")[:5]
    requests = [DecodeRequest(p, 4, False) for p in problems] + [DecodeRequest(p, 1, True) for p in problems]
    groups = pack(requests, batch_size=8)
    assert [sum(r.copies for r in g) for g in groups] == [8, 8, 4, 5]
    assert all(len({r.greedy for r in g}) == 1 for g in groups)
    assert [r for g in groups for r in g] == requests
    assert [len(g) for g in pack([DecodeRequest(problems[0], 20, False)], batch_size=8)] == [1]


def test_nucleus_sampling_never_draws_outside_the_nucleus():
    import torch

    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05] + [0.0] * 300])
    logits = probs.clamp_min(1e-12).log().repeat(4000, 1)
    generator = torch.Generator().manual_seed(0)
    drawn = sample_tokens(logits, greedy=False, temperature=1.0, top_p=0.75, generator=generator)
    # the mass before token 1 is 0.5 < 0.75 and before token 2 is 0.8: the nucleus is {0, 1}
    assert set(drawn.tolist()) == {0, 1}
    share = (drawn == 0).float().mean().item()
    assert abs(share - 0.5 / 0.8) < 0.03
    flat = torch.zeros(2, 1000)  # uniform: the nucleus is wider than the top-k shortcut
    wide = sample_tokens(flat, greedy=False, temperature=1.0, top_p=0.9, generator=generator)
    assert wide.max().item() >= 0 and len(set(wide.tolist())) == 2
    assert sample_tokens(logits[:2], greedy=True, temperature=1.0, top_p=0.75, generator=generator).tolist() == [0, 0]


def test_sampling_and_scoring_run_in_bf16_on_the_cpu(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from coderanker.problems import by_name
    from coderanker.reranker import Reranker, init_reranker
    from coderanker.runtime import Placement

    bf16 = Placement.of("cpu", "bf16")
    model = bf16.load(AutoModelForCausalLM, tiny_model_dir)
    assert next(model.parameters()).dtype == torch.bfloat16 and model.device.type == "cpu"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    problems = starter("eval")[:2]
    candidates = list(generate(model, tokenizer, problems, SamplingConfig(samples_per_problem=3, max_new_tokens=8)))
    assert len(candidates) == 2 * 4
    directory = init_reranker(tiny_model_dir, tmp_path / "reranker")
    scores = {}
    for placement in (bf16, Placement.of("cpu", "fp32")):
        scorer = Reranker.load(str(directory), placement=placement)
        assert next(scorer.model.parameters()).dtype == placement.torch_dtype
        scores[placement.dtype] = scorer.score_candidates(by_name(problems), candidates)
    correlation = torch.corrcoef(torch.tensor([scores["bf16"], scores["fp32"]]))[0, 1].item()
    assert correlation > 0.95, scores


def test_shared_query_scoring_equals_scoring_whole_sequences(tiny_model_dir, tmp_path):
    """Exactly in fp32; in bf16 (what `auto` picks on CPUs with AMX) to bf16's rounding: the
    two paths add the same numbers in other orders."""
    from coderanker.reranker import Reranker, init_reranker, read_prompt_style
    from coderanker.runtime import Placement

    directory = init_reranker(tiny_model_dir, tmp_path / "reranker", prompt_style="auto")
    assert read_prompt_style(directory) == "prefill"  # resolved and stored with the model
    problems = starter("eval")[:3]
    answers = ["    return 1\n", "    return s[::-1]\n", "    x = 0\n    for c in s:\n        x += 1\n    return x\n",
               "    pass\n"]
    for dtype in ("fp32", "bf16"):
        scorer = Reranker.load(str(directory), placement=Placement.of("cpu", dtype), batch_size=3)
        assert scorer.style == "prefill"
        items = [scorer.encode_parts(p, a) for p in problems for a in answers]
        shared = scorer.score_parts(items)
        whole = scorer.score_ids([q + a for q, a in items])
        error = max(abs(a - b) for a, b in zip(shared, whole, strict=True))
        assert error < (1e-4 if dtype == "fp32" else 0.05 * (max(whole) - min(whole))), dtype
        assert len(set(round(s, 6) for s in shared)) > 1


def test_a_likelihood_prior_adds_the_policys_log_probability_of_the_response(tiny_model_dir, tmp_path):
    """The prior's term is checked against a token-at-a-time computation (a forward pass per
    token, no shared cache, no padding) in fp32; a reranker without the prior scores as before,
    and one whose metadata names a prior it lacks is refused."""
    import torch
    from transformers import AutoModelForCausalLM

    from coderanker.reranker import LIKELIHOOD_POLICY, Reranker, attach_likelihood, init_reranker, write_meta
    from coderanker.runtime import Placement

    directory = init_reranker(tiny_model_dir, tmp_path / "reranker", prompt_style="auto")
    problems = starter("eval")[:2]
    answers = ["    return 1\n", "    x = 0\n    for c in s:\n        x += 1\n    return x\n", "    pass\n"]
    fp32 = Placement.of("cpu", "fp32")
    plain = Reranker.load(str(directory), placement=fp32, batch_size=2)
    items = [plain.encode_parts(p, a) for p in problems for a in answers]
    heads = plain.score_parts(items)
    attach_likelihood(directory, tiny_model_dir, 0.5)
    scorer = Reranker.load(str(directory), placement=fp32, batch_size=2)
    assert scorer.style == "prefill" and scorer.likelihood_weight == 0.5
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    expected = []
    with torch.inference_mode():
        for query, answer in items:
            total = 0.0
            for i, token in enumerate(answer):
                logits = policy(input_ids=torch.tensor([query + answer[:i]])).logits[0, -1]
                total += float(torch.log_softmax(logits, dim=-1)[token])
            expected.append(total)
    assert scorer.score_parts(items) == pytest.approx([h + 0.5 * e for h, e in zip(heads, expected, strict=True)],
                                                      abs=1e-3)
    # repeated items (samples repeat) are scored once, and each copy gets its own item's score
    order = [4, 0, 4, 2, 0]
    alone = {i: scorer.score_parts([items[i]])[0] for i in set(order)}
    assert scorer.score_parts([items[i] for i in order]) == pytest.approx([alone[i] for i in order], abs=1e-4)
    assert len(set(alone.values())) == 3
    assert len({round(e, 3) for e in expected}) == len(expected)  # the prior separates the answers
    attach_likelihood(directory, tiny_model_dir, 0.0)  # removed again
    assert not (directory / LIKELIHOOD_POLICY).exists()
    assert Reranker.load(str(directory), placement=fp32, batch_size=2).score_parts(items) == pytest.approx(heads)
    write_meta(directory, "prefill", 0.5)  # the prior named, its policy missing
    with pytest.raises(FileNotFoundError, match=LIKELIHOOD_POLICY):
        Reranker.load(str(directory), placement=fp32)


def test_a_stage_s_rerankers_share_a_prior_of_the_same_policy_and_score_each_candidate_once(tiny_model_dir, tmp_path):
    """evaluate's Scorers: a reranker asked for twice is one scorer, two rerankers whose
    priors are the same policy share it (the policy runs once per candidate), and a prior of
    other bytes is not shared; memoised scores equal a fresh scorer's."""
    import json
    import shutil

    from coderanker.evaluation import Scorers
    from coderanker.reranker import (
        LIKELIHOOD_MD5,
        LIKELIHOOD_POLICY,
        RERANKER_META,
        Reranker,
        attach_likelihood,
        init_reranker,
    )
    from coderanker.runtime import Placement
    from coderanker.training.reward import RerankerTrainConfig

    fp32 = Placement.of("cpu", "fp32")
    first = init_reranker(tiny_model_dir, tmp_path / "first", seed=0, prompt_style="auto")
    second = init_reranker(tiny_model_dir, tmp_path / "second", seed=1, prompt_style="auto")
    other_policy = tmp_path / "other_policy"
    shutil.copytree(tiny_model_dir, other_policy)
    config = json.loads((other_policy / "config.json").read_text())
    (other_policy / "config.json").write_text(json.dumps({**config, "note": "other bytes"}))
    third = init_reranker(tiny_model_dir, tmp_path / "third", seed=2, prompt_style="auto")
    for directory, policy in ((first, tiny_model_dir), (second, tiny_model_dir), (third, other_policy)):
        attach_likelihood(directory, policy, 0.5)
    copied = {p.name for p in (first / LIKELIHOOD_POLICY).iterdir()}
    assert "model.safetensors" in copied and "config.json" in copied and not any("token" in n for n in copied)
    assert copied < {p.name for p in Path(tiny_model_dir).iterdir()}
    meta = [json.loads((d / RERANKER_META).read_text()) for d in (first, second, third)]
    assert meta[0][LIKELIHOOD_MD5] == meta[1][LIKELIHOOD_MD5] != meta[2][LIKELIHOOD_MD5]

    scorers = Scorers(RerankerTrainConfig(score_batch_size=2), fp32)
    a, b, c = scorers.get(first), scorers.get(second), scorers.get(third)
    assert scorers.get(str(first)) is a
    assert a.likelihood is b.likelihood and a.likelihood is not c.likelihood
    calls = []
    a.likelihood.model.register_forward_hook(lambda module, inputs, output: calls.append(1))
    problems = starter("eval")[:2]
    answers = ["    return 1\n", "    x = 0\n    return x\n", "    return 1\n"]
    items = [a.encode_parts(p, x) for p in problems for x in answers]
    expected = {}
    for name, directory in (("a", first), ("b", second), ("c", third)):
        expected[name] = Reranker.load(str(directory), placement=fp32, batch_size=2).score_parts(items)
    assert a.score_parts(items) == pytest.approx(expected["a"], abs=1e-4)
    runs = len(calls)
    assert runs > 0
    assert b.score_parts(items) == pytest.approx(expected["b"], abs=1e-4)
    assert len(calls) == runs  # b's prior terms came from a's run of the shared policy
    assert a.score_parts(items[:3]) == pytest.approx(expected["a"][:3], abs=1e-4)  # a's own memo
    assert len(calls) == runs
    # memo hits and new answers to the same query in one call: every item still gets its own score
    extra = [a.encode_parts(problems[0], x) for x in ("    return 2\n", "    return len(s)\n")]
    mixed = [extra[0], items[1], extra[1], items[0], items[1]]
    fresh = Reranker.load(str(first), placement=fp32, batch_size=2).score_parts(mixed)
    assert a.score_parts(mixed) == pytest.approx(fresh, abs=1e-4) and len(calls) > runs
    assert c.score_parts(items) == pytest.approx(expected["c"], abs=1e-4)
    assert expected["a"] != pytest.approx(expected["b"], abs=1e-4)  # different heads, same prior
    scorers.release(first)
    assert scorers.get(first) is not a and scorers.get(first).likelihood is b.likelihood
