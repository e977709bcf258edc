"""``dojoguard run`` (start the proxy) and ``dojoguard discover`` (what the catalogue does not know yet)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from dojoguard import clock as clocks
from dojoguard.clitools import fail, pass_env
from dojoguard.clock import FileClock
from dojoguard.environment import Environment
from dojoguard.yamlfile import FileProblems

MODES = ("regular", "transparent", "wireguard")


@click.command("run")
@click.option("--listen", metavar="HOST:PORT", help="Address to listen on (default: proxy.listen).")
@click.option("--mode", type=click.Choice(MODES), help="How devices reach the proxy (default: proxy.mode).")
@click.option("--confdir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the proxy's CA certificate and key (default: proxy.confdir).")
@click.option("--resolve", multiple=True, metavar="HOST:PORT:ADDR:PORT",
              help="Send connections for HOST:PORT to ADDR:PORT instead (staging and tests), as curl's --resolve.")
@click.option("--upstream-trust", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also trust this CA (PEM) for upstream servers: only for a ClassDojo stand-in.")
@click.option("--clock-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the time from this file (tests and staging only; never in production).")
@pass_env
def run(env: Environment, listen, mode, confdir, resolve, upstream_trust, clock_file) -> None:
    """Start the proxy: judge teachers' ClassDojo writes against the policy and record every decision.

    Only ClassDojo hosts are decrypted; everything else passes through untouched.
    The proxy refuses to start on an invalid settings, policy or catalogue file.

    \b
    Example:
      dojoguard run --listen 0.0.0.0:8080
      dojoguard run --resolve teach.classdojo.com:443:127.0.0.1:8443 --upstream-trust standin-ca.pem
    """
    from dojoguard.proxy import certauthority, runner
    from dojoguard.proxy.services import StartupError, open_services
    from dojoguard.proxy.settings import ResolveError, Settings

    if clock_file is not None:
        env.clock = FileClock(clock_file)
        click.secho(f"WARNING: the clock is read from {clock_file}. This is for tests and staging only: "
                    "rules about times and days will follow that file, not the real time.",
                    fg="red", bold=True, err=True)
    try:
        config = env.config
        settings = Settings.from_config(config, listen=listen, mode=mode, confdir=confdir, resolve=resolve,
                                        upstream_trust=str(upstream_trust) if upstream_trust else None)
    except (FileProblems, ResolveError, ValueError) as exc:
        raise fail(exc) from None
    _configure_logging(config)
    try:
        # Commands on the same data folder stamp their records with this clock too.
        clocks.publish(config.data_dir, clock_file)
    except OSError as exc:
        raise fail(f"cannot write in the data folder {config.data_dir}: {exc}") from None
    for warning in settings.resolve_warnings():
        click.secho(f"Note: {warning}", fg="yellow", err=True)
    try:
        authority = certauthority.ensure(settings.confdir, settings.ca_name)
    except OSError as exc:
        raise fail(f"cannot make the proxy's certificate authority in {settings.confdir}: {exc}") from None
    except ValueError as exc:
        raise fail(f"the proxy's certificate authority in {settings.confdir} cannot be read ({exc}). Restore it "
                   "from the backup; if it is lost, make a new one and install it on every device (see "
                   "\"Renewing the CA\" in docs/deployment.md).") from None
    if not authority.matches(settings.ca_name):
        click.secho(f"Note: the proxy's CA in {settings.confdir} is named {authority.name!r}, not {settings.ca_name!r} "
                    "(proxy.ca_name). It is kept, because school devices already trust it; to renew it, see "
                    "\"Renewing the CA\" in docs/deployment.md.", fg="yellow", err=True)
    try:
        services = open_services(settings, env.clock)
    except (FileProblems, StartupError) as exc:
        raise fail(exc) from None
    except Exception as exc:  # noqa: BLE001 - an audit log that cannot open stops the start, with its reason
        raise click.ClickException(f"cannot start: {exc}") from None

    def banner(addresses, wireguard_profiles) -> None:
        ca = settings.confdir / "mitmproxy-ca-cert.pem"
        host, port = (addresses[0][0], addresses[0][1]) if addresses else (settings.listen_host, settings.listen_port)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        lines = [
            f"dojoguard is listening on {host}:{port} ({settings.mode} mode)",
            f"  CA certificate \"{authority.name}\" (install on school devices): {ca}",
        ]
        if settings.mode == "regular":
            lines += [
                f"  Try it:  curl --proxy http://{shown}:{port} --cacert {ca} https://teach.classdojo.com/",
                f"  Browsers: set the HTTP and HTTPS proxy to {shown}:{port} (or a PAC file; see docs/deployment.md)",
            ]
        elif settings.mode == "transparent":
            lines += [f"  Redirect devices' TCP 443 to ClassDojo to port {port} (nftables; see docs/deployment.md)"]
        lines += [
            f"  Audit log: {settings.audit_path}",
            f"  Reports:   {config.path('reports', 'folder')}",
            f"  Policy revision {services.policy.revision}; catalogue revision {services.catalogue.revision}",
        ]
        lines += [f"  WARNING: not available: {m}" for m in services.missing]
        for profile in wireguard_profiles:
            lines += ["  WireGuard device profile (keep it private; see docs/deployment.md):"]
            lines += ["    " + line for line in profile.splitlines()]
        click.echo("\n".join(lines), file=env.stdout)
        env.stdout.flush()

    try:
        asyncio.run(runner.serve(settings, services, banner=banner))
    except runner.RefusedToStart as exc:
        services.close()
        raise click.ClickException(f"refusing to start: {exc}") from None
    finally:
        if clock_file is not None:
            clocks.publish(config.data_dir, None)  # stopped: the commands go back to the real time


@click.command("discover")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_env
def discover(env: Environment, as_json: bool) -> None:
    """Show writes to ClassDojo that no catalogue entry recognises (shapes only, never content).

    Use it after a ClassDojo update: each line is a method, host, path with ids
    replaced by {id}, content type, JSON key skeleton and how often it was seen,
    so you can add a catalogue entry for it.

    \b
    Example:
      dojoguard discover
      dojoguard discover --json > unclassified.json
    """
    from dojoguard.proxy.discovery import Discovery
    from dojoguard.state import open_state

    try:
        config = env.config
    except FileProblems as exc:
        raise fail(exc) from None
    state = open_state(config, create=False)
    if state is None:
        shapes = []
    else:
        try:
            shapes = Discovery(state).shapes()
        finally:
            state.close()
    if as_json:
        click.echo(json.dumps([s.__dict__ for s in shapes], indent=2), file=env.stdout)
        return
    if not shapes:
        click.echo("No unclassified writes recorded.", file=env.stdout)
        return
    for s in shapes:
        click.echo(f"{s.count:6d}  {s.method} {s.host}{s.path}  [{s.content_type}]  last {s.last_seen}",
                   file=env.stdout)
        if s.skeleton:
            click.echo(f"        keys: {s.skeleton}", file=env.stdout)


def _configure_logging(config) -> None:
    try:
        from dojoguard.logs import configure_logging
    except ImportError:
        return
    configure_logging(config["logging"]["level"], config["logging"]["format"])


COMMANDS = [run, discover]
