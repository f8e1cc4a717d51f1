"""Pure evaluation maths: pass@k, greedy and oracle pass rates, reranked top-1, rank metrics,
paired bootstrap intervals, generate-prune-rank figures and the consensus baseline.

Inputs are execution results (dicts with `name`, `status`, `greedy`, optional `reference`,
`score`, `visible_status` (the status on the problem's visible example tests, absent when it
has none), `truncated` (the sampler hit its token limit) and `completion` and `language`, or
`program` (their `program_key`), for the consensus figures).
`sandbox_error` results are infrastructure failures: they are left out of every count.
Every figure is None when undefined, never NaN; every interval is [low, high] or None.

The reranker's pick is made from a pool of a problem's samples. With `pool` 0 (or at least
the samples there are) the pool is every sample and a pick passes or not. With more samples
than `pool`, a figure is its exact expectation over every pool of `pool` samples drawn from
them without replacement (a U-statistic, as pass@k's estimator is): the figures of a pool of
`pool`, with far less noise than one drawn pool gives (`pool_hit_rate`).
"""

from __future__ import annotations

import ast
import hashlib
import textwrap
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from math import comb

import numpy as np

PASSED, SANDBOX_ERROR = "passed", "sandbox_error"
BOOTSTRAP_RESAMPLES = 2000
CONSENSUS_POOLS = 256
"""Pools drawn per problem to estimate the consensus pick's expectation over pools (seeded)."""
FIGURE_FIELDS = ("name", "status", "greedy", "reference", "visible_status", "truncated")
"""The fields of a result that the figures here read (a reranker's score aside)."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from n samples with c correct (Chen et al. 2021):
    1 - C(n-c, k) / C(n, k), computed as a stable product."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def group_by_problem(results: Iterable[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for result in results:
        if result["status"] != SANDBOX_ERROR:
            groups[result["name"]].append(result)
    return dict(groups)


def figure_fields(result: dict, *extra: str) -> dict:
    """The result cut to FIGURE_FIELDS and `extra` (those it has), with `program` (its
    `program_key`) in place of the program: the figures of the cut results equal those of the
    full ones, without holding programs or outputs."""
    cut = {key: result[key] for key in (*FIGURE_FIELDS, *extra) if key in result}
    program = program_key(result)
    return cut if program is None else {**cut, "program": program}


def program_key(result: dict) -> str | None:
    """Which program a result ran, for the consensus vote: a digest of its Python syntax tree
    (comments, blank lines and formatting do not count), or of its whitespace-collapsed text in
    other languages and where it does not parse; the result's `program` when it carries one;
    None without a completion."""
    if "program" in result:
        return result["program"]
    if "completion" not in result:
        return None
    text = " ".join(result["completion"].split())
    if result.get("language", "py") == "py":
        try:
            text = ast.dump(ast.parse(textwrap.dedent(result["completion"])))
        except (SyntaxError, ValueError, RecursionError):  # ValueError: a NUL byte; RecursionError: deep nesting
            pass
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def sampled(group: list[dict]) -> list[dict]:
    return [r for r in group if not r.get("greedy") and not r.get("reference")]


def passes(result: dict) -> bool:
    return result["status"] == PASSED


def count_passing(samples: list[dict]) -> int:
    return sum(map(passes, samples))


def sample_lists(groups: dict[str, list[dict]]) -> list[list[dict]]:
    """The sampled candidates of each problem that has any."""
    return [samples for samples in map(sampled, groups.values()) if samples]


def choice_sample_lists(groups: dict[str, list[dict]]) -> list[list[dict]]:
    """The sampled candidates of each problem with a choice: both passing and failing samples."""
    return [samples for samples in sample_lists(groups) if 0 < count_passing(samples) < len(samples)]


def mean_or_none(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def bootstrap_ci95(
    values: Sequence[float],
    denominators: Sequence[float] | None = None,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> list[float] | None:
    """95% percentile interval of a figure over problems: resample problems with replacement
    and recompute sum(values) / sum(denominators) on each resample.

    Without denominators the figure is the mean of the per-problem values; with them, a pooled
    ratio such as wins / pairs (each must be positive). Pass per-problem differences on the same
    candidates for a paired interval. None with fewer than two problems."""
    numerators = np.asarray(values, dtype=float)
    weights = np.ones_like(numerators) if denominators is None else np.asarray(denominators, dtype=float)
    if numerators.shape != weights.shape or (weights <= 0).any():
        raise ValueError("need one positive denominator per value")
    if len(numerators) < 2:
        return None
    index = np.random.default_rng(seed).integers(0, len(numerators), size=(resamples, len(numerators)))
    low, high = np.percentile(numerators[index].sum(axis=1) / weights[index].sum(axis=1), [2.5, 97.5])
    return [float(low), float(high)]


def mean_pass_at_k(groups: dict[str, list[dict]], k: int) -> float | None:
    """Mean over problems with at least k sampled candidates; None when there are none."""
    values = []
    for group in groups.values():
        samples = sampled(group)
        if len(samples) >= k:
            values.append(pass_at_k(len(samples), sum(r["status"] == PASSED for r in samples), k))
    return float(np.mean(values)) if values else None


def greedy_pass_at_1(groups: dict[str, list[dict]]) -> float | None:
    """Fraction of problems whose greedy candidate passes (problems without one are skipped)."""
    outcomes = [
        any(r["status"] == PASSED for r in greedy)
        for greedy in ([r for r in g if r.get("greedy")] for g in groups.values())
        if greedy
    ]
    return float(np.mean(outcomes)) if outcomes else None


def oracle_pass_at_n(groups: dict[str, list[dict]], pool: int = 0) -> float | None:
    """Fraction of problems with at least one passing candidate in the pool (pass@N; with a
    `pool` smaller than the samples, pass@pool's unbiased estimate)."""
    outcomes = [pass_at_k(len(s), count_passing(s), pool_size(len(s), pool)) for s in sample_lists(groups)]
    return float(np.mean(outcomes)) if outcomes else None


def pool_size(samples: int, pool: int) -> int:
    """The size of the pool a pick is made from: `pool`, or every sample when pool is 0 or larger."""
    return samples if pool <= 0 or pool >= samples else pool


def pool_hit_rate(ranked: Sequence[bool], pool: int = 0, k: int = 1) -> float:
    """Whether a passing sample is among the k best-ranked of the pool, in expectation over
    every pool of `pool` samples drawn without replacement from `ranked` (each sample's
    outcome, best-ranked first); exact, 0 or 1, when the pool is every sample.

    The k best of a pool all fail when its k-th best sample is the j-th ranked, fails, and
    k - 1 of the failing samples ranked above j and pool - k of the n - j below it complete
    the pool: P = sum over failing j of C(fails above j, k - 1) C(n - j, pool - k) / C(n, pool)."""
    n = len(ranked)
    if n == 0:
        raise ValueError("no samples to pick from")
    size = pool_size(n, pool)
    k = min(k, size)
    all_fail, fails_above = 0, 0
    for j, ok in enumerate(ranked, 1):
        if not ok:
            all_fail += comb(fails_above, k - 1) * comb(n - j, size - k)
            fails_above += 1
    return 1.0 - all_fail / comb(n, size)


def ranked_outcomes(samples: list[dict], score: Callable[[dict], float]) -> list[bool]:
    """Whether each sample passes, best-scored first (ties to the earlier sample, as `top_sample`)."""
    order = sorted(range(len(samples)), key=lambda i: (score(samples[i]), -i), reverse=True)
    return [passes(samples[i]) for i in order]


def pick_rate(samples: list[dict], score: Callable[[dict], float], pool: int = 0) -> float:
    """Whether the top-scored sample of the pool passes (see `pool_hit_rate`)."""
    return pool_hit_rate(ranked_outcomes(samples, score), pool)


def top_sample(samples: list[dict], score: Callable[[dict], float]) -> dict:
    """The reranker's pick: the top-scored sample; ties go to the earliest sample, so a
    constant score reduces to "take sample 0"."""
    return samples[max(range(len(samples)), key=lambda i: (score(samples[i]), -i))]


def reranked_pass_at_1(groups: dict[str, list[dict]], score: Callable[[dict], float], pool: int = 0) -> float | None:
    """Fraction of problems whose top-scored sampled candidate of the pool passes (see `top_sample`)."""
    return mean_or_none(top_pick_outcomes(sample_lists(groups), score, pool))


def top_pick_outcomes(problems: list[list[dict]], score: Callable[[dict], float], pool: int = 0) -> list[float]:
    """Per problem (its list of samples): 1.0 when the pool's top-scored sample passes, else 0.0
    (its expectation over pools, see `pool_hit_rate`)."""
    return [pick_rate(samples, score, pool) for samples in problems]


def roc_auc(scores: list[float], labels: list[bool]) -> float | None:
    """Probability that a random positive outscores a random negative (ties count half)."""
    scores_arr, labels_arr = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    pos, neg = scores_arr[labels_arr], scores_arr[~labels_arr]
    if len(pos) == 0 or len(neg) == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    # average ranks over ties
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def pairwise_counts(groups: dict[str, list[dict]], score: Callable[[dict], float]) -> tuple[list[float], list[int]]:
    """Per problem with at least one (passing, failing) sample pair: the pairs where the passing
    one scores higher (ties count half), and the number of pairs."""
    wins, totals = [], []
    for samples in choice_sample_lists(groups):
        good = np.array([score(r) for r in samples if passes(r)], dtype=float)[:, None]
        bad = np.array([score(r) for r in samples if not passes(r)], dtype=float)[None, :]
        wins.append(float((good > bad).sum() + 0.5 * (good == bad).sum()))
        totals.append(good.size * bad.size)
    return wins, totals


def pairwise_accuracy(groups: dict[str, list[dict]], score: Callable[[dict], float]) -> float | None:
    """Over all (passing, failing) pairs of the same problem: the fraction where the passing
    one scores higher (ties count half)."""
    wins, totals = pairwise_counts(groups, score)
    return sum(wins) / sum(totals) if totals else None


def gain_per_problem(groups: dict[str, list[dict]], score: Callable[[dict], float], pool: int = 0) -> list[float]:
    """Per problem with samples: [the pool's top-scored sample passes] - (fraction of samples that pass)."""
    return [pick_rate(samples, score, pool) - count_passing(samples) / len(samples) for samples in sample_lists(groups)]


def reranked_gain(groups: dict[str, list[dict]], score: Callable[[dict], float], pool: int = 0) -> dict:
    """How much the reranker beats a random pick, with its noise.

    Per problem, d = [top-scored sample passes] - (fraction of samples that pass); the mean
    of d is reranked pass@1 minus pass@1. Its standard error over problems (a paired
    comparison on the same candidates) is the noise. Only problems with both passing and
    failing samples can give d != 0; their number is `problems_with_choice`."""
    diffs, choice = gain_per_problem(groups, score, pool), len(choice_sample_lists(groups))
    if not diffs:
        return {"reranked_gain": None, "reranked_gain_se": None, "problems_with_choice": 0}
    se = float(np.std(diffs, ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else None
    return {"reranked_gain": float(np.mean(diffs)), "reranked_gain_se": se, "problems_with_choice": choice}


def gap_closed(reranked: float | None, random: float | None, oracle: float | None) -> float | None:
    """Share of the headroom between a random pick and the oracle that the reranker closes:
    (reranked - random) / (oracle - random); negative when it does worse than random. None when
    there is no headroom (no problem with a choice)."""
    if reranked is None or random is None or oracle is None or abs(oracle - random) < 1e-12:
        return None
    return (reranked - random) / (oracle - random)


def minus_greedy_per_problem(groups: dict[str, list[dict]], score: Callable[[dict], float],
                             pool: int = 0) -> list[float]:
    """Per problem with both a greedy candidate and samples: [top pick passes] - [greedy passes]."""
    diffs = []
    for group in groups.values():
        samples, greedy = sampled(group), [r for r in group if r.get("greedy")]
        if samples and greedy:
            diffs.append(pick_rate(samples, score, pool) - float(any(map(passes, greedy))))
    return diffs


def top_k_hits(groups: dict[str, list[dict]], score: Callable[[dict], float], pool: int = 0) -> dict:
    """Within-problem figures over problems with a choice, each next to its chance level.

    `topK_hit_rate`: fraction of those problems with a passing sample among the K top-scored
    of the pool (ties as in `top_sample`); `topK_chance`: the same for a random order, the mean
    of pass@K = 1 - C(n-c, K) / C(n, K) (c/n for K = 1), which a pool does not change as long as
    it holds K samples (a pool of fewer has them all in its top K: pass@pool)."""
    problems, figures = choice_sample_lists(groups), {}
    for k in (1, 2):
        hits = [pool_hit_rate(ranked_outcomes(samples, score), pool, k) for samples in problems]
        figures[f"top{k}_hit_rate"] = mean_or_none(hits)
        figures[f"top{k}_chance"] = mean_or_none([pass_at_k(len(s), count_passing(s), min(k, pool_size(len(s), pool)))
                                                  for s in problems])
    return figures


def failed_visible(result: dict) -> bool:
    """The candidate ran its problem's visible example tests and did not pass them (a
    sandbox error there is no verdict, never a reason to prune)."""
    return result.get("visible_status") not in (None, PASSED, SANDBOX_ERROR)


def pruned_pass_at_1(groups: dict[str, list[dict]], pool: int = 0) -> float | None:
    """pass@1 of a random pick among each problem's survivors of the pool: the samples that do not
    fail their visible tests (generate-prune, AlphaCode-style; all of them when every one fails
    them, or when there are none; see `failed_visible`).

    Over pools: a random survivor of the pool is a random survivor of all the samples when the
    pool has one, else a random pruned sample, so the expectation is
    P(a survivor) c_kept / n_kept + P(none) c_pruned / n_pruned, P(none) = C(n_pruned, pool) / C(n, pool)."""
    rates = []
    for samples in sample_lists(groups):
        kept = [r for r in samples if not failed_visible(r)]
        pruned = [r for r in samples if failed_visible(r)]
        if not kept or not pruned:  # nothing pruned, or every sample is (then all are kept)
            rates.append(count_passing(samples) / len(samples))
            continue
        size = pool_size(len(samples), pool)
        none_kept = comb(len(pruned), size) / comb(len(samples), size)
        rates.append((1 - none_kept) * count_passing(kept) / len(kept)
                     + none_kept * count_passing(pruned) / len(pruned))
    return mean_or_none(rates)


def pruned_reranked_pass_at_1(groups: dict[str, list[dict]], score: Callable[[dict], float],
                              pool: int = 0) -> float | None:
    """Fraction of problems whose top-scored survivor of the pool passes (generate-prune-rank):
    survivors rank above pruned samples, which the pool's pick reaches only when it has no survivor."""
    return mean_or_none([pick_rate(samples, lambda r: (not failed_visible(r), score(r)), pool)
                         for samples in sample_lists(groups)])


def flagged_fraction(groups: dict[str, list[dict]], key: str, flagged: Callable[[object], bool]) -> float | None:
    """Fraction of the sampled candidates carrying `key` (not None) whose value is flagged."""
    values = [r[key] for samples in sample_lists(groups) for r in samples if r.get(key) is not None]
    return mean_or_none([flagged(value) for value in values])


def pruned_fraction(groups: dict[str, list[dict]]) -> float | None:
    """Fraction of the sampled candidates run on visible tests that did not pass them (pruned)."""
    return flagged_fraction(groups, "visible_status", lambda status: status not in (PASSED, SANDBOX_ERROR))


def truncation_rate(groups: dict[str, list[dict]]) -> float | None:
    """Fraction of the sampled candidates carrying `truncated` that hit the sampler's token limit."""
    return flagged_fraction(groups, "truncated", bool)


def consensus_picks(groups: dict[str, list[dict]], pool: int = 0, seed: int = 0) -> list[float] | None:
    """Per problem with samples, whether the consensus pick passes: a sample of the program the
    pool's samples repeat most often (a self-consistency vote, as AlphaCode's clustering
    and MBR decoding choose, without executing anything; ties to the earliest sample). With a
    pool smaller than the samples, its mean over CONSENSUS_POOLS pools drawn with `seed` (a
    vote has no closed form). None when the results do not say which program they ran."""
    problems = sample_lists(groups)
    if any(program_key(r) is None for samples in problems for r in samples):
        return None
    rng, picks = np.random.default_rng(seed), []
    for samples in problems:
        keys, size = [program_key(r) for r in samples], pool_size(len(samples), pool)
        if size == len(samples):
            picks.append(consensus_pick(samples, keys, range(len(samples))))
            continue
        draws = [sorted(rng.choice(len(samples), size, replace=False)) for _ in range(CONSENSUS_POOLS)]
        picks.append(float(np.mean([consensus_pick(samples, keys, drawn) for drawn in draws])))
    return picks


def consensus_pick(samples: list[dict], keys: list[str | None], chosen: Iterable[int]) -> float:
    """1.0 when, among the samples at `chosen` (ascending), the program repeated most often
    (`keys`: each sample's `program_key`; ties to the earliest) passes."""
    chosen = list(chosen)
    votes = Counter(keys[i] for i in chosen)
    return float(passes(samples[max(chosen, key=lambda i: (votes[keys[i]], -i))]))


def consensus_summary(groups: dict[str, list[dict]], score: Callable[[dict], float] | None = None,
                      seed: int = 0, pool: int = 0) -> dict:
    """The consensus baseline: `consensus_pass@1`, its gain over a random pick with a paired
    bootstrap interval, and (with a reranker's score) `reranked_minus_consensus` with its own."""
    picks = consensus_picks(groups, pool, seed)
    if picks is None:
        return {"consensus_pass@1": None, "consensus_gain": None, "consensus_gain_ci95": None}
    randoms = [count_passing(samples) / len(samples) for samples in sample_lists(groups)]
    gains = [pick - random for pick, random in zip(picks, randoms, strict=True)]
    summary = {"consensus_pass@1": mean_or_none(picks), "consensus_gain": mean_or_none(gains),
               "consensus_gain_ci95": bootstrap_ci95(gains, seed=seed)}
    if score is not None:
        versus = [top - pick for top, pick in
                  zip(top_pick_outcomes(sample_lists(groups), score, pool), picks, strict=True)]
        summary |= {"reranked_minus_consensus": mean_or_none(versus),
                    "reranked_minus_consensus_ci95": bootstrap_ci95(versus, seed=seed)}
    return summary


def reranker_summary(groups: dict[str, list[dict]], score: Callable[[dict], float], seed: int = 0,
                     pool: int = 0) -> dict:
    """The figures that need a reranker score, with paired bootstrap intervals over problems."""
    flat = [r for samples in sample_lists(groups) for r in samples]
    minus_greedy = minus_greedy_per_problem(groups, score, pool)
    return {
        "reranked_pass@1": reranked_pass_at_1(groups, score, pool),
        "reranker_auc": roc_auc([score(r) for r in flat], [passes(r) for r in flat]),
        "reranker_pairwise_acc": pairwise_accuracy(groups, score),
        "reranker_pairwise_acc_ci95": bootstrap_ci95(*pairwise_counts(groups, score), seed=seed),
        **reranked_gain(groups, score, pool),
        "reranked_gain_ci95": bootstrap_ci95(gain_per_problem(groups, score, pool), seed=seed),
        "reranked_minus_greedy": mean_or_none(minus_greedy),
        "reranked_minus_greedy_ci95": bootstrap_ci95(minus_greedy, seed=seed),
        **top_k_hits(groups, score, pool),
        "pruned_reranked_pass@1": pruned_reranked_pass_at_1(groups, score, pool),
    }


def summarise(results: Iterable[dict], score: Callable[[dict], float] | None = None, seed: int = 0,
              pool: int = 0) -> dict:
    """The `eval` block of metrics/<round>.json for one problem set; `seed` fixes the bootstrap;
    `pool`: the pool the reranker picks from (0: every sample; see the module's docstring).
    `pool_size` is the largest pool a problem's pick is made from."""
    groups = group_by_problem(results)
    counts = [len(sampled(g)) for g in groups.values()]
    summary = {
        "problems": len(groups),
        "samples_per_problem": int(max(counts)) if counts else 0,
        "pool_size": pool_size(int(max(counts)), pool) if counts else 0,
        "pass@1": mean_pass_at_k(groups, 1),
        "greedy_pass@1": greedy_pass_at_1(groups),
        "oracle_pass@n": oracle_pass_at_n(groups, pool),
        "pruned_pass@1": pruned_pass_at_1(groups, pool),
        "pruned_fraction": pruned_fraction(groups),
        "truncation_rate": truncation_rate(groups),
    }
    if score is not None:
        summary.update(reranker_summary(groups, score, seed, pool))
        summary["gap_closed"] = gap_closed(summary["reranked_pass@1"], summary["pass@1"], summary["oracle_pass@n"])
    summary.update(consensus_summary(groups, score, seed, pool))
    return summary


def compare_on_pool(
    results: Iterable[dict], score_a: Callable[[dict], float], score_b: Callable[[dict], float], seed: int = 0,
    pool: int = 0,
) -> dict:
    """Two rerankers on the same candidates: each one's reranked pass@1, and `difference` (b minus
    a) with a paired bootstrap interval over problems. Only problems with a choice can differ."""
    groups = group_by_problem(results)
    problems = sample_lists(groups)
    picks_a, picks_b = top_pick_outcomes(problems, score_a, pool), top_pick_outcomes(problems, score_b, pool)
    diffs = [b - a for a, b in zip(picks_a, picks_b, strict=True)]
    return {
        "reranked_pass@1_a": mean_or_none(picks_a),
        "reranked_pass@1_b": mean_or_none(picks_b),
        "difference": mean_or_none(diffs),
        "difference_ci95": bootstrap_ci95(diffs, seed=seed),
        "problems": len(groups),
        "problems_with_choice": len(choice_sample_lists(groups)),
    }


LANGUAGE_FIGURES = ("greedy_pass@1", "pass@1", "reranked_pass@1", "pruned_reranked_pass@1", "oracle_pass@n")
"""The figures of the paper's Table 1, per language: greedy, random, reranked, pruned-reranked, oracle."""
AVERAGE = "average"


def language_figures(groups: dict, score: Callable[[dict], float], pool: int = 0) -> dict:
    """LANGUAGE_FIGURES over `groups`, each as `summarise` computes it for an eval set."""
    return {
        "greedy_pass@1": greedy_pass_at_1(groups),
        "pass@1": mean_pass_at_k(groups, 1),
        "reranked_pass@1": reranked_pass_at_1(groups, score, pool),
        "pruned_reranked_pass@1": pruned_reranked_pass_at_1(groups, score, pool),
        "oracle_pass@n": oracle_pass_at_n(groups, pool),
    }


def by_language(results_by_set: dict[str, Iterable[dict]], score: Callable[[dict], float],
                pool: int = 0) -> dict[str, dict]:
    """The paper's Table 1: per language (each result's `language`), in order of first appearance,
    `sets` (the comma-joined names of the sets with problems in it), `problems` and
    LANGUAGE_FIGURES over those problems pooled across sets, so each problem weighs the same (a
    problem is a set's problem: one name in two sets is two problems); then AVERAGE, the
    unweighted mean over languages of each figure (None when any language's is None), with
    every set and the total of problems.

    A language whose results are all sandbox errors keeps its row: 0 problems, figures None."""
    pooled: dict[str, dict[tuple[str, str], list[dict]]] = {}
    sets: dict[str, list[str]] = {}
    for set_name, results in results_by_set.items():
        results = list(results)
        language_of = {r["name"]: r["language"] for r in results}
        for language in dict.fromkeys(language_of.values()):
            pooled.setdefault(language, {})
            sets.setdefault(language, []).append(set_name)
        for name, group in group_by_problem(results).items():
            pooled[language_of[name]][set_name, name] = group
    table = {language: {"sets": ",".join(sets[language]), "problems": len(groups),
                        **language_figures(groups, score, pool)} for language, groups in pooled.items()}
    table[AVERAGE] = {
        "sets": ",".join(name for name in results_by_set if any(name in names for names in sets.values())),
        "problems": sum(row["problems"] for row in table.values()),
        **{figure: average_or_none([row[figure] for row in table.values()]) for figure in LANGUAGE_FIGURES},
    }
    return table


def average_or_none(values: Sequence[float | None]) -> float | None:
    """The mean of values, None when there are none or any is None."""
    return None if not values or any(v is None for v in values) else float(np.mean(values))
