"""``autoevolve plan``: how many scenarios and repeats the gate needs to find a lift, and what they cost.

The gate's power depends on the per-scenario differences only through their second moment
(`stats.power`). With r trials per role it is ``between + within / r``: ``between`` is the
spread of the scenarios' true differences, ``within`` the per-trial variance of both roles'
outcomes, averaged over scenarios. A recorded run with two or more trials per role separates
the two; with one trial they cannot be told apart, and all of it is taken as ``between``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_autoevolve.errors import CommandError

if TYPE_CHECKING:
    from pytest_autoevolve.gate.results import ItemResult
    from pytest_autoevolve.records import Trajectory
    from pytest_autoevolve.settings import GateConfig

EXAMPLE = "autoevolve plan .autoevolve/runs/<run-id> --lift 0.05   (or: autoevolve plan --discordance 0.3 --lift 0.05)"
MAX_SCENARIOS = 1_000_000
"""The largest catalog the search tries; a design that needs more is "not reachable"."""

ASSUMPTION = (
    "assumption: the normal approximation of the gate's score test (Connor 1987; Nam 1997) at each second "
    "moment; prospective: a plan for future runs, not a statement about the recorded one"
)


@dataclass(frozen=True)
class Spread:
    """The second moment of the per-scenario differences, split into between and within scenarios when known."""

    between: float
    within: float | None
    """The per-trial variance of both roles' outcomes (summed), mean over scenarios; None when not separable."""

    def second_moment(self, repeats: int) -> float:
        """The mean squared difference with ``repeats`` trials per role."""
        return self.between + (self.within or 0.0) / repeats


@dataclass(frozen=True)
class Usage:
    """Mean tokens and cost of one model call (one trial), None when no trial recorded them."""

    tokens: float | None = None
    cost: float | None = None


@dataclass(frozen=True)
class Design:
    """One design: scenarios for the target power at ``repeats`` trials per role, and its cost."""

    repeats: int
    second_moment: float
    scenarios: int | None
    power: float | None
    calls: int | None
    tokens: float | None
    cost: float | None


def scenarios_needed(
    moment: float, lift: float, threshold: float, alpha: float, target: float, floor: int = 1
) -> int | None:
    """The smallest catalog (at least ``floor``) whose power reaches ``target``; None above `MAX_SCENARIOS`."""
    from pytest_autoevolve.gate.stats import power

    def enough(n: int) -> bool:
        return power(n, moment, lift, threshold, alpha) >= target

    low = high = max(floor, 1)
    if enough(low):
        return low
    while not enough(high):  # doubling, then bisection between the last miss and the first hit
        if high >= MAX_SCENARIOS:
            return None
        low, high = high, min(2 * high, MAX_SCENARIOS)
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return high


def spread_of_pairs(pairs: Sequence[tuple[ItemResult, ItemResult]]) -> tuple[Spread, list[str]]:
    """The spread of paired (incumbent, candidate) results, with what the reader should know about it."""
    squares = [(c.pass_rate - i.pass_rate) ** 2 for i, c in pairs]
    discordance = sum(squares) / len(squares)
    notes: list[str] = []
    if min(item.trials for pair in pairs for item in pair) < 2:
        notes.append(
            "one trial per role recorded: the variance within scenarios cannot be separated from the "
            "differences between them, so every design is planned at the recorded second moment and "
            "more repeats only cost (record 2 or more with --autoevolve-repeats to separate them)"
        )
        spread = Spread(discordance, None)
    else:
        within = [_variance(i) + _variance(c) for i, c in pairs]
        noise = [_variance(i) / i.trials + _variance(c) / c.trials for i, c in pairs]
        between = max(0.0, discordance - sum(noise) / len(noise))
        spread = Spread(between, sum(within) / len(within))
    if spread.second_moment(1) == 0:
        notes.append("the two roles never disagreed: planned as if one scenario in the run had (as the gate does)")
        spread = Spread(1 / len(pairs), spread.within)
    return spread, notes


def _variance(item: ItemResult) -> float:
    """The unbiased per-trial variance of one role's outcomes on one scenario (two or more trials)."""
    rate = item.pass_rate
    return rate * (1 - rate) * item.trials / (item.trials - 1)


def usage_of(trials: Sequence[Trajectory]) -> tuple[Usage, list[str]]:
    """Mean tokens and cost per call over the trials that recorded them, with a note when only some did."""
    tokens = [t.total_tokens for t in trials if t.total_tokens is not None]
    costs = [t.cost for t in trials if t.cost is not None]
    notes = [
        f"{what} recorded on {len(known)} of {len(trials)} trials: the mean of those is used for every call"
        for what, known in (("tokens", tokens), ("cost", costs))
        if 0 < len(known) < len(trials)
    ]
    return Usage(sum(tokens) / len(tokens) if tokens else None, sum(costs) / len(costs) if costs else None), notes


def read_run(run: Path) -> tuple[Spread, Usage, dict[str, Any], list[str]]:
    """The spread and usage of a recorded run's paired eval scenarios, what it was, and the notes."""
    from pytest_autoevolve.files import read_trajectories
    from pytest_autoevolve.gate.decide import pair
    from pytest_autoevolve.gate.results import items_of_run

    path = run / "trajectories.jsonl" if run.is_dir() else run
    if not path.is_file():
        raise CommandError(f"{run}: no trajectories.jsonl (give a run folder such as .autoevolve/runs/<run-id>)")
    trials = list(read_trajectories(path))
    items = [item for role in ("incumbent", "candidate") for item in items_of_run(_of(trials, role), role)]
    pairs = pair(items)
    if not pairs:
        raise CommandError(f"{run}: no eval scenario ran on both the incumbent and the candidate")
    spread, notes = spread_of_pairs(pairs)
    paired = {i.scenario for i, _ in pairs}
    usage, usage_notes = usage_of([t for t in trials if t.scenario_id in paired and t.split == "eval"])
    counts = sorted({item.trials for pair in pairs for item in pair})
    source = {
        "run": str(run),
        "paired": len(pairs),
        "trials": counts[0] if len(counts) == 1 else [counts[0], counts[-1]],
        "discordance": sum((c.pass_rate - i.pass_rate) ** 2 for i, c in pairs) / len(pairs),
    }
    return spread, usage, source, notes + usage_notes


def _of(trials: Sequence[Trajectory], role: str) -> list[Trajectory]:
    return [t for t in trials if t.role == role]


def given_spread(discordance: float, within: float | None, lift: float) -> Spread:
    """The spread of ``--discordance`` (the second moment at one trial per role) and ``--within``."""
    if not 0 < discordance <= 1:
        raise CommandError(
            f"--discordance is the share of scenarios where the models disagree, in (0, 1], got {discordance:g}"
        )
    if abs(lift) > discordance:
        raise CommandError(
            f"--lift {lift:g} needs the models to disagree on at least {abs(lift):g} of the scenarios, "
            f"more than --discordance {discordance:g}"
        )
    if within is None:
        return Spread(discordance, None)
    if not 0 <= within <= discordance:
        raise CommandError(f"--within is part of --discordance: between 0 and {discordance:g}, got {within:g}")
    return Spread(discordance - within, within)


def plan(
    spread: Spread,
    usage: Usage,
    lift: float,
    threshold: float,
    alpha: float,
    target: float,
    repeats: Sequence[int],
    floor: int = 1,
) -> list[Design]:
    """One design per number of repeats, each at its second moment raised to `least_moment` where below it."""
    from pytest_autoevolve.gate.stats import power

    designs = []
    for r in repeats:
        moment = max(spread.second_moment(r), least_moment(lift, r))
        n = scenarios_needed(moment, lift, threshold, alpha, target, floor)
        calls = None if n is None else 2 * n * r
        designs.append(
            Design(
                repeats=r,
                second_moment=moment,
                scenarios=n,
                power=None if n is None else power(n, moment, lift, threshold, alpha),
                calls=calls,
                tokens=None if calls is None or usage.tokens is None else calls * usage.tokens,
                cost=None if calls is None or usage.cost is None else calls * usage.cost,
            )
        )
    return designs


def least_moment(lift: float, repeats: int) -> float:
    """The smallest second moment a mean difference of ``lift`` allows with ``repeats`` trials per role.

    Its square (Jensen), and ``|lift| / repeats``, since a nonzero difference k/r has a square of at
    least its size over r: with one trial, the models disagree on at least ``|lift|`` of the scenarios.
    """
    return max(lift * lift, abs(lift) / repeats)


def cheapest(designs: Sequence[Design]) -> Design | None:
    """The reachable design with the fewest calls (fewer repeats on a tie)."""
    reachable = [d for d in designs if d.calls is not None]
    return min(reachable, key=lambda d: (d.calls, d.repeats)) if reachable else None


def _repeats(text: str) -> tuple[int, ...]:
    """``1,3,5``: trials per role to plan for."""
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        values = []
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"repeats are whole numbers of at least 1, like 1,3,5; got {text!r}")
    return tuple(values)


def _rule(args: argparse.Namespace) -> tuple[float, float, int]:
    """Alpha, threshold and ``min_paired``: the options, else the project's gate config (or ``--gate-config``)."""
    from pytest_autoevolve.cli.gate import _gate_config

    config: GateConfig = _gate_config(args, None)
    alpha = config.alpha if args.alpha is None else args.alpha
    limit = config.threshold if args.threshold is None else args.threshold
    if not 0 < alpha < 1:
        raise CommandError(f"--alpha is between 0 and 1, got {alpha:g}")
    if not -1 < limit < 1:
        raise CommandError(f"--threshold is between -1 and 1, got {limit:g}")
    if not -1 < args.lift <= 1:
        raise CommandError(f"--lift is a difference of pass rates, in (-1, 1], got {args.lift:g}")
    if args.lift <= limit:
        raise CommandError(
            f"--lift {args.lift:g} must exceed the threshold {limit:g}: the gate only finds lifts above it"
        )
    if not 0 < args.power < 1:
        raise CommandError(f"--power is between 0 and 1, got {args.power:g}")
    return alpha, limit, config.min_paired


def _plan(args: argparse.Namespace, _extra: list[str]) -> int:
    """Plan the catalog's size for the target lift and print the designs."""
    alpha, limit, min_paired = _rule(args)
    if (args.run is None) == (args.discordance is None):
        raise CommandError("give a recorded run (RUN) or --discordance D, not both and not neither")
    if args.within is not None and args.discordance is None:
        raise CommandError("--within goes with --discordance (a run's own within-scenario variance is measured)")
    notes: list[str] = []
    if args.run is not None:
        run = Path(args.run)
        if not run.exists():
            raise CommandError(f"no such run: {run} (give a run folder such as .autoevolve/runs/<run-id>)")
        spread, usage, source, notes = read_run(run)
    else:
        spread, usage = given_spread(args.discordance, args.within, args.lift), Usage()
        source = {"discordance": args.discordance, "within": args.within}
        if args.within is None:
            notes.append("no --within: planned as if all disagreement were between scenarios; repeats only cost")
    if any(spread.second_moment(r) < least_moment(args.lift, r) for r in args.repeats):
        notes.append(
            f"the recorded disagreement is too small for a lift of {args.lift:g}: a design whose second moment is "
            "below max(lift², |lift| / r) is planned at that least value"
        )
    designs = plan(spread, usage, args.lift, limit, alpha, args.power, args.repeats, min_paired)
    if any(d.scenarios == min_paired for d in designs):
        notes.append(f"the gate needs at least min_paired = {min_paired} paired scenarios (fewer is inconclusive)")
    best = cheapest(designs)
    if args.json:
        import json

        data = {
            "lift": args.lift,
            "threshold": limit,
            "alpha": alpha,
            "power": args.power,
            "min_paired": min_paired,
            "source": source,
            "between": spread.between,
            "within": spread.within,
            "usage": asdict(usage),
            "designs": [asdict(d) for d in designs],
            "cheapest": None if best is None else best.repeats,
            "notes": notes,
            "assumption": ASSUMPTION.removeprefix("assumption: "),
        }
        print(json.dumps(data, indent=2))
    else:
        for line in _lines(args, alpha, limit, spread, source, designs, best, notes):
            print(line)
    return 0


def _lines(
    args: argparse.Namespace,
    alpha: float,
    limit: float,
    spread: Spread,
    source: dict[str, Any],
    designs: Sequence[Design],
    best: Design | None,
    notes: Sequence[str],
) -> list[str]:
    """The text report: the target, where the spread comes from, the table, the cheapest design."""
    lines = [
        f"autoevolve plan: lift {args.lift:+.3f} over threshold {limit:+.3f}, "
        f"power {args.power:.0%}, alpha {alpha:g} (one-sided)"
    ]
    if "run" in source:
        trials = source["trials"] if isinstance(source["trials"], int) else "{} to {}".format(*source["trials"])
        lines.append(f"from {source['run']}: {source['paired']} paired scenarios, {trials} trials per role")
    split = f"between {spread.between:.4f} + within {spread.within:.4f} / r" if spread.within is not None else None
    lines.append(f"second moment of the differences: {split or f'{spread.between:.4f} at any r (not separated)'}")
    lines.append(
        f"{'repeats':>7} {'moment':>8} {'scenarios':>10} {'power':>6} {'calls':>10} {'tokens':>12} {'cost':>10}"
    )
    for d in designs:
        lines.append(
            f"{d.repeats:>7} {d.second_moment:>8.4f} {_count(d.scenarios, 'not reachable'):>10} "
            f"{'' if d.power is None else f'{d.power:.3f}':>6} {_count(d.calls):>10} {_count(d.tokens):>12} "
            f"{'-' if d.cost is None else f'{d.cost:,.2f}':>10}"
        )
    if best is None:
        lines.append(f"no design reaches {args.power:.0%} power within {MAX_SCENARIOS:,} scenarios")
    else:
        lines.append(
            f"cheapest in calls: {best.repeats} repeat(s) x {best.scenarios:,} scenarios = {best.calls:,} calls"
        )
    return [*lines, *(f"note: {note}" for note in notes), ASSUMPTION]


def _count(value: float | None, missing: str = "-") -> str:
    return missing if value is None else f"{math.ceil(value):,}"


def add_commands(commands: Any) -> None:
    """Register ``plan``."""
    parser = commands.add_parser(
        "plan",
        help="how many scenarios and repeats the gate needs to find a lift, and what they cost",
        description="Plan a catalog's size: for each number of repeats, the fewest scenarios whose gate finds "
        "--lift with --power, from a recorded run's disagreement (or --discordance), and the model calls, "
        "tokens and cost that takes (per-call means from the run).",
        epilog=f"example: {EXAMPLE}",
    )
    parser.add_argument(
        "run", nargs="?", metavar="RUN", help="a run folder (.autoevolve/runs/<run-id>) or its trajectories.jsonl"
    )
    parser.add_argument(
        "--lift", type=float, required=True, help="the true lift to find (candidate minus incumbent pass rate)"
    )
    parser.add_argument("--power", type=float, default=0.8, help="the chance to find it (default: 0.8)")
    parser.add_argument("--alpha", type=float, help="the gate's alpha (default: the gate config's, else 0.05)")
    parser.add_argument(
        "--threshold",
        type=float,
        help="the lift must beat this: min_lift, or -margin for non-inferiority (default: the gate config's, else 0)",
    )
    parser.add_argument(
        "--repeats", type=_repeats, default=(1, 3, 5), metavar="R,R,...", help="trials per role (default: 1,3,5)"
    )
    parser.add_argument(
        "--discordance",
        type=float,
        metavar="D",
        help="instead of RUN: the share of scenarios where one trial of each disagrees",
    )
    parser.add_argument(
        "--within",
        type=float,
        metavar="W",
        help="with --discordance: the within-scenario part of D (per-trial variance, both roles)",
    )
    parser.add_argument(
        "--gate-config", metavar="FILE", help="read the gate settings from FILE (as autoevolve report does)"
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(handler=_plan, seed=None)
