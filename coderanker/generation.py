"""Sampling candidate programs: what the model sees, and the candidate records it yields.

The decode loop itself is `coderanker.decoding` (shared prefill, rows leaving the batch as
they finish). Seeded: the same model, problems and config give the same candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from coderanker.problems import Problem
from coderanker.prompting import chat_messages, extract_completion, strip_docstrings, truncate_at_stop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingConfig:
    """How candidates are sampled; the `sample` section of params.yaml."""

    samples_per_problem: int = field(default=8, metadata={"min": 0})
    """Sampled candidates per training problem."""
    eval_samples_per_problem: int = field(default=0, metadata={"min": 0})
    """Sampled candidates per evaluation problem; 0: samples_per_problem."""
    eval_pool_size: int = field(default=0, metadata={"min": 0})
    """The pool the reranker picks from in evaluation (N of pass@N); 0: every sample. With
    more samples than this, each figure is its exact mean over every pool of this size drawn
    from them (`coderanker.metrics`): the same figure as one drawn pool, with less noise."""
    greedy: bool = True
    """Also decode one greedy candidate per problem (for greedy pass@1)."""
    max_new_tokens: int = field(default=192, metadata={"min": 1})
    """Generation budget per candidate."""
    temperature: float = field(default=0.8, metadata={"gt": 0})
    """Sampling temperature (greedy decoding ignores it)."""
    top_p: float = field(default=0.95, metadata={"gt": 0, "max": 1})
    """Nucleus sampling: keep the most likely tokens up to this probability mass (1: off)."""
    batch_size: int = field(default=32, metadata={"min": 1})
    """Sequences decoded together (across problems; a problem's samples are never split
    below this unless it alone has more)."""
    prompt_style: Literal["auto", "prefill", "chat", "completion"] = "auto"
    """prefill (chat template, the answer begun with the prompt's code), chat (the model
    writes the whole function), completion (raw prompt, for base models), or auto
    (prefill when the tokenizer has a chat template, else completion)."""
    include_references: bool = False
    """Training sets only: add each problem's reference solution as one more candidate
    (sample -2), a verified positive for reranker pairs, as with the paper's
    ground-truth CodeContests solutions."""
    dataset_candidates: bool = True
    """Training sets: the first round's candidates include the programs the training sources
    ship (CodeContests' solutions and incorrect solutions), labelled by the sandbox like
    any candidate: pairs for the reranker without sampling."""
    plant_eval_references: bool = False
    """Evaluation sets: each problem's reference joins its pool as one more *sample* (a
    planted positive, flagged `planted`). For the tiny profile only: a random model solves
    nothing, so without it no problem has a choice and the reranker's eval figures are
    undefined. Never for reported results: it inflates every pass rate."""
    seed: int = field(default=1234, metadata={"min": 0})
    threads: int = field(default=0, metadata={"min": 0})
    """torch intra-op threads; 0 leaves torch's default."""
    backend: Literal["hf", "vllm"] = "hf"
    """hf: the project's sampler (`coderanker.decoding`, transformers; the CPU default), or
    vllm: vLLM's engine, for GPUs (`pip install -e '.[gpu]'` where torch is the CUDA build).
    Both give the same records from the same tokens; the tokens themselves differ (other
    kernels, other random streams), so a run's candidates depend on the backend."""

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"sample.temperature must be > 0, not {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sample.top_p must be in (0, 1], not {self.top_p!r}")
        if min(self.samples_per_problem, self.eval_samples_per_problem, self.eval_pool_size) < 0 \
                or self.max_new_tokens < 1:
            raise ValueError("sample: samples per problem must be >= 0 and max_new_tokens >= 1")


STYLES = ("prefill", "chat", "completion")


def resolve_style(style: str, tokenizer) -> str:
    """prefill (the default for chat models), chat or completion; auto picks prefill when the
    tokenizer has a chat template, else completion."""
    if style == "auto":
        return "prefill" if getattr(tokenizer, "chat_template", None) else "completion"
    if style not in STYLES:
        raise ValueError(f"prompt_style must be one of {STYLES} or auto, not {style!r}")
    return style


def model_input(problem: Problem, tokenizer, style: str) -> str:
    """The exact text the generator is conditioned on; the reranker scores it followed by
    the response, and PPO rolls out from it (one function for all three).

    prefill: the chat template with the assistant's turn already begun with the prompt's
    code in a code block, so the model writes only the body. The prompt's trailing
    whitespace is left for the model to write: ending the prefill on a newline token (one
    the model would have merged with the next line's indent) makes SmolLM2 close the block
    at once, ending it on the docstring's quotes makes it write the body. Left to answer freely,
    SmolLM2 restates the signature and docstring first and spends most of its token budget
    on them (the cpu profile's r0 eval pool: 90 of 300 completions cut at the limit, 71 of
    its 90 compile errors such cuts)."""
    if style == "completion":
        return problem.prompt
    text = tokenizer.apply_chat_template(chat_messages(problem), add_generation_prompt=True, tokenize=False)
    if style == "prefill":
        text += f"```{fence_name(problem.language)}\n{problem.prompt.rstrip()}"
    return text


def prompt_ids(problem: Problem, tokenizer, style: str) -> list[int]:
    """`model_input` as token ids: what sampling, PPO's queries and the reranker start from."""
    return tokenizer(model_input(problem, tokenizer, style), add_special_tokens=adds_special_tokens(style))["input_ids"]


def adds_special_tokens(style: str) -> bool:
    """Chat templates write their own special tokens; a raw prompt gets the tokenizer's."""
    return style == "completion"


def stop_strings(problem: Problem, style: str) -> tuple[str, ...] | None:
    """What ends a sampled answer: the closing fence and the problem's stop tokens
    (prefill), the stop tokens (completion); None for chat, which ends at a second fence."""
    if style == "chat":
        return None
    return (*problem.stop_tokens, "```") if style == "prefill" else tuple(problem.stop_tokens)


def generate(model, tokenizer, problems: list[Problem], config: SamplingConfig,
             generator_id: str = "", round_id: str = "") -> Iterator[dict]:
    """Yield candidate records: name, language, completion (what runs), response (what the
    reranker scores after the model input), sample, greedy, truncated (the token budget
    ran out first), generator, round.

    The N samples of a problem share one prefill: its prompt runs through the model once
    and the key/value cache is copied N times (prompts are most of the tokens: a 250-token
    prompt against answers of 30-90). Rows leave the batch as soon as they finish."""
    from tqdm.auto import tqdm

    from coderanker.decoding import decode

    style = resolve_style(config.prompt_style, tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    requests = decode_requests(problems, tokenizer, style, config)
    total = sum(r.copies for r in requests)
    with tqdm(total=total, desc="sample", unit="seq", mininterval=5) as bar:
        for request, outputs in decode(model, tokenizer, requests, style, config):
            yield from candidate_records(request.problem, style, outputs, request.greedy, generator_id, round_id)
            bar.update(request.copies)
    if config.include_references:
        yield from reference_candidates(problems, style, generator_id, round_id)


def decode_requests(problems: list[Problem], tokenizer, style: str, config: SamplingConfig) -> list:
    """What is decoded, in the order its records come out (both backends): every problem's
    samples, shortest model input first, then every problem's greedy answer in that order."""
    from coderanker.decoding import DecodeRequest

    ordered = sorted(problems, key=lambda p: len(model_input(p, tokenizer, style)))
    requests = []
    if config.samples_per_problem:
        requests += [DecodeRequest(p, config.samples_per_problem, greedy=False) for p in ordered]
    if config.greedy:
        requests += [DecodeRequest(p, 1, greedy=True) for p in ordered]
    return requests


def candidate_records(problem: Problem, style: str, outputs: list[tuple[str, bool]], greedy: bool,
                      generator_id: str, round_id: str) -> list[dict]:
    """The records of one problem's answers, each given as (generated text, truncated): the
    text as the decode loop hands it over (up to and including the token that completed a
    stop string; without the end-of-sequence token). Shared by both sampling backends."""
    return [
        {
            "name": problem.name,
            "language": problem.language,
            "completion": extract_completion(problem, text, style),
            "response": response_text(problem, text, style),
            "sample": -1 if greedy else index,
            "greedy": greedy,
            "truncated": truncated,
            "generator": generator_id,
            "round": round_id,
        }
        for index, (text, truncated) in enumerate(outputs)
    ]


def reference_candidates(problems: list[Problem], style: str, generator_id: str, round_id: str) -> Iterator[dict]:
    """include_references: each problem's reference after all sampled records, in file order."""
    for problem in problems:
        if problem.reference is not None:
            yield reference_candidate(problem, style, generator_id, round_id)


def planted_reference(problem: Problem, style: str, sample: int, generator_id: str, round_id: str) -> dict:
    """The reference as sample number `sample` of an evaluation pool (see plant_eval_references)."""
    return {**reference_candidate(problem, style, generator_id, round_id), "sample": sample, "reference": False,
            "planted": True, "truncated": False}


def response_text(problem: Problem, generated: str, style: str) -> str:
    """What the reranker scores after the model input: in prefill style the answer as PPO
    rolls it out, the generated text up to its stop closed by the fence (PPO stops at the
    fence token; an answer that ran out of tokens stays open); else the raw generated text."""
    if style != "prefill":
        return generated
    body = truncate_at_stop(generated, stop_strings(problem, style))
    return body + FENCE if len(body) < len(generated) else body


FENCE = "```"


def fence_name(language: str) -> str:
    return "python" if language == "py" else language


def reference_candidate(problem: Problem, style: str, generator_id: str, round_id: str) -> dict:
    """A problem's reference written as the generator would answer it.

    In chat style the answer is the whole function in a code block; a Python prompt's
    docstrings are left out, as the generator's own answers leave them out. Written with
    them, references differ from every sampled program in length and style, and a reranker
    trained on them learns "looks like a reference" instead of "is correct" (measured on
    the cpu profile: eval ROC-AUC 0.40 with docstrings, 0.68 without)."""
    head = strip_docstrings(problem.prompt) if problem.language == "py" else problem.prompt
    chat = f"```{fence_name(problem.language)}\n{head}{problem.reference}```"
    gap = problem.prompt[len(problem.prompt.rstrip()) :]  # what the model writes first in prefill style
    response = {"chat": chat, "prefill": gap + problem.reference + FENCE}.get(style, problem.reference)
    return {"name": problem.name, "language": problem.language, "completion": problem.reference,
            "response": response, "sample": -2, "greedy": False, "reference": True,
            "generator": generator_id, "round": round_id}
