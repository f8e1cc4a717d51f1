"""The reranker: a causal LM with a scalar head (sequence classification, one output).

Its input is exactly what the PPO reward model sees: the generator's model input (chat
template with the prefilled code, or raw prompt) followed by the response up to the token
PPO's rollout stops on (the closing code fence in prefill style, else the end-of-sequence
token), tokenised as the two parts PPO concatenates. `encode_pair` is the
one function that builds it, and the prompt style it needs travels with the model
(`coderanker.json` in its directory), so training, mining, evaluation, `coderanker rerank`
and PPO's reward all score the same text.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from coderanker.problems import Problem

log = logging.getLogger(__name__)


RERANKER_META = "coderanker.json"
BATCH_SIZE, MAX_LENGTH = 8, 1024  # scoring defaults (`coderanker rerank`, the served model)
#: In a reranker logged to MLflow (a pyfunc model, see coderanker.serving), the pyfunc
#: artifact holding its Hugging Face directory.
HF_ARTIFACT = "hf_model"


#: In a reranker with a likelihood prior, the subdirectory holding the policy (a causal LM
#: on the same tokenizer) whose log-probability of the response is added to the head's score.
LIKELIHOOD_POLICY = "likelihood_policy"
#: Its content hash in `coderanker.json`, as DVC records a directory's: rerankers whose priors
#: have the same one share a prior within a stage (`Reranker.load`'s `priors`).
LIKELIHOOD_MD5 = "likelihood_policy_md5"
#: The files of a Hugging Face causal LM directory the prior needs (weights, sharded or not,
#: and configs); tokenizer files and anything else a policy directory holds stay out.
POLICY_FILES = ("config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json",
                "pytorch_model*.bin", "pytorch_model.bin.index.json")


def write_meta(model_dir: str | os.PathLike, prompt_style: str, likelihood_weight: float = 0.0,
               likelihood_md5: str | None = None) -> None:
    """Record the (resolved) prompt style the reranker scores texts in, and the weight of its
    likelihood prior (0: none) with its policy's content hash (see `attach_likelihood`)."""
    meta: dict = {"prompt_style": prompt_style}
    if likelihood_weight:
        meta["likelihood_weight"] = likelihood_weight
        if likelihood_md5:
            meta[LIKELIHOOD_MD5] = likelihood_md5
    Path(model_dir, RERANKER_META).write_text(json.dumps(meta) + "\n")


def read_meta(model_dir: str | os.PathLike) -> dict:
    path = Path(model_dir, RERANKER_META)
    return json.loads(path.read_text()) if path.exists() else {}


def read_prompt_style(model_dir: str | os.PathLike, default: str = "auto") -> str:
    return read_meta(model_dir).get("prompt_style", default)


def attach_likelihood(model_dir: str | os.PathLike, policy_dir: str | os.PathLike, weight: float,
                      prompt_style: str | None = None) -> None:
    """Give the reranker in `model_dir` a likelihood prior: its score becomes the head's
    score plus `weight` times the total log-probability of the response under the policy in
    `policy_dir` (its weights and configs, `POLICY_FILES`, copied into the reranker, so the
    directory, its MLflow model and `coderanker rerank` stay self-contained). 0 removes the
    prior. Writes the reranker's metadata (`prompt_style`, default: the one it records)."""
    import shutil

    from coderanker.tracking import content_md5

    style = prompt_style or read_prompt_style(model_dir)
    target = Path(model_dir, LIKELIHOOD_POLICY)
    if target.exists():
        shutil.rmtree(target)
    if weight:
        if not Path(policy_dir, "config.json").is_file():
            raise FileNotFoundError(f"{Path(policy_dir, 'config.json')}: the likelihood prior's policy is not a "
                                    f"Hugging Face model directory")
        target.mkdir()
        for path in sorted({p for pattern in POLICY_FILES for p in Path(policy_dir).glob(pattern) if p.is_file()}):
            shutil.copyfile(path, target / path.name)
    write_meta(model_dir, style, weight, content_md5(target) if weight else None)


def init_reranker(base_dir: str | os.PathLike, out_dir: str | os.PathLike, seed: int = 0, layers: int = 0,
                  prompt_style: str = "auto") -> Path:
    """A fresh reranker on the generator's base (same tokenizer), scalar head seeded.

    `layers` > 0 keeps only the base's bottom `layers` transformer layers (0: all). Scoring,
    training, and PPO's reward and value passes then cost that fraction of the base's; a
    classifier on a pretrained model's middle layers loses little (measured on the cpu
    profile: the bottom 10 of SmolLM2's 30 layers reached eval ROC-AUC 0.68 against 0.59
    for all 30 with the top 6 trained, at 1.5x the training speed)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if layers < 0:
        raise ValueError(f"reranker layers must be >= 0, got {layers}")
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    backbone = getattr(model, model.base_model_prefix)
    if 0 < layers < len(backbone.layers):
        backbone.layers = backbone.layers[:layers]
        model.config.num_hidden_layers = layers
        if getattr(model.config, "layer_types", None):
            model.config.layer_types = model.config.layer_types[:layers]
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    from coderanker.generation import resolve_style

    write_meta(out_dir, resolve_style(prompt_style, tokenizer))
    return Path(out_dir)


def resolve_model_uri(uri: str) -> str:
    """A local Hugging Face directory for a path or an MLflow URI (models:/name@alias,
    runs:/id/reranker); an MLflow model (downloaded, or a directory) gives its HF artifact."""
    if "://" in uri or uri.startswith(("models:/", "runs:/")):
        import mlflow

        from coderanker.tracking import tracking_uri

        mlflow.set_tracking_uri(tracking_uri())  # MLFLOW_TRACKING_URI, else ./mlflow.db
        uri = mlflow.artifacts.download_artifacts(artifact_uri=uri)
    if not Path(uri).is_dir():
        raise FileNotFoundError(f"{uri}: no reranker directory there")
    return str(hf_directory(uri))


def hf_directory(path: str | os.PathLike) -> Path:
    """A reranker's Hugging Face directory: `path` itself, or in an MLflow model (it has an
    MLmodel file) the directory of its `hf_model` pyfunc artifact."""
    if not Path(path, "MLmodel").exists():
        return Path(path)
    from mlflow.models import Model

    artifacts = Model.load(str(path)).flavors.get("python_function", {}).get("artifacts", {})
    if HF_ARTIFACT not in artifacts:
        raise FileNotFoundError(f"{path}: an MLflow model without a {HF_ARTIFACT!r} artifact, not a reranker")
    return Path(path, artifacts[HF_ARTIFACT]["path"])


class LikelihoodPrior:
    """A causal LM scoring a response by its total log-probability given the query. With
    `memo`, each (query ids, answer ids) item is computed once: rerankers whose priors are the
    same policy (the same `LIKELIHOOD_MD5`) share one, so a stage scoring one pool with two of
    them runs the policy once."""

    def __init__(self, model, memo: bool = False):
        self.model = model.eval()
        self.memo: dict | None = {} if memo else None

    def log_likelihoods(self, items: list[tuple[list[int], list[int]]], pad: int, batch_size: int) -> list[float]:
        return memoised(self.memo, items, lambda missing: response_log_likelihoods(self.model, missing, pad,
                                                                                   batch_size))


class Reranker:
    """Scores (problem, response) pairs; higher means more likely to pass.

    With `memo`, scores are kept by (query ids, answer ids), so a stage that scores the same
    candidates twice runs the model once (the first round's evaluate: its eval pool is the
    shared pool); off by default, as a long-lived scorer (the served model) would keep a key
    for every text it saw."""

    def __init__(self, model, tokenizer, prompt_style: str = "auto", max_length: int = MAX_LENGTH,
                 batch_size: int = BATCH_SIZE, likelihood=None, likelihood_weight: float = 0.0,
                 memo: bool = False):
        from coderanker.generation import resolve_style

        self.model, self.tokenizer = model.eval(), tokenizer
        self.style = resolve_style(prompt_style, tokenizer)
        self.max_length, self.batch_size = max_length, batch_size
        # the likelihood prior: a causal LM whose log-probability of the response, times the
        # weight, is added to the head's score (attach_likelihood)
        if likelihood is not None and not isinstance(likelihood, LikelihoodPrior):
            likelihood = LikelihoodPrior(likelihood)
        self.likelihood = likelihood if likelihood is not None and likelihood_weight else None
        self.likelihood_weight = likelihood_weight if self.likelihood is not None else 0.0
        self.memo: dict | None = {} if memo else None

    @classmethod
    def load(cls, uri: str, placement=None, priors: dict | None = None, **kwargs) -> Reranker:
        """A reranker directory or MLflow URI, on `placement` (default: auto device and
        dtype), scoring in the prompt style it was trained with. `priors`, a dict shared by
        the loads of one stage, holds the likelihood priors loaded so far by fingerprint and
        placement: a reranker whose prior is one of them shares it (and its memo)."""
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

        from coderanker.runtime import Placement

        path = resolve_model_uri(uri)
        placement = placement or Placement.of()
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = placement.load(AutoModelForSequenceClassification, path, num_labels=1)
        meta = read_meta(path)
        kwargs.setdefault("prompt_style", meta.get("prompt_style", "auto"))
        if meta.get("likelihood_weight"):
            policy = Path(path, LIKELIHOOD_POLICY)
            if not policy.is_dir():
                raise FileNotFoundError(f"{Path(path, RERANKER_META)}: likelihood_weight is set but the reranker has "
                                        f"no {LIKELIHOOD_POLICY}/ directory")
            if priors is None:
                kwargs["likelihood"] = LikelihoodPrior(placement.load(AutoModelForCausalLM, policy))
            else:
                from coderanker.tracking import content_md5

                # the recorded hash (attach_likelihood), else the directory's own
                key = (meta.get(LIKELIHOOD_MD5) or content_md5(policy), placement)
                if key not in priors:
                    priors[key] = LikelihoodPrior(placement.load(AutoModelForCausalLM, policy), memo=True)
                kwargs["likelihood"] = priors[key]
            kwargs["likelihood_weight"] = float(meta["likelihood_weight"])
        return cls(model, tokenizer, **kwargs)

    def encode(self, problem: Problem, response: str) -> list[int]:
        return encode_pair(self.tokenizer, self.style, problem, response, self.max_length)

    def score_ids(self, sequences: list[list[int]]) -> list[float]:
        import torch

        pad = self.tokenizer.pad_token_id
        scores: list[float] = []
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = [sequences[i] for i in order[start : start + self.batch_size]]
                width = max(len(ids) for ids in batch)
                device = self.model.device
                ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch], device=device)
                mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch], device=device)
                scores += self.model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist()
        result = [0.0] * len(sequences)
        for position, index in enumerate(order):
            result[index] = scores[position]
        return result

    def score(self, problem: Problem, responses: list[str]) -> list[float]:
        return self.score_parts([self.encode_parts(problem, response) for response in responses])

    def score_candidates(self, problems: dict[str, Problem], candidates: list[dict]) -> list[float]:
        """Scores for candidate records (which carry `name` and `response`)."""
        return self.score_parts([self.encode_parts(problems[c["name"]], candidate_response(c)) for c in candidates])

    def encode_parts(self, problem: Problem, response: str) -> tuple[list[int], list[int]]:
        return encode_parts(self.tokenizer, self.style, problem, response, self.max_length)

    def score_parts(self, items: list[tuple[list[int], list[int]]]) -> list[float]:
        """Scores of (query ids, answer ids) pairs, each query run once: its key/value cache
        is shared by all the answers to it (the query, a chat prompt with the problem's
        code, is most of the tokens). Equal to score_ids on the concatenations, plus the
        likelihood prior where the reranker has one."""
        pad = self.tokenizer.pad_token_id

        def compute(distinct: list[tuple[list[int], list[int]]]) -> list[float]:
            heads = shared_prefix_pass(self.model, distinct, pad, self.batch_size,
                                       lambda logits, ids, lengths, first: logits[:, 0].float().tolist())
            if self.likelihood is None:
                return heads
            priors = self.likelihood.log_likelihoods(distinct, pad, self.batch_size)
            return [score + self.likelihood_weight * prior for score, prior in zip(heads, priors, strict=True)]

        # identical items (a model's samples repeat) are scored once, and with a memo only once
        return memoised(self.memo, items, compute)


def item_key(query: list[int], answer: list[int]) -> bytes:
    """A (query ids, answer ids) item's memo key: a 128-bit digest, not the ids (a stage's
    memo of thousands of candidates would hold every query's ids once per candidate)."""
    import hashlib
    from array import array

    return hashlib.blake2b(array("q", [len(query), *query, *answer]).tobytes(), digest_size=16).digest()


def memoised(memo: dict | None, items: list[tuple[list[int], list[int]]], compute) -> list[float]:
    """One value per item: `compute(distinct items)` runs on the items neither repeated earlier
    in `items` nor in `memo` (None: no memo), which then keeps their values."""
    keys = [item_key(q, a) for q, a in items]
    known = memo if memo is not None else {}
    missing = {key: item for key, item in zip(keys, items, strict=True) if key not in known}
    computed = dict(zip(missing, compute([(list(q), list(a)) for q, a in missing.values()]), strict=True))
    if memo is not None:
        memo.update(computed)
    return [computed[key] if key in computed else known[key] for key in keys]


def shared_prefix_pass(model, items: list[tuple[list[int], list[int]]], pad: int, batch_size: int,
                       reduce, last_only: bool = False) -> list:
    """One value per (query ids, answer ids) item from `model`'s forward pass over the
    answers, each distinct query run once and its key/value cache shared by the answers to
    it. `reduce(logits, ids, lengths, first)` turns a batch's output (logits of the padded
    answers `ids`, their `lengths`, and `first`: the logits at the query's last token) into
    the batch's values, in order. `last_only`: a causal LM forms logits for the query's last
    position only (`first`), not for every query position."""
    import torch
    from transformers import DynamicCache

    by_query: dict[tuple[int, ...], list[int]] = {}
    for index, (query, _) in enumerate(items):
        by_query.setdefault(tuple(query), []).append(index)
    result: list = [None] * len(items)
    device = model.device
    overhead = RUN_OVERHEAD if device.type == "cpu" else None
    with torch.inference_mode():
        for query, indices in by_query.items():
            prefix = DynamicCache()
            first = model(input_ids=torch.tensor([query], device=device), cache=prefix, use_cache=True,
                          **({"logits_to_keep": 1} if last_only else {})).logits[0, -1]
            shared = [(keys, values) for keys, values, *_ in prefix]
            indices = sorted(indices, key=lambda i: len(items[i][1]))
            for start, end in length_runs([len(items[i][1]) for i in indices], batch_size, overhead):
                chunk = indices[start:end]
                answers = [items[i][1] for i in chunk]
                width = max(len(a) for a in answers)
                ids = torch.tensor([a + [pad] * (width - len(a)) for a in answers], device=device)
                mask = torch.tensor([[1] * (len(query) + len(a)) + [0] * (width - len(a)) for a in answers],
                                    device=device)
                cache = DynamicCache(ddp_cache_data=[(k.expand(len(chunk), -1, -1, -1),
                                                      v.expand(len(chunk), -1, -1, -1)) for k, v in shared])
                logits = model(input_ids=ids, attention_mask=mask, cache=cache).logits
                values = reduce(logits, ids, [len(a) for a in answers], first)
                for i, value in zip(chunk, values, strict=True):
                    result[i] = value
    return result


RUN_OVERHEAD = 16
"""A forward call's fixed cost in answer tokens on a CPU (SmolLM2, bf16 on 2 cores: a call
of its 30 layers costs ~10-20 ms of Python and dispatch beside ~1.2 ms a token). On a GPU a
call costs hundreds of tokens or more, so there the runs are as few as batch_size allows
(what fixed batches gave) and cut to the fewest padded tokens among those."""


def length_runs(lengths: list[int], batch_size: int, overhead: int | None = RUN_OVERHEAD) -> list[tuple[int, int]]:
    """Ascending `lengths` cut into consecutive runs (start, end) of at most `batch_size`,
    each padded to its longest, with the fewest padded tokens plus `overhead` per run (a
    problem's samples range from a line to the token limit: one batch of them was about
    twice their tokens; exact by dynamic programming over the cut points). `overhead` None:
    the fewest runs first."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if overhead is None:
        overhead = len(lengths) * max(lengths, default=0) + 1  # above any padding a cut could save
    best, cut = [0] + [float("inf")] * len(lengths), [0] * (len(lengths) + 1)
    for end in range(1, len(lengths) + 1):
        for start in range(max(0, end - batch_size), end):
            cost = best[start] + (end - start) * lengths[end - 1] + overhead
            if cost < best[end]:
                best[end], cut[end] = cost, start
    runs, end = [], len(lengths)
    while end:
        runs.append((cut[end], end))
        end = cut[end]
    return runs[::-1]


def response_log_likelihoods(model, items: list[tuple[list[int], list[int]]], pad: int,
                             batch_size: int) -> list[float]:
    """The total log-probability of each item's answer ids (the response and its closing
    token) given its query ids, under the causal LM `model`."""
    import torch

    def totals(logits, ids, lengths, first):
        # position t predicts answer token t + 1; the query's last position predicts token 0
        logits = logits.float()
        following = (logits[:, :-1].gather(2, ids[:, 1:, None])[..., 0] - logits[:, :-1].logsumexp(-1))
        head = torch.log_softmax(first.float(), -1)[ids[:, 0]]
        return [float(head[row] + following[row, : length - 1].sum()) for row, length in enumerate(lengths)]

    return shared_prefix_pass(model, items, pad, batch_size, totals, last_only=True)


def candidate_response(candidate: dict) -> str:
    """The generated text to score; candidates made outside coderanker may carry only a completion."""
    return candidate.get("response") or candidate["completion"]


def encode_pair(tokenizer, style: str, problem: Problem, response: str, max_length: int) -> list[int]:
    """Token ids of model input + response + EOS, as PPO's reward model sees them
    (the prompt is kept whole; the response is cut to fit max_length)."""
    query, answer = encode_parts(tokenizer, style, problem, response, max_length)
    return query + answer


def encode_pairs(tokenizer, style: str, problems: dict[str, Problem], pairs: list[dict],
                 max_length: int) -> list[dict]:
    """Training pairs ({"name", "chosen", "rejected"[, "margin"]}, `problems` by name) as the
    token-id pairs RewardTrainer takes: {"chosen_ids", "rejected_ids"[, "margin"]}."""
    return [{"chosen_ids": encode_pair(tokenizer, style, problems[p["name"]], p["chosen"], max_length),
             "rejected_ids": encode_pair(tokenizer, style, problems[p["name"]], p["rejected"], max_length),
             **({"margin": p["margin"]} if "margin" in p else {})} for p in pairs]


def encode_parts(tokenizer, style: str, problem: Problem, response: str,
                 max_length: int) -> tuple[list[int], list[int]]:
    """The two parts of `encode_pair`: the model input's ids, and the response's ids + EOS."""
    from coderanker.generation import prompt_ids

    query = prompt_ids(problem, tokenizer, style)
    answer = tokenizer(response, add_special_tokens=False)["input_ids"]
    room = max(max_length - len(query) - 1, 0)
    # PPO scores its rollout up to the token it stopped on: EOS, or in prefill style the
    # closing fence, which the response then already ends with
    closed = style == "prefill" and answer and answer[-1] == fence_id(tokenizer)
    return query, answer[:room] + ([answer[-1]] if closed and len(answer) > room else []) + \
        ([] if closed else [tokenizer.eos_token_id])


def fence_id(tokenizer) -> int | None:
    """The token of a closing code fence when it is a single token (PPO stops on it), else None."""
    ids = tokenizer("```", add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 else None
