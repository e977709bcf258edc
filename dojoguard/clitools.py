"""What every package's commands share: error translation and the environment.

Kept apart from ``dojoguard.cli`` (which imports every package's commands) so
that a package's command module can be imported on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

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


def _config_after_command(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """``--config`` given after a command: the same setting as before it; two different files are an error."""
    if value is None:
        return
    root = ctx.find_root()
    env = root.ensure_object(Environment)
    given_before = root.get_parameter_source("config_path") is ParameterSource.COMMANDLINE
    if given_before and env.config_path is not None and Path(env.config_path).resolve() != value.resolve():
        raise click.UsageError(f"--config is given twice with different files ({env.config_path} before the "
                               f"command, {value} after it); give it once.", ctx=ctx)
    env.config_path = value  # after the command it also overrides DOJOGUARD_CONFIG, as before it does


def accept_config_everywhere(group: click.Group) -> None:
    """Let every command under ``group`` take ``--config FILE`` after its name, as well as before.

    IT staff type ``dojoguard audit tail --config /etc/dojoguard/config.yaml``
    as often as the other order; both mean the same.
    """
    for command in group.commands.values():
        if not any("--config" in getattr(p, "opts", ()) for p in command.params):
            command.params.append(click.Option(
                ["--config", "config_after"], type=click.Path(dir_okay=False, path_type=Path), expose_value=False,
                callback=_config_after_command, metavar="FILE",
                help="Settings file laid over the embedded defaults (also accepted before the command)."))
        if isinstance(command, click.Group):
            accept_config_everywhere(command)
