"""Sampling with vLLM (`sample.backend: vllm`): the same model input, stop rules and records
as `coderanker.generation.generate`, from vLLM's engine on a GPU.

Everything but `generate_vllm` and its engine is plain Python and runs without vLLM: the
requests (token ids, sampling parameters), and the records built from the tokens vLLM
returns. Records come from token ids, not from vLLM's text: the tokens are replayed through
the HF decode loop's own stop rule (`coderanker.decoding`), so a stop string, the end of
sequence and the chat style's closing fence end an answer exactly where the HF path ends
it, and the text is decoded the same way (vLLM detokenises incrementally, in the prompt's
context, which can differ in leading spaces).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

from coderanker.errors import InputError
from coderanker.generation import (
    SamplingConfig,
    candidate_records,
    decode_requests,
    generate,
    prompt_ids,
    reference_candidates,
    resolve_style,
    stop_strings,
)
from coderanker.problems import Problem

MISSING = "sample.backend: vllm needs vLLM: pip install -e '.[gpu]' on a machine with a CUDA torch"
#: vLLM's `dtype` for each of `model.dtype`'s resolved values.
VLLM_DTYPES = {"bf16": "bfloat16", "fp32": "float32"}
#: Low bits left free in a request's seed: vLLM seeds the n samples of a request seed + index.
SEED_CHILD_BITS = 14


class VLLMMissingError(InputError, ImportError):
    """sample.backend is vllm where vLLM is not installed (an InputError: the stage and the
    CLI print it as one line, like a missing toolchain)."""


@dataclass(frozen=True)
class VLLMRequest:
    """One prompt for vLLM: a problem's samples (n of them) or its greedy answer."""

    problem: Problem
    prompt_ids: list[int]
    greedy: bool
    params: dict
    """SamplingParams' keyword arguments."""


def require_vllm():
    """The vllm module, or VLLMMissingError: called before anything is loaded."""
    try:
        import vllm
    except ImportError as err:
        raise VLLMMissingError(MISSING) from err
    return vllm


def generate_vllm(model_dir, problems: list[Problem], config: SamplingConfig, generator_id: str = "",
                  round_id: str = "", dtype: str = "bf16") -> Iterator[dict]:
    """`generate`'s records, in its order, sampled by vLLM from a model directory in
    `model.dtype` (bf16 or fp32). Raises VLLMMissingError at the call, before loading
    anything, where vLLM is not installed."""
    require_vllm()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    eos = stop_token_ids(model_dir, tokenizer)
    engine = load_vllm(str(model_dir), dtype, config.seed)
    return _generate(engine, tokenizer, problems, config, eos, generator_id, round_id)


@functools.cache
def load_vllm(model_dir: str, dtype: str, seed: int):
    """vLLM's engine, once per process and model: a second engine would not get the GPU
    memory the first one holds (the stage samples several problem files)."""
    from vllm import LLM

    return LLM(model=model_dir, tokenizer=model_dir, dtype=VLLM_DTYPES[dtype], seed=seed)


def _generate(engine, tokenizer, problems, config, eos, generator_id, round_id) -> Iterator[dict]:
    """The adapter: requests in, vLLM's outputs (in request order) to records."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    style = resolve_style(config.prompt_style, tokenizer)
    requests = sampling_requests(problems, tokenizer, config, eos)
    outputs = engine.generate([TokensPrompt(prompt_token_ids=r.prompt_ids) for r in requests],
                              [SamplingParams(**r.params) for r in requests])
    for request, output in zip(requests, outputs, strict=True):
        answers = [(list(o.token_ids), o.finish_reason) for o in sorted(output.outputs, key=lambda o: o.index)]
        yield from records_from_outputs(request, answers, style, tokenizer, eos, generator_id, round_id)
    if config.include_references:
        yield from reference_candidates(problems, style, generator_id, round_id)


def stop_token_ids(model_dir, tokenizer) -> set[int]:
    """The ids that end an answer on the HF path (`decoding.eos_ids`: the tokenizer's EOS and
    the generation config's), read from the model directory without loading the model."""
    from coderanker.decoding import eos_ids, read_generation_config

    return eos_ids(SimpleNamespace(generation_config=read_generation_config(model_dir)), tokenizer)


def sampling_requests(problems: list[Problem], tokenizer, config: SamplingConfig, eos: set[int]) -> list[VLLMRequest]:
    """One request per `decode_requests` entry, in its order: the HF path's prompt ids, its stop
    strings and end ids, and a seed of the problem's own (so what a problem gets does not
    depend on the other problems of the run, nor on how vLLM batches them).

    The stop string stays in vLLM's text (`include_stop_str_in_output`), as in the text the
    HF loop hands over; records are built from the token ids all the same."""
    style = resolve_style(config.prompt_style, tokenizer)
    requests = []
    for request in decode_requests(problems, tokenizer, style, config):
        stops = stop_strings(request.problem, style)
        params = {
            "n": request.copies,
            "temperature": 0.0 if request.greedy else config.temperature,
            "top_p": 1.0 if request.greedy else config.top_p,
            "max_tokens": config.max_new_tokens,
            "stop": list(stops) if stops else None,
            "stop_token_ids": sorted(eos),
            "include_stop_str_in_output": True,
            "seed": request_seed(config.seed, request.problem.name, request.greedy),
        }
        requests.append(VLLMRequest(request.problem, prompt_ids(request.problem, tokenizer, style),
                                    request.greedy, params))
    return requests


def request_seed(seed: int, name: str, greedy: bool) -> int:
    """A seed below 2**62 from the run's seed and the problem, its low SEED_CHILD_BITS zero:
    vLLM seeds sample i of a request with seed + i, which stays the problem's own."""
    key = f"{seed}\0{name}\0{'greedy' if greedy else 'sample'}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=6).digest(), "big") << SEED_CHILD_BITS


def records_from_outputs(request: VLLMRequest, answers: list[tuple[list[int], str | None]], style: str,
                         tokenizer, eos: set[int], generator_id: str = "", round_id: str = "") -> list[dict]:
    """A request's records from vLLM's answers, each (token ids, finish reason)."""
    outputs = [hf_answer(tokenizer, request.problem, style, ids, reason, eos) for ids, reason in answers]
    return candidate_records(request.problem, style, outputs, request.greedy, generator_id, round_id)


def hf_answer(tokenizer, problem: Problem, style: str, token_ids: list[int], finish_reason: str | None,
              eos: set[int]) -> tuple[str, bool]:
    """(text, truncated) as the HF decode loop would hand them over had it drawn these tokens:
    the tokens replayed through its stop rule, up to the one that ends the answer.

    Truncated: the rule never ended the answer and vLLM stopped for length. (An answer in
    chat style runs on past its closing fence in vLLM, which has no stop rule for a second
    fence: vLLM says "length", the HF rule ended it at the fence.)"""
    from coderanker.decoding import DecodeRequest, _Rows

    rows = _Rows(tokenizer, [DecodeRequest(problem, 1, greedy=False)], style, eos)
    for token in token_ids:
        rows.advance([token])
        if rows.all_done():
            break
    text, unfinished = rows.answers()[0]
    return text, unfinished and finish_reason == "length"


def sampler(backend: str, model_dir, tokenizer, placement):
    """The sampler of `sample.backend`, kept here so that only what samples depends on this
    module: `generate` with the model loaded on `placement` (hf), or vLLM's `generate_vllm` for the
    model directory (vllm): either is called as sample(problems, config, generator_id=...,
    round_id=...). Callers check for vLLM first (`require_vllm`)."""
    if backend == "vllm":
        return functools.partial(generate_vllm, model_dir, dtype=placement.dtype)
    from transformers import AutoModelForCausalLM

    return functools.partial(generate, placement.load(AutoModelForCausalLM, model_dir), tokenizer)
