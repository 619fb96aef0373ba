"""The canary commands of ``autoevolve``: canary start|promote|abort|status."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

from pytest_autoevolve.errors import CommandError

EXAMPLES = {
    "start": "autoevolve canary start python:myagent.v2:answer",
    "run": "pytest --autoevolve --autoevolve-canary 0.3",
    "promote": "autoevolve canary promote .autoevolve/runs/20261121T120000Z-abc123/summary.json",
    "abort": "autoevolve canary abort --reason 'p95 latency doubled'",
    "status": "autoevolve canary status",
    "rollback": "autoevolve rollback",
}

EXIT_CODES = (
    "Exit 0 when done, 1 when refused (nothing changed: a canary already running, none running, a summary "
    "that is not a passing, complete canary gate of this pair), 2 when the command could not run (a bad "
    "spec, a missing or unreadable summary)."
)


def _start(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.canary import start

    entry = start(Path.cwd(), args.spec, reason=args.reason or "")
    print(f"canary started: {entry['canary']} beside the incumbent {entry['incumbent']}")
    _changed(entry["changes"])
    print(f"gate it on a share of the scenarios: {EXAMPLES['run']}")
    return 0


def _promote(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.canary import newest_summary, promote

    root = Path.cwd()
    summary = Path(args.summary) if args.summary else newest_summary(root)
    if summary is None:
        raise CommandError(f"no summary given, and no run has written one: run {EXAMPLES['run']} first")
    if not args.summary:
        print(f"gate summary: {summary.relative_to(root) if summary.is_relative_to(root) else summary}")
    entry = promote(root, summary, reason=args.reason or "")
    print(f"promoted the canary {entry['incumbent']} (was {entry['previous']}); the canary slot is empty")
    _changed(entry["changes"])
    return 0


def _abort(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.canary import abort

    entry = abort(Path.cwd(), reason=args.reason or "")
    print(f"canary {entry['canary']} aborted; the incumbent is still {entry['incumbent']}")
    _changed(entry["changes"])
    return 0


def _status(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.canary import status

    found = status(Path.cwd(), args.last)
    if args.json:
        print(json.dumps(found, default=str))
        return 0
    print(f"incumbent: {found['incumbent']}")
    print(f"candidate: {found['candidate'] or '(not set)'}")
    print(f"canary:    {found['canary'] or '(none running)'}")
    entries = found["history"]
    print(f"history:   last {len(entries)} of {found['history_entries']} entries" if entries else "history:   empty")
    for entry in entries:
        print(f"  {_entry_line(entry)}")
    return 0


def _entry_line(entry: dict[str, Any]) -> str:
    """One history entry in a line: date, action, how the incumbent moved, the canary, the evidence."""
    moved = (
        f"incumbent {entry.get('previous')} -> {entry.get('incumbent')}"
        if entry.get("previous") != entry.get("incumbent")
        else f"incumbent {entry.get('incumbent')}"
    )
    parts = [f"{entry.get('date', '?')}  {entry['action']:<14} {moved}"]
    if entry.get("canary") is not None:
        parts.append(f"canary {entry['canary']}")
    if entry["action"] == "canary-run":
        parts.append(
            f"run {entry.get('run_id')}: {str(entry.get('verdict')).upper()}"
            f"{'' if entry.get('complete') else ' (incomplete)'}, {entry.get('routed')} of {entry.get('total')} "
            f"scenarios (share {entry.get('share')}, seed {entry.get('seed')})"
        )
    if entry.get("gate_summary_sha256"):
        parts.append(f"summary sha256 {str(entry['gate_summary_sha256'])[:12]}")
    if entry.get("reason"):
        parts.append(f"reason: {entry['reason']}")
    return "; ".join(parts)


def _changed(changes: list[str]) -> None:
    """Say how autoevolve.yaml changed."""
    from pytest_autoevolve.loops.project import CONFIG_FILE

    print(f"{CONFIG_FILE}: " + ("; ".join(changes) if changes else "unchanged"))


def add_commands(commands: Any) -> None:
    """Register ``canary`` and its steps."""
    raw = argparse.RawDescriptionHelpFormatter
    canary = commands.add_parser(
        "canary",
        help="a canary slot beside the incumbent: start, gate on a share of the scenarios, promote or abort",
        description=textwrap.fill(
            "A canary slot: a model beside the incumbent in autoevolve.yaml (the top-level 'canary:' key). "
            "pytest --autoevolve --autoevolve-canary P runs it as the candidate on a seeded share P of the "
            "scenarios and gates it against the incumbent on exactly that traffic; promote makes it the "
            "incumbent after a passing, complete canary gate of that pair; abort empties the slot. Every step is "
            "appended to autoevolve-history.jsonl, and autoevolve rollback undoes a canary promotion. " + EXIT_CODES,
            94,
        ),
        epilog="examples:\n  "
        + "\n  ".join(EXAMPLES[name] for name in ("start", "run", "promote", "abort", "status", "rollback")),
        formatter_class=raw,
    )
    steps = canary.add_subparsers(dest="step", required=True, metavar="STEP")
    step = steps.add_parser(
        "start",
        help="put a model in the canary slot (default: the configured candidate)",
        description="Write the canary slot to autoevolve.yaml, comments kept. " + EXIT_CODES,
        epilog=f"example: {EXAMPLES['start']}",
    )
    step.add_argument("spec", nargs="?", help="the canary's model spec (default: the candidate in autoevolve.yaml)")
    step.add_argument("--reason", help="why (recorded in the history)")
    step.set_defaults(handler=_start)
    step = steps.add_parser(
        "promote",
        help="make the canary the incumbent after a passing canary gate",
        description="Swap the slots: the canary becomes the incumbent (and the candidate) and its slot is emptied, "
        "only on a passing, complete canary gate of exactly this incumbent and canary. " + EXIT_CODES,
        epilog=f"example: {EXAMPLES['promote']}",
    )
    step.add_argument(
        "summary",
        nargs="?",
        help="summary.json of the canary run (default: the newest run's under the artifacts folder)",
    )
    step.add_argument("--reason", help="why (recorded in the history)")
    step.set_defaults(handler=_promote)
    step = steps.add_parser(
        "abort",
        help="empty the canary slot; the incumbent stays",
        description="Remove the canary from autoevolve.yaml at any time; the incumbent is untouched. " + EXIT_CODES,
        epilog=f"example: {EXAMPLES['abort']}",
    )
    step.add_argument("--reason", help="why (recorded in the history)")
    step.set_defaults(handler=_abort)
    step = steps.add_parser(
        "status",
        help="the slots and the last history entries",
        description="Print the incumbent, the candidate and the canary, and the promotion history's last entries.",
        epilog=f"example: {EXAMPLES['status']}",
    )
    step.add_argument("--last", type=int, default=5, metavar="N", help="history entries to show (default 5)")
    step.add_argument("--json", action="store_true", help="print the slots and entries as JSON")
    step.set_defaults(handler=_status)
