"""The package's errors: one base, `AutoevolveError`, and a few kinds under it.

Every error a user can cause is an `AutoevolveError` whose message says what is wrong and
where; the command line prints it on one line (``autoevolve COMMAND: error: ...``) and the
pytest plugin turns it into a usage or collection error. Modules define their own errors as
subclasses of these kinds, so a caller can catch a whole kind at once.
"""

from __future__ import annotations

from pathlib import Path


class AutoevolveError(Exception):
    """The base of every error this package raises on purpose."""

    exit_status = 2
    """The command line's exit status for it: 2, "could not run", unless a kind says otherwise."""


class CommandError(AutoevolveError):
    """A command given input it cannot use: a missing file, a missing option."""


class ConfigError(AutoevolveError, ValueError):
    """A setting of the wrong kind or out of range, or a config file that cannot be read."""


class ScenarioError(AutoevolveError):
    """A malformed scenario file: which file, which scenario, which key, and why."""

    def __init__(
        self,
        path: Path | str,
        message: str,
        *,
        scenario: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path, self.scenario, self.key, self.line = str(path), scenario, key, line
        self.message = message
        where = [f"{self.path}:{line}" if line else self.path]
        if scenario:
            where.append(f"scenario {scenario}")
        if key:
            where.append(f"key '{key}'")
        super().__init__(f"{': '.join(where)}: {message}")


class ModelError(AutoevolveError, ValueError):
    """A model that cannot be named or built: an unknown provider, a bad spec or parameter."""


class GradingError(AutoevolveError):
    """A grader that could not decide (an ambiguous judge reply): the trial is an error, neither pass nor fail."""


class FormatError(AutoevolveError):
    """A trajectory, summary or results file of another format version, or not one at all."""


class ArtifactWriteError(AutoevolveError):
    """A run that cannot write what it must record (a full disk): it stops rather than lose evidence."""


class LoopError(AutoevolveError):
    """A loop (evolve, fine-tune, the CI gate) that cannot go on, with what to do about it."""
