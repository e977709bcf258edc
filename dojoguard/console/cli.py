"""``dojoguard console``: serve the leaders' console, and manage who may log in to it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dojoguard.clitools import fail, pass_env
from dojoguard.clock import FileClock
from dojoguard.environment import Environment
from dojoguard.yamlfile import FileProblems


def _config(env: Environment):
    try:
        return env.config
    except FileProblems as exc:
        raise fail(exc) from None


def _accounts(env: Environment):
    from dojoguard.console.accounts import Accounts

    return Accounts(_config(env).path("console", "database"))


def _audit(env: Environment, event: str, fields: dict) -> None:
    from dojoguard.audit.log import AuditLog

    log = AuditLog.open(_config(env).path("audit", "database"), clock=env.clock)
    try:
        log.append_event(event, fields)
    finally:
        log.close()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException("no password given")
    return password


@click.group("console", invoke_without_command=True)
@click.option("--listen", metavar="HOST:PORT", help="Address to serve on (default: console.listen).")
@click.option("--clock-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the time from this file (staging and demos only; never in production).")
@click.pass_context
def console_group(ctx: click.Context, listen: str | None, clock_file: Path | None) -> None:
    """Serve the leaders' console over HTTPS (and manage its accounts with `console user`).

    A web console for senior leaders, the headteacher, the DPO and IT, beside
    the proxy on the same data folder. Only the networks in
    console.admin_networks reach it; make accounts first with `console user add`.

    \b
    Example:
      dojoguard console user add j.patel --role headteacher
      dojoguard console --listen 0.0.0.0:8443
    """
    if ctx.invoked_subcommand is not None:
        return
    env = ctx.ensure_object(Environment)
    if clock_file is not None:
        env.clock = FileClock(clock_file)
    _serve(env, listen)


def _serve(env: Environment, listen: str | None) -> None:
    from dojoguard.console.app import create_app
    from dojoguard.console.server import make_server, parse_listen, serve
    from dojoguard.console.tls import CertificateProblem, ensure

    cfg = _config(env)
    # In staging the proxy reads its time from a file; the console's records then sit in time order with its own.
    env.follow_proxy_clock()
    try:
        host, port = parse_listen(listen or cfg["console"]["listen"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None
    try:
        certificate = ensure(cfg, host)
    except (CertificateProblem, OSError) as exc:
        raise click.ClickException(f"the console cannot start: {exc}") from None
    app = create_app(cfg, clock=env.clock)
    from dojoguard.console.pages.overview import warm

    warm(app)
    accounts = app.extensions["dojoguard"].accounts
    server = make_server(app, host, port, certificate)

    def ready(address) -> None:
        shown = f"[{address[0]}]" if ":" in address[0] else address[0]
        click.echo(f"dojoguard console: https://{shown}:{address[1]}/ (data folder {cfg.data_dir})", err=True)
        click.echo(f"  certificate {certificate.cert_file}{' (made now)' if certificate.made_now else ''}, "
                   f"SHA-256 {certificate.fingerprint}", err=True)
        click.echo(f"  reachable from {', '.join(cfg['console']['admin_networks'])} (console.admin_networks)",
                   err=True)
        if not accounts.all():
            click.echo("  no accounts yet: make one with `dojoguard console user add NAME --role headteacher`",
                       err=True)

    try:
        serve(server, ready)
    except OSError as exc:
        raise click.ClickException(f"the console cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        app.extensions["dojoguard"].close()


@console_group.group("user")
def user_group() -> None:
    """Console accounts: add, list, disable, set a password, unlock.

    \b
    Example:
      echo "$PASSWORD" | dojoguard console user add j.patel --role headteacher --password-stdin
    """


@user_group.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["headteacher", "leader", "dpo", "it"]),
              help="headteacher: everything; leader: overview, decisions, held items, reports; "
                   "dpo: overview, decisions, consent, reports; it: overview, decisions, system health.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@pass_env
def user_add(env: Environment, name: str, role: str, password_stdin: bool) -> None:
    """Make a console account (passwords of 12 characters or more, kept as Argon2id hashes).

    \b
    Example:
      dojoguard console user add j.patel --role headteacher
    """
    from dojoguard.console.accounts import AccountError

    password = _password(password_stdin)
    accounts = _accounts(env)
    try:
        account = accounts.add(name, role, password, env.clock.now())
        _audit(env, "console.account_added", {"account": account.name, "role": account.role.value})
    except AccountError as exc:
        raise fail(exc) from None
    finally:
        accounts.close()
    click.echo(f"added {account.name} ({account.role.value})")


@user_group.command("list")
@pass_env
def user_list(env: Environment) -> None:
    """List the accounts, their roles, and whether each is disabled or locked.

    \b
    Example:
      dojoguard console user list
    """
    accounts = _accounts(env)
    try:
        everyone = accounts.all()
    finally:
        accounts.close()
    if not everyone:
        click.echo("No accounts yet: make one with `dojoguard console user add NAME --role headteacher`.")
        return
    now = env.clock.now()
    tz = _config(env).timezone
    for a in everyone:
        state = "disabled" if a.disabled else (
            f"locked until {a.locked_until.astimezone(tz):%H:%M}" if a.locked_until and a.locked_until > now
            else "active")
        last = a.last_login.astimezone(tz).strftime("%d %b %Y %H:%M") if a.last_login else "never"
        trust = "" if a.trust_scope is None else (
            "  trust: every school" if a.trust_scope == "*" else f"  trust: {a.trust_scope}")
        click.echo(f"{a.name:<24} {a.role.value:<12} {state:<20} last login {last}{trust}")


def _change(env: Environment, name: str, step: str, event: str, message: str, **kwargs) -> None:
    from dojoguard.console.accounts import AccountError

    accounts = _accounts(env)
    try:
        account = getattr(accounts, step)(name, **kwargs)
        _audit(env, event, {"account": account.name})
    except AccountError as exc:
        raise fail(exc) from None
    finally:
        accounts.close()
    click.echo(message.format(name=account.name))


@user_group.command("scope")
@click.argument("name")
@click.option("--school", help="the one school of the trust the account may see on the Trust page")
@click.option("--trust-wide", is_flag=True, help="every school of the trust (the trust's leaders)")
@click.option("--none", "no_scope", is_flag=True, help="no school: the Trust page is closed to the account")
@pass_env
def user_scope(env: Environment, name: str, school: str | None, trust_wide: bool, no_scope: bool) -> None:
    """Say which schools of the trust's central store an account sees on the Trust page (docs/trust.md).

    Its open logins end, so a narrowed scope takes effect at once.

    \b
    Example:
      dojoguard console user scope j.patel --school st-wilfrids
    """
    from dojoguard.console.accounts import TRUST_WIDE, AccountError

    if sum((bool(school), trust_wide, no_scope)) != 1:
        raise click.UsageError("give exactly one of --school SCHOOL, --trust-wide or --none")
    scope = school if school else TRUST_WIDE if trust_wide else None
    accounts = _accounts(env)
    try:
        account = accounts.set_trust_scope(name, scope)
        _audit(env, "console.account_scoped", {"account": account.name, "trust_scope": scope or "none"})
    except AccountError as exc:
        raise fail(exc) from None
    finally:
        accounts.close()
    shown = "every school" if scope == TRUST_WIDE else scope or "no school"
    click.echo(f"{account.name} sees {shown} of the trust.")


@user_group.command("disable")
@click.argument("name")
@pass_env
def user_disable(env: Environment, name: str) -> None:
    """Disable an account: it can no longer log in, and its open logins end at once.

    \b
    Example:
      dojoguard console user disable j.patel
    """
    _change(env, name, "disable", "console.account_disabled", "disabled {name}: its logins have ended")


@user_group.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@pass_env
def user_password(env: Environment, name: str, password_stdin: bool) -> None:
    """Set a new password (and unlock the account); its open logins end.

    \b
    Example:
      dojoguard console user password j.patel
    """
    _change(env, name, "set_password", "console.password_set", "new password set for {name}",
            password=_password(password_stdin))


@user_group.command("unlock")
@click.argument("name")
@pass_env
def user_unlock(env: Environment, name: str) -> None:
    """Unlock an account locked after wrong passwords.

    \b
    Example:
      dojoguard console user unlock j.patel
    """
    _change(env, name, "unlock", "console.account_unlocked", "unlocked {name}")


COMMANDS = [console_group]
