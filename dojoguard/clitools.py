"""What every package's commands share: error translation and the environment.

Kept apart from ``dojoguard.cli`` (which imports every package's commands) so
that a package's command module can be imported on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dojoguard.environment import Environment
from dojoguard.yamlfile import FileProblems


class ProblemsReported(click.ClickException):
    """Every problem of a file, printed one per line, exit status 2."""

    exit_code = 2

    def __init__(self, problems):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) found")

    def show(self, file=None):
        file = file or sys.stderr
        for problem in self.problems:
            click.echo(str(problem), file=file)
        click.echo(f"Error: {self.message}", file=file)


def fail(exc: Exception) -> click.ClickException:
    """Translate a core exception into the CLI's error, keeping every detail."""
    if isinstance(exc, FileProblems):
        return ProblemsReported(exc.problems)
    return click.ClickException(str(exc))


def environment(ctx: click.Context) -> Environment:
    return ctx.ensure_object(Environment)


pass_env = click.make_pass_decorator(Environment, ensure=True)


def config_option(help: str, **attrs):
    """The ``--config FILE`` option (the settings file), declared once for every command that takes it."""
    return click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help=help,
                        **attrs)
