"""Graders of the output's text beyond ``equals``/``contains``: the checks other eval tools apply, with their semantics.

Case-insensitive and any/all containment and ``starts_with`` as promptfoo applies them (on the output as
it is, lower-casing both sides with ``str.lower``); ``identical`` (no trimming, promptfoo's ``equals``);
``levenshtein`` (edit distance at most a bound, promptfoo's default 5); Inspect AI's ``match`` and
``exact`` scorers (``match``, ``normalized_equals``); OpenAI evals' ``FuzzyMatch`` (``fuzzy_match``); and
``text_similarity``, the score of a similarity metric against a reference at or above a threshold.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_autoevolve.records import Check, Grade, Scenario, Trajectory, written_text

LEVENSHTEIN_MAX_DISTANCE = 5
"""promptfoo's default threshold of ``levenshtein``."""

LOCATIONS = ("begin", "end", "any", "exact")

SIMILARITY_METRICS = ("fuzzy_match", "bleu", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l")


def _verdict(name: str, passed: bool, reason: str, score: float | None = None) -> Grade:
    return Grade(name, passed, (1.0 if passed else 0.0) if score is None else score, reason)


def _text(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"'{name}' takes a string, got {type(value).__name__} {value!r}")
    return written_text(value)


def _texts(value: Any, name: str) -> list[str]:
    """A string, or a non-empty list of strings."""
    if isinstance(value, list):
        if not value:
            raise ValueError(f"'{name}' takes a string or a non-empty list of strings, got []")
        return [_text(v, name) for v in value]
    return [_text(value, name)]


def _number(value: Any, name: str, key: str, *, low: float = 0.0, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < low:
        raise ValueError(f"'{name}' {key} is a number of at least {low:g}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"'{name}' {key} is a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _options(value: Any, name: str, main: str, allowed: Sequence[str]) -> dict[str, Any]:
    """``value`` as a mapping: a bare value is ``{main: value}``; unknown keys are a `ValueError`."""
    if not isinstance(value, dict):
        return {main: value}
    unknown = sorted(set(map(str, value)) - set(allowed))
    if unknown or main not in value:
        raise ValueError(f"'{name}' takes a mapping with '{main}' and optional {', '.join(allowed[1:])}; got {value!r}")
    return value


def icontains(value: Any, _: Path) -> Check:
    """Output contains the substring, ignoring case."""
    needle = _text(value, "icontains")

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        found = needle.lower() in output.lower()
        return _verdict("icontains", found, f"{needle!r} {'found' if found else 'not found'} in output (any case)")

    return check


def _containment(name: str, *, ignore_case: bool, every: bool) -> Callable[[Any, Path], Check]:
    """A factory: output contains any (or every) one of a list of substrings."""

    def factory(value: Any, _: Path) -> Check:
        needles = _texts(value, name)

        def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
            text = output.lower() if ignore_case else output
            missing = [n for n in needles if (n.lower() if ignore_case else n) not in text]
            if every:
                return _verdict(name, not missing, f"missing {missing!r}" if missing else "every value found")
            found = [n for n in needles if n not in missing]
            return _verdict(name, bool(found), f"found {found[0]!r}" if found else f"none of {needles!r} found")

        return check

    what = "every one" if every else "at least one"
    case = ", ignoring case" if ignore_case else " (case-sensitive)"
    factory.__doc__ = f"Output contains {what} of the strings{case}."
    return factory


contains_any = _containment("contains_any", ignore_case=False, every=False)
contains_all = _containment("contains_all", ignore_case=False, every=True)
icontains_any = _containment("icontains_any", ignore_case=True, every=False)
icontains_all = _containment("icontains_all", ignore_case=True, every=True)


def starts_with(value: Any, _: Path) -> Check:
    """Output starts with the string (or any of a list), as it is: no trimming, case-sensitive."""
    prefixes = _texts(value, "starts_with")

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        found = next((p for p in prefixes if output.startswith(p)), None)
        if found is not None:
            return _verdict("starts_with", True, f"output starts with {found!r}")
        return _verdict(
            "starts_with", False, f"output starts with {output[:40]!r}, not {' or '.join(map(repr, prefixes))}"
        )

    return check


def identical(value: Any, _: Path) -> Check:
    """Output is exactly the string, whitespace included (``equals`` trims both sides)."""
    want = _text(value, "identical")

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        same = output == want
        return _verdict("identical", same, f"output is {want!r}" if same else f"expected {want!r}, got {output!r}")

    return check


def levenshtein_distance(a: str, b: str, bound: int | None = None) -> int:
    """The edit distance of ``a`` and ``b``; past ``bound`` it returns ``bound + 1`` early."""
    if len(a) < len(b):
        a, b = b, a
    if bound is not None and len(a) - len(b) > bound:
        return bound + 1
    previous = list(range(len(b) + 1))
    for i, left in enumerate(a, start=1):
        current = [i]
        for j, right in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right)))
        if bound is not None and min(current) > bound:
            return bound + 1
        previous = current
    return previous[-1]


def levenshtein(value: Any, _: Path) -> Check:
    """The edit distance of output and text is at most ``max_distance`` (default 5, as promptfoo).

    Written ``levenshtein: TEXT`` or ``{text: TEXT, max_distance: N}``.
    """
    options = _options(value, "levenshtein", "text", ("text", "max_distance"))
    text = _text(options["text"], "levenshtein")
    bound = _number(options.get("max_distance", LEVENSHTEIN_MAX_DISTANCE), "levenshtein", "max_distance")

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        distance = levenshtein_distance(output, text, int(bound))
        ok = distance <= bound
        shown = f"{distance}" if distance <= bound else f"over {bound:g}"
        return _verdict("levenshtein", ok, f"edit distance {shown} {'<=' if ok else '>'} {bound:g} from {text!r}")

    return check


def _strip_ends(text: str) -> str:
    return text.strip().strip(string.whitespace + string.punctuation)


def match(value: Any, _: Path) -> Check:
    """Inspect AI's ``match`` scorer: the output, trimmed of whitespace and punctuation, ends with a target.

    Written ``match: TARGET``, a list of targets (any), or ``{target: ..., location: begin | end | any |
    exact, ignore_case: true}``. Case is ignored unless ``ignore_case: false``.
    """
    options = _options(value, "match", "target", ("target", "location", "ignore_case"))
    targets = _texts(options["target"], "match")
    location = options.get("location", "end")
    if location not in LOCATIONS:
        raise ValueError(f"'match' location is one of {', '.join(LOCATIONS)}, got {location!r}")
    ignore_case = options.get("ignore_case", True)
    if not isinstance(ignore_case, bool):
        raise ValueError(f"'match' ignore_case is true or false, got {ignore_case!r}")

    def norm(text: str) -> str:
        return _strip_ends(text.casefold() if ignore_case else text)

    def hit(got: str, want: str) -> bool:
        if location == "begin":
            return got.startswith(want)
        if location == "end":
            return got.endswith(want)
        return got == want if location == "exact" else want in got

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        got = norm(output)
        found = next((t for t in targets if hit(got, norm(t))), None)
        if found is not None:
            return _verdict("match", True, f"output matches {found!r} at the {location}")
        return _verdict("match", False, f"{got[-60:]!r} does not match {' or '.join(map(repr, targets))} ({location})")

    return check


def _normalized_tokens(text: str) -> str:
    """Inspect AI's ``exact``/``f1`` normalisation: casefold, punctuation, articles and spacing removed."""
    tokens = []
    for token in re.split(" |-", text):
        token = token.casefold()
        if _is_number(token) or _is_number(_strip_ends(token)):
            token = str(float(_strip_ends(token)))
        else:
            token = "".join(c for c in token if c not in string.punctuation)
        token = " ".join(re.sub(r"\b(a|an|the)\b", " ", token).split())
        if token.strip():
            tokens.append(token)
    return " ".join(tokens).strip()


def _is_number(text: str) -> bool:
    try:
        number = float(text)
    except ValueError:
        return False
    return number == number and number not in (float("inf"), float("-inf"))


def normalized_equals(value: Any, _: Path) -> Check:
    """Inspect AI's ``exact`` scorer: output equals a target (or any of a list) once both are normalised.

    Normalising casefolds, drops punctuation, the articles a/an/the and extra spaces, and writes numbers as floats.
    """
    targets = _texts(value, "normalized_equals")

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        got = _normalized_tokens(output)
        found = next((t for t in targets if _normalized_tokens(t) and _normalized_tokens(t) == got), None)
        if found is not None:
            return _verdict("normalized_equals", True, f"output equals {found!r} once normalised")
        return _verdict("normalized_equals", False, f"{got!r} equals none of {targets!r} once normalised")

    return check


def _evals_normalize(text: str) -> str:
    """OpenAI evals' ``normalize``: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def fuzzy_match(value: Any, _: Path) -> Check:
    """OpenAI evals' ``FuzzyMatch``: once normalised, output and an ideal answer (any of a list) contain each other."""
    ideals = _texts(value, "fuzzy_match")

    def agree(got: str, ideal: str) -> bool:
        want = _evals_normalize(ideal)
        if not got or not want:
            return got == want
        return want in got or got in want

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        got = _evals_normalize(output)
        found = next((i for i in ideals if agree(got, i)), None)
        if found is not None:
            return _verdict("fuzzy_match", True, f"output and {found!r} overlap once normalised")
        return _verdict("fuzzy_match", False, f"{got!r} overlaps none of {ideals!r} once normalised")

    return check


def _lcs(a: Sequence[Any], b: Sequence[Any]) -> int:
    """The length of the longest common subsequence."""
    previous = [0] * (len(b) + 1)
    for left in a:
        current = [0]
        for j, right in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if left == right else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def similarity(metric: str, output: str, reference: str) -> float:
    """A score from 0 to 1 of ``output`` against ``reference``.

    ``fuzzy_match``: 2·LCS / (total length) over characters (the normalised Indel similarity);
    ``rouge_N``: the F1 of N-gram overlap over lower-cased words; ``rouge_l``: the F1 of their LCS;
    ``bleu``: BLEU-4 over words with add-one smoothing of the 2- to 4-gram precisions and the brevity penalty.
    """
    if metric == "fuzzy_match":
        total = len(output) + len(reference)
        return 1.0 if total == 0 else 2 * _lcs(output, reference) / total
    got, want = output.lower().split(), reference.lower().split()
    if not got or not want:
        return float(got == want)
    if metric.startswith("rouge_"):
        if metric == "rouge_l":
            common: float = _lcs(got, want)
            precision, recall = common / len(got), common / len(want)
        else:
            n = int(metric.removeprefix("rouge_"))
            grams_got, grams_want = _ngrams(got, n), _ngrams(want, n)
            common = sum((grams_got & grams_want).values())
            precision = common / max(sum(grams_got.values()), 1)
            recall = common / max(sum(grams_want.values()), 1)
        return 0.0 if common == 0 else 2 * precision * recall / (precision + recall)
    return _bleu(got, want)


def _bleu(got: list[str], want: list[str]) -> float:
    import math

    logs = []
    for n in range(1, 5):
        grams = _ngrams(got, n)
        common = sum((grams & _ngrams(want, n)).values())
        total = sum(grams.values())
        if n == 1 and common == 0:
            return 0.0
        logs.append(math.log((common + (n > 1)) / (total + (n > 1))) if total or n > 1 else float("-inf"))
    brevity = 1.0 if len(got) > len(want) else math.exp(1 - len(want) / len(got))
    return brevity * math.exp(sum(logs) / 4)


def text_similarity(value: Any, _: Path) -> Check:
    """A similarity score of output and ``reference`` at or above ``threshold`` (OpenAI's text_similarity grader).

    Written ``{reference: TEXT, metric: fuzzy_match | bleu | rouge_1 .. rouge_5 | rouge_l, threshold: 0..1}``;
    the grade's score is the metric's value.
    """
    shape = "'text_similarity' takes a mapping with 'reference', 'metric' and 'threshold'"
    if not isinstance(value, dict) or set(value) - {"reference", "metric", "threshold"} or "reference" not in value:
        raise ValueError(f"{shape}, got {value!r}")
    reference = _text(value["reference"], "text_similarity")
    metric = value.get("metric", "fuzzy_match")
    if metric not in SIMILARITY_METRICS:
        raise ValueError(f"'text_similarity' metric is one of {', '.join(SIMILARITY_METRICS)}, got {metric!r}")
    threshold = _number(value.get("threshold", 0.5), "text_similarity", "threshold", high=1.0)

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        score = similarity(metric, output, reference)
        ok = score >= threshold
        return _verdict("text_similarity", ok, f"{metric} {score:.3f} {'>=' if ok else '<'} {threshold:g}", score)

    return check
