"""``autoevolve cache stats | clear | prune``: look into the response cache and trim it."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from pytest_autoevolve.errors import CommandError

EXAMPLE = "autoevolve cache prune --older-than 30d"


class Duration(NamedTuple):
    """A duration as written (``30d``) and in seconds."""

    text: str
    seconds: float


def duration(text: str) -> Duration:
    """``90s``, ``15m``, ``12h`` or ``30d``."""
    from pytest_autoevolve.providers.base import duration_seconds  # imports yaml: only when a command runs

    try:
        return Duration(text.strip(), duration_seconds(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _artifacts(args: argparse.Namespace) -> Path:
    from pytest_autoevolve.settings import load_settings

    return Path(args.artifacts) if args.artifacts else Path.cwd() / load_settings(Path.cwd()).artifacts


def _stats(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.run.cache import cache_shelves

    shelves = cache_shelves(_artifacts(args))
    if not shelves:
        print("the response cache is empty")
    for shelf in shelves:
        span = ""
        if shelf.oldest is not None and shelf.newest is not None:
            span = f", written {_date(shelf.oldest)} to {_date(shelf.newest)}"
        print(f"{shelf.namespace:<8} {shelf.entries} entries, {shelf.bytes / 1e6:.1f} MB{span}")
    return 0


def _clear(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.run.cache import remove_entries

    print(f"removed {remove_entries(_artifacts(args), args.namespace)} cache entries")
    return 0


def _prune(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.run.cache import remove_entries

    if args.older_than is None:
        raise CommandError("prune needs --older-than DURATION, e.g. --older-than 30d (clear removes everything)")
    removed = remove_entries(_artifacts(args), args.namespace, args.older_than.seconds)
    print(f"removed {removed} cache entries written more than {args.older_than.text} ago")
    return 0


def _date(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


def add_commands(commands: Any) -> None:
    """Register ``cache stats``, ``cache clear`` and ``cache prune``."""
    cache = commands.add_parser(
        "cache",
        help="look into the response cache (stats) and trim it (clear, prune)",
        description="The response cache under ARTIFACTS/cache/: models' and the judge's replies.",
        epilog=f"example: {EXAMPLE}",
    )
    jobs = cache.add_subparsers(dest="job", required=True, metavar="JOB")
    for name, handler, text in (
        ("stats", _stats, "entries, size and dates of each namespace"),
        ("clear", _clear, "remove every entry (of --namespace only, when given)"),
        ("prune", _prune, "remove entries written more than --older-than ago"),
    ):
        job = jobs.add_parser(name, help=text, description=text, epilog=f"example: {EXAMPLE}")
        job.add_argument("--artifacts", metavar="DIR", help="artifacts folder (default: the config's, .autoevolve)")
        if name != "stats":
            job.add_argument("--namespace", choices=("models", "judge"), help="only this namespace")
        if name == "prune":
            job.add_argument("--older-than", metavar="DURATION", type=duration, help="e.g. 30d, 12h, 90m")
        job.set_defaults(handler=handler, older_than=None)
