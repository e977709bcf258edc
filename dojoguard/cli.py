"""The ``dojoguard`` command. Each package contributes its own commands.

Core code raises its own exceptions; only the CLI turns them into messages
and exit codes (``fail`` below), with a hint where a person can act.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from dojoguard import __version__
from dojoguard import config as config_module
from dojoguard.clitools import accept_config_everywhere, config_option, fail, pass_env
from dojoguard.environment import Environment
from dojoguard.yamlfile import FileProblems

# Modules that each export ``COMMANDS``: a list of click commands or groups.
# Order is the order of `dojoguard --help`.
COMMAND_MODULES = (
    "dojoguard.proxy.cli",
    "dojoguard.names_cli",
    "dojoguard.rules.cli",
    "dojoguard.consent_registry.cli",
    "dojoguard.audit.cli",
    "dojoguard.holds.cli",
    "dojoguard.alerts.cli",
    "dojoguard.console.cli",
    "dojoguard.demo.cli",
    "dojoguard.trust.cli",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@config_option("Settings file laid over the embedded defaults.", envvar="DOJOGUARD_CONFIG")
@click.version_option(__version__, prog_name="dojoguard")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """dojoguard: checks what teachers post and send on ClassDojo against the school's policy.

    \b
    Example:
      dojoguard rules check
    """
    env = ctx.ensure_object(Environment)
    env.config_path = config_path


@cli.group("config")
def config_group() -> None:
    """Show and check the deployment settings.

    \b
    Example:
      dojoguard config check /etc/dojoguard/config.yaml
    """


@config_group.command("show")
def config_show() -> None:
    """Print the embedded default settings, every key commented.

    \b
    Example:
      dojoguard config show > /etc/dojoguard/config.yaml
    """
    click.echo(config_module.default_text(), nl=False)


@config_group.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@pass_env
def config_check(env: Environment, path: Path | None) -> None:
    """Validate a settings file (default: --config, or the embedded defaults).

    \b
    Example:
      dojoguard config check /etc/dojoguard/config.yaml
    """
    try:
        loaded = config_module.load(path or env.config_path)
    except FileProblems as exc:
        raise fail(exc) from None
    click.echo(f"ok: {loaded.source} (data folder {loaded.data_dir})")


def _register() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # A package not built yet contributes nothing; any other import
            # failure is a real error and must surface.
            if exc.name and name.startswith(exc.name):
                continue
            raise
        for command in module.COMMANDS:
            cli.add_command(command)
    accept_config_everywhere(cli)


_register()


def main() -> None:
    cli(prog_name="dojoguard")
