"""sample.backend: vllm without vLLM: the requests it sends (the HF path's prompt ids, stop
rules and settings, seeds of each problem's own), the records it builds from the tokens vLLM
returns (the HF decode loop's records for the same tokens), and the clear failure where vLLM
is not installed. The engine itself needs a GPU and is not exercised here."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import pytest

from coderanker.config import ParamsError, load_params
from coderanker.generation import SamplingConfig, generate, model_input, prompt_ids, stop_strings
from coderanker.problems import load_problems
from coderanker.vllm_backend import (
    MISSING,
    SEED_CHILD_BITS,
    VLLMMissingError,
    generate_vllm,
    records_from_outputs,
    sampling_requests,
    stop_token_ids,
)

from ..conftest import REPO

STARTER = REPO / "coderanker" / "data" / "starter.jsonl"
#: SamplingParams' keyword arguments that the requests use (vLLM 0.10+, vllm/sampling_params.py).
VLLM_PARAMS = {"n", "temperature", "top_p", "max_tokens", "stop", "stop_token_ids", "include_stop_str_in_output",
               "seed"}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def eos(tiny_model_dir, tokenizer):
    return stop_token_ids(tiny_model_dir, tokenizer)


@pytest.fixture(scope="module")
def problems():
    return load_problems(STARTER)[:3]


CONFIG = SamplingConfig(samples_per_problem=3, greedy=True, max_new_tokens=50, temperature=0.7, top_p=0.9, seed=7)


def test_the_end_ids_are_those_the_hf_loop_stops_on(tiny_model_dir, tokenizer, eos):
    from transformers import AutoModelForCausalLM

    from coderanker.decoding import eos_ids

    assert tokenizer.eos_token_id in eos
    assert eos == eos_ids(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer)


def test_requests_carry_the_hf_paths_prompt_ids_stops_and_settings(problems, tokenizer, eos):
    requests = sampling_requests(problems, tokenizer, CONFIG, eos)
    ordered = sorted(problems, key=lambda p: len(model_input(p, tokenizer, "prefill")))  # auto: a chat template
    assert [(r.problem.name, r.greedy) for r in requests] == (
        [(p.name, False) for p in ordered] + [(p.name, True) for p in ordered])
    for request in requests:
        params = request.params
        assert set(params) == VLLM_PARAMS
        assert request.prompt_ids == prompt_ids(request.problem, tokenizer, "prefill")
        assert params["stop"] == [*request.problem.stop_tokens, "```"] == list(stop_strings(request.problem, "prefill"))
        assert params["stop_token_ids"] == sorted(eos) and params["include_stop_str_in_output"] is True
        assert params["max_tokens"] == 50
        if request.greedy:
            assert (params["n"], params["temperature"]) == (1, 0.0)
        else:
            assert (params["n"], params["temperature"], params["top_p"]) == (3, 0.7, 0.9)


def test_stop_strings_follow_the_prompt_style(problems, tokenizer, eos):
    for style, stops in [("completion", list(problems[0].stop_tokens)), ("chat", None)]:
        [request] = sampling_requests(problems[:1], tokenizer, replace(CONFIG, prompt_style=style, greedy=False), eos)
        assert request.params["stop"] == stops
        assert request.prompt_ids == prompt_ids(problems[0], tokenizer, style)


def test_seeds_are_distinct_per_sample_deterministic_and_each_problems_own(problems, tokenizer, eos):
    requests = sampling_requests(problems, tokenizer, CONFIG, eos)
    seeds = {(r.problem.name, r.greedy): r.params["seed"] for r in requests}
    per_sample = [r.params["seed"] + i for r in requests for i in range(r.params["n"])]  # vLLM: seed + index
    assert len(set(per_sample)) == len(per_sample) == 3 * 3 + 3
    assert all(0 <= seed < 2**63 and seed % 2**SEED_CHILD_BITS == 0 for seed in seeds.values())
    assert seeds == {(r.problem.name, r.greedy): r.params["seed"]
                     for r in sampling_requests(problems, tokenizer, CONFIG, eos)}
    alone = sampling_requests(problems[1:2], tokenizer, CONFIG, eos)  # another batch: the same seeds
    assert {(r.problem.name, r.greedy): r.params["seed"] for r in alone}.items() <= seeds.items()
    other = sampling_requests(problems, tokenizer, replace(CONFIG, seed=8), eos)
    assert not {r.params["seed"] for r in other} & set(seeds.values())


class _Scripted:
    """The tiny model made to answer with given tokens: each forward pass puts all of the last
    position's mass on the next one (then EOS), so the HF loop's greedy decode draws exactly
    them and applies its own stop rule."""

    def __init__(self, model, tokens: list[int], eos: int):
        self.tokens, self.eos, self.step = tokens, eos, 0
        model.register_forward_hook(self.hook)

    def hook(self, module, args, output):
        token = self.tokens[self.step] if self.step < len(self.tokens) else self.eos
        self.step += 1
        output.logits[:, -1, :] = float("-inf")
        output.logits[:, -1, token] = 0.0
        return output


def vllm_tokens(tokens: list[int], tokenizer, stops, eos: set[int], max_tokens: int) -> tuple[list[int], str]:
    """What vLLM returns for this answer (a slow reference of its stop rule): the tokens up to
    the first end id (kept) or the first one whose text completes a stop string (kept; its
    text is cut), else max_tokens of them."""
    for end in range(1, len(tokens) + 1):
        text = tokenizer.decode(tokens[:end], skip_special_tokens=True)
        if tokens[end - 1] in eos or (stops and any(stop in text for stop in stops)):
            return tokens[:end], "stop"
        if end == max_tokens:
            return tokens[:end], "length"
    raise AssertionError("a script ends with an end id or runs past max_tokens")


BODY = "    return s[::-1]"
LONG = " + s" * 30  # past the token budget
SCRIPTS = {  # style, answer text, and whether EOS follows it
    "fence": ("prefill", f"{BODY}\n```\n\nThis reverses s.", False),
    "stop token": ("prefill", f"{BODY}\nprint(reverse_text('ab'))\n", False),
    "stop string ends inside a token": ("prefill", f"{BODY}\n\ndef main():\n    pass", False),  # " main"
    "eos": ("prefill", BODY, True),
    "budget": ("prefill", BODY + LONG, False),
    "completion": ("completion", f"{BODY}\n\n\ndef main():\n    pass\n", False),
    "chat, closing fence": ("chat", f"Here it is:\n```python\ndef reverse_text(s):\n{BODY}\n```\nDone.", True),
    "chat, talks on past the fence": ("chat", f"```python\ndef reverse_text(s):\n{BODY}\n```\nIt is{LONG}", False),
    "chat, open block": ("chat", f"```python\ndef reverse_text(s):\n{BODY}{LONG}", True),
}


@pytest.mark.parametrize("case", SCRIPTS)
def test_records_from_vllms_tokens_equal_the_hf_loops_records(case, tiny_model_dir, tokenizer, eos, problems):
    from transformers import AutoModelForCausalLM

    style, text, ends = SCRIPTS[case]
    problem = next(p for p in problems if p.name == "starter_strings_reverse_text")
    script = tokenizer(text, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if ends else [])
    config = SamplingConfig(samples_per_problem=0, greedy=True, max_new_tokens=40, prompt_style=style)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    _Scripted(model, script, tokenizer.eos_token_id)
    [hf] = generate(model, tokenizer, [problem], config, "gen", "r1")

    [request] = sampling_requests([problem], tokenizer, config, eos)
    answer = vllm_tokens(script, tokenizer, request.params["stop"], eos, config.max_new_tokens)
    [ours] = records_from_outputs(request, [answer], style, tokenizer, eos, "gen", "r1")
    assert ours == hf
    assert hf["truncated"] is (case in ("budget", "chat, open block"))


def test_records_keep_the_hf_loops_text_where_vllms_would_differ(tokenizer, eos, problems):
    """Why records come from the tokens: vLLM's text ends with the stop string, the HF loop's
    runs to the end of the token that completed it, and in completion style that is the
    response the reranker scores."""
    config = replace(CONFIG, prompt_style="completion", greedy=False)
    [request] = sampling_requests(problems[:1], tokenizer, config, eos)
    tokens = tokenizer(f"{BODY}\n\ndef main():\n", add_special_tokens=False)["input_ids"]
    answer, reason = vllm_tokens(tokens, tokenizer, request.params["stop"], eos, config.max_new_tokens)
    hf_text = tokenizer.decode(answer, skip_special_tokens=True)
    vllm_text = hf_text[: hf_text.index("\ndef ") + len("\ndef ")]  # include_stop_str_in_output
    [record] = records_from_outputs(request, [(answer, reason)], "completion", tokenizer, eos)
    assert (reason, hf_text, vllm_text) == ("stop", f"{BODY}\n\ndef main", f"{BODY}\n\ndef ")
    assert record["response"] == hf_text and record["completion"] == f"{BODY}\n" and not record["truncated"]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_the_backend_fails_clearly_before_loading_anything(tmp_path, problems):
    missing_model = tmp_path / "no-such-model"  # loading anything would fail differently
    with pytest.raises(VLLMMissingError) as caught:
        generate_vllm(missing_model, problems, replace(CONFIG, backend="vllm"))
    assert str(caught.value) == MISSING == ("sample.backend: vllm needs vLLM: pip install -e '.[gpu]' "
                                            "on a machine with a CUDA torch")
    assert isinstance(caught.value, ImportError)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_the_stage_and_the_cli_refuse_the_vllm_backend_before_any_work(tmp_path, capsys):
    from coderanker.cli import main as cli_main
    from pipelines.sample import main as sample_stage

    params = tmp_path / "params.yaml"
    params.write_text("sample:\n  backend: vllm\n")
    out, model = tmp_path / "out", tmp_path / "no-such-model"
    with pytest.raises(VLLMMissingError, match="pip install -e"):
        sample_stage(["--model", str(model), "--problems", str(tmp_path), "--out", str(out), "--round", "r0",
                      "--params", str(params)])
    assert cli_main(["sample", "--model", str(model), "--problems", str(STARTER), "--out", str(out / "c.jsonl"),
                     "--params", str(params)]) == 1
    assert capsys.readouterr().err.strip().endswith(f"error: {MISSING}")
    assert not out.exists()


def test_params_refuse_an_unknown_backend(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("sample:\n  samples_per_problem: 4\n  backend: tgi\n")
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value) == f"{path}:3: sample.backend: expected one of hf, vllm, got 'tgi'"
    path.write_text("sample:\n  backend: vllm\n")
    assert load_params(path)["sample"]["backend"] == "vllm"
    assert SamplingConfig().backend == "hf" and "backend" not in load_params(REPO / "params.yaml")["sample"]
