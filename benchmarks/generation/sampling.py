"""Sampling throughput: coderanker's `generate` against naive fp32 `model.generate`."""

from __future__ import annotations

import argparse
import os
import time

from benchmarks.generation.common import alternate
from coderanker.generation import adds_special_tokens, model_input, response_text, stop_strings
from coderanker.prompting import truncate_at_stop
from coderanker.runtime import Placement

TEMPERATURE, TOP_P = 0.8, 0.95  # SamplingConfig's defaults


def load_causal(path: str, placement: Placement, left_pad: bool = False):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if left_pad:
        tokenizer.padding_side = "left"
    return placement.load(AutoModelForCausalLM, path).eval(), tokenizer


def stop_criterion(tokenizer, stops: list[tuple[str, ...] | None], width: int):
    """Stops a row once its generated text holds a stop string (chat: a closed code block),
    decoding the whole generated part of every row at every step, as coderanker once did."""
    import torch
    from transformers import StoppingCriteria

    class StopStrings(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, width:], skip_special_tokens=True)
            done = [text.count("```") >= 2 if row is None else any(s in text for s in row)
                    for text, row in zip(texts, stops, strict=True)]
            return torch.tensor(done, device=input_ids.device)

    return StopStrings()


def naive_generate(model, tokenizer, problems, args, style: str, samples: int) -> tuple[float, list]:
    """Seconds, and (problem, response) per row: left-padded batches of independent rows."""
    import torch
    from transformers import StoppingCriteriaList

    rows = [p for p in problems for _ in range(samples)]
    torch.manual_seed(args.seed)
    outputs, start = [], time.perf_counter()
    for first in range(0, len(rows), args.batch_size):
        batch = rows[first : first + args.batch_size]
        inputs = tokenizer([model_input(p, tokenizer, style) for p in batch], padding=True, return_tensors="pt",
                           add_special_tokens=adds_special_tokens(style)).to(model.device)
        width = inputs["input_ids"].shape[1]
        stops = StoppingCriteriaList([stop_criterion(tokenizer, [stop_strings(p, style) for p in batch], width)])
        with torch.inference_mode():
            out = model.generate(**inputs, do_sample=True, temperature=TEMPERATURE, top_p=TOP_P, top_k=0,
                                 max_new_tokens=args.max_new_tokens, stopping_criteria=stops,
                                 pad_token_id=tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        outputs += [(p, response_text(p, text, style)) for p, text in zip(batch, texts, strict=True)]
    return time.perf_counter() - start, outputs


def project_generate(model, tokenizer, problems, args, style: str, samples: int) -> tuple[float, list[dict]]:
    from coderanker.generation import SamplingConfig, generate

    config = SamplingConfig(samples_per_problem=samples, greedy=False, max_new_tokens=args.max_new_tokens,
                            temperature=TEMPERATURE, top_p=TOP_P, batch_size=args.batch_size,
                            prompt_style=style, seed=args.seed, threads=os.cpu_count() or 1)
    start = time.perf_counter()
    records = list(generate(model, tokenizer, problems, config))
    return time.perf_counter() - start, records


def useful_tokens(tokenizer, problem, response: str, style: str) -> int:
    """Tokens of a response up to its first stop string (chat: its closing fence)."""
    stops = stop_strings(problem, style)
    if stops is None:
        opening = response.find("```")
        closing = response.find("```", opening + 3) if opening >= 0 else -1
        text = response[: closing + 3] if closing >= 0 else response
    else:
        text = truncate_at_stop(response, stops)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def sampling(path: str, placement: Placement, problems, args, style: str) -> tuple[dict, list[dict]]:
    """Median (tokens/s, candidates/s) of each side, and the project's last candidates."""
    ours, tokenizer = load_causal(path, placement)
    naive, naive_tokenizer = load_causal(path, Placement(placement.device, "fp32"), left_pad=True)
    by_name, warm_up = {p.name: p for p in problems}, argparse.Namespace(**{**vars(args), "max_new_tokens": 4})
    naive_generate(naive, naive_tokenizer, problems[:1], warm_up, style, 2)
    project_generate(ours, tokenizer, problems[:1], warm_up, style, 2)
    last: list[dict] = []

    def naive_rates() -> tuple[float, float]:
        seconds, rows = naive_generate(naive, naive_tokenizer, problems, args, style, args.samples)
        return sum(useful_tokens(tokenizer, p, text, style) for p, text in rows) / seconds, len(rows) / seconds

    def our_rates() -> tuple[float, float]:
        seconds, last[:] = project_generate(ours, tokenizer, problems, args, style, args.samples)
        tokens = sum(useful_tokens(tokenizer, by_name[r["name"]], r["response"], style) for r in last)
        return tokens / seconds, len(last) / seconds

    return alternate({"naive": naive_rates, "coderanker": our_rates}, args.repeats), last
