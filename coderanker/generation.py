"""Batched sampling of candidate programs with transformers.

Sequences from several problems share a batch (left padding, KV cache); each stops on its
own at the end of its code block (chat) or at a stop token (completion). Seeded: the same
model, problems and config give the same candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from coderanker.problems import Problem
from coderanker.prompting import chat_messages, extract_completion, strip_docstrings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingConfig:
    """How candidates are sampled; the `sample` section of params.yaml."""

    samples_per_problem: int = 8
    """Sampled candidates per problem (N of pass@N)."""
    greedy: bool = True
    """Also decode one greedy candidate per problem (for greedy pass@1)."""
    max_new_tokens: int = 192
    """Generation budget per candidate."""
    temperature: float = 0.8
    top_p: float = 0.95
    batch_size: int = 32
    """Sequences decoded together (across problems)."""
    prompt_style: str = "auto"
    """chat, completion, or auto (chat when the tokenizer has a chat template)."""
    include_references: bool = False
    """Training sets only: add each problem's reference solution as one more candidate
    (sample -2), a verified positive for reranker pairs, as with the paper's
    ground-truth CodeContests solutions."""
    seed: int = 1234
    threads: int = 0
    """torch intra-op threads; 0 leaves torch's default."""



def resolve_style(style: str, tokenizer) -> str:
    if style == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "completion"
    if style not in ("chat", "completion"):
        raise ValueError(f"prompt_style must be chat, completion or auto, not {style!r}")
    return style


def model_input(problem: Problem, tokenizer, style: str) -> str:
    """The exact text the generator is conditioned on (the reranker sees it too)."""
    if style == "chat":
        return tokenizer.apply_chat_template(chat_messages(problem), add_generation_prompt=True, tokenize=False)
    return problem.prompt


class _StopWhenDone:
    """Per-sequence stop: a closed code block (chat) or any stop token (completion)."""

    def __init__(self, tokenizer, prompt_len: int, stops: list[tuple[str, ...]] | None):
        self.tokenizer, self.prompt_len, self.stops = tokenizer, prompt_len, stops

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        done = []
        for i, text in enumerate(texts):
            if self.stops is None:  # an opening and a closing fence: the code block is complete
                done.append(text.count("```") >= 2)
            else:
                done.append(any(token in text for token in self.stops[i]))
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def generate(model, tokenizer, problems: list[Problem], config: SamplingConfig,
             generator_id: str = "", round_id: str = "") -> Iterator[dict]:
    """Yield candidate records: name, language, completion (what runs), response (the raw
    generated text, what the reranker scores after the model input), sample, greedy,
    generator, round."""
    import torch
    from tqdm.auto import tqdm

    if config.threads:
        torch.set_num_threads(config.threads)
    style = resolve_style(config.prompt_style, tokenizer)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    jobs = [(p, i, False) for p in problems for i in range(config.samples_per_problem)]
    if config.greedy:
        jobs += [(p, -1, True) for p in problems]
    texts = {p.name: model_input(p, tokenizer, style) for p in problems}
    jobs.sort(key=lambda job: (job[2], len(texts[job[0].name])))  # similar lengths pad less
    model.eval()
    with tqdm(total=len(jobs), desc="sample", unit="seq", mininterval=5) as bar:
        for start in range(0, len(jobs), config.batch_size):
            batch = jobs[start : start + config.batch_size]
            outputs = _generate_batch(model, tokenizer, [texts[p.name] for p, _, _ in batch],
                                      [p.stop_tokens for p, _, _ in batch], style, batch[0][2],
                                      config, seed=config.seed + start)
            for (problem, sample, greedy), text in zip(batch, outputs, strict=True):
                yield {
                    "name": problem.name,
                    "language": problem.language,
                    "completion": extract_completion(problem, text, style),
                    "response": text,
                    "sample": sample,
                    "greedy": greedy,
                    "generator": generator_id,
                    "round": round_id,
                }
            bar.update(len(batch))
    if config.include_references:
        for problem in problems:
            if problem.reference is not None:
                yield reference_candidate(problem, style, generator_id, round_id)


def reference_candidate(problem: Problem, style: str, generator_id: str, round_id: str) -> dict:
    """A problem's reference written as the generator would answer it.

    In chat style the answer is the whole function in a code block; a Python prompt's
    docstrings are left out, as the generator's own answers leave them out. Written with
    them, references differ from every sampled program in length and style, and a reranker
    trained on them learns "looks like a reference" instead of "is correct" (measured on
    the cpu profile: eval ROC-AUC 0.40 with docstrings, 0.68 without)."""
    fence = "python" if problem.language == "py" else problem.language
    head = strip_docstrings(problem.prompt) if problem.language == "py" else problem.prompt
    response = problem.reference if style == "completion" else f"```{fence}\n{head}{problem.reference}```"
    return {"name": problem.name, "language": problem.language, "completion": problem.reference,
            "response": response, "sample": -2, "greedy": False, "reference": True,
            "generator": generator_id, "round": round_id}


def _generate_batch(model, tokenizer, prompts, stops, style, greedy, config, seed):
    import torch
    from transformers import StoppingCriteriaList

    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=style != "chat")
    prompt_len = encoded["input_ids"].shape[1]
    torch.manual_seed(seed)
    stopper = _StopWhenDone(tokenizer, prompt_len, None if style == "chat" else stops)
    sampling = {} if greedy else {"temperature": config.temperature, "top_p": config.top_p}
    with torch.inference_mode():
        out = model.generate(
            **encoded,
            max_new_tokens=config.max_new_tokens,
            do_sample=not greedy,
            pad_token_id=tokenizer.pad_token_id,
            stopping_criteria=StoppingCriteriaList([stopper]),
            **sampling,
        )
    return tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
