"""``dojoguard trust``: the trust's central store: what each proxy has shipped, checking it, reports, readers."""

from __future__ import annotations

import sys
import zoneinfo
from contextlib import contextmanager
from datetime import datetime, time, timedelta
from pathlib import Path

import click

from dojoguard.clitools import fail, pass_env
from dojoguard.environment import Environment
from dojoguard.trust.central import Central, TrustError
from dojoguard.yamlfile import FileProblems

DATABASE_HELP = ("the central store's address (default: trust.database); connect with a reader's own account "
                 "to see what it may see")


def _dsn(env: Environment, database: str | None) -> str:
    if database:
        return database
    from dojoguard.storage.location import trust_database

    try:
        value = trust_database(env.config)
    except FileProblems as exc:
        raise fail(exc) from None
    if not value:
        raise click.ClickException("no central store: set trust.database (or storage) in the settings "
                                   "(docs/trust.md), or give --database")
    return value


def _open(env: Environment, database: str | None, *, migrate: bool = False) -> Central:
    try:
        central = Central.open(_dsn(env, database), migrate=migrate, application_name="dojoguard trust")
    except TrustError as exc:
        raise fail(exc) from None
    if not central.db.has_table("records"):
        central.close()
        raise click.ClickException("the central store has no tables yet: run `dojoguard trust init` with the "
                                   "owner's account first (docs/trust.md)")
    return central


@contextmanager
def _store(env: Environment, database: str | None, *, migrate: bool = False):
    """The central store for one command, closed after it; its refusals said plainly, never as a traceback."""
    import psycopg

    central = _open(env, database, migrate=migrate)
    try:
        yield central
    except psycopg.errors.InsufficientPrivilege:
        raise click.ClickException("this database account may not read the central store: the trust's "
                                   "administrator grants it a school or the whole trust (dojoguard trust "
                                   "grant)") from None
    except TrustError as exc:
        raise fail(exc) from None
    finally:
        central.close()


database_option = click.option("--database", metavar="DSN", help=DATABASE_HELP)


@click.group("trust")
def trust_group() -> None:
    """A multi-academy trust's central store: many schools' proxies shipping to one PostgreSQL.

    Each proxy keeps its own audit log and ships a copy (trust.database in the
    settings). See docs/trust.md.

    \b
    Example:
      dojoguard trust status
      dojoguard trust report --from 2026-09-01 --to 2027-07-23 --html trust-report.html
    """


@trust_group.command("init")
@database_option
@pass_env
def init(env: Environment, database: str | None) -> None:
    """Create the central store's tables, or bring them up to this release (the owner's account).

    Safe to run again. (A proxy that ships with the owner's account also brings
    the tables up to date when it connects; a proxy's own account cannot.)

    \b
    Example:
      dojoguard trust init --database postgresql://dojoguard_owner@db.trust.example/dojoguard
    """
    from dojoguard.storage import migrations
    from dojoguard.trust import schema

    try:
        central = Central.open(_dsn(env, database), migrate=False, application_name="dojoguard trust")
    except TrustError as exc:
        raise fail(exc) from None
    try:
        applied = schema.migrate(central.db)
        known = migrations.recorded(central.db)
    except Exception as exc:  # noqa: BLE001 - a reader's or a shipper's account cannot create tables: say so
        raise click.ClickException(f"the central store could not be set up with this account: {exc}") from None
    finally:
        central.close()
    click.echo(f"The central store is ready ({len(known)} migrations; {len(applied)} applied now).")


@trust_group.command("status")
@database_option
@pass_env
def status(env: Environment, database: str | None) -> None:
    """Show each proxy the central store knows: its school, how far it has shipped, when it last did.

    \b
    Example:
      dojoguard trust status
    """
    with _store(env, database) as central:
        nodes = central.nodes()
    if not nodes:
        click.echo("No proxy has shipped to the central store yet (or this account may read no school).")
    for n in nodes:
        shipped = n.shipped_at.isoformat(timespec="seconds") if n.shipped_at else "never"
        click.echo(f"{n.school:<22} {n.node:<28} records {n.start_seq}-{n.last_seq} "
                   f"(last written {n.last_at or 'none'}; last shipped {shipped})")


@trust_group.command("ship")
@click.option("--once", is_flag=True, help="ship what is waiting, then stop (default: keep shipping)")
@pass_env
def ship(env: Environment, once: bool) -> None:
    """Ship this proxy's audit records to the central store (the proxy does this itself while it runs).

    For catching up while the proxy is stopped, or from a copy of a node's
    data folder. Safe to run beside the proxy: the store skips what it holds.

    \b
    Example:
      dojoguard trust ship --once
    """
    from dojoguard.trust.shipper import Shipper, ShipSettings

    try:
        settings = ShipSettings.from_config(env.config)
    except (FileProblems, TrustError) as exc:
        raise fail(exc) from None
    if settings is None:
        raise click.ClickException("no central store: set trust.database and trust.school (docs/trust.md)")
    if not settings.audit_database.exists():
        raise click.ClickException(f"no audit log at {settings.audit_database}: nothing to ship")
    shipper = Shipper(settings)
    if not once:
        click.echo(f"Shipping {settings.audit_database} as {settings.node} ({settings.school}); Ctrl-C to stop.")
        shipper.start()
        try:
            while True:
                shipper.wait(3600)
        except KeyboardInterrupt:
            shipper.stop()
        return
    try:
        shipped = shipper.ship_all()
    except TrustError as exc:
        raise fail(exc) from None
    finally:
        shipper.close()
    click.echo(f"Shipped {shipped} records; the central store holds {settings.node}'s records up to "
               f"{shipper.status.central_seq}.")


@trust_group.command("verify")
@click.option("--school", help="only this school's proxies")
@database_option
@pass_env
def verify(env: Environment, school: str | None, database: str | None) -> None:
    """Re-check every proxy's chain and signed checkpoints from the central copy alone.

    Exits 1 if any is broken. Needs only read access (a trust-wide reader
    account will do).

    \b
    Example:
      dojoguard trust verify
    """
    from dojoguard.trust.verify import verify as check

    with _store(env, database) as central:
        results = check(central, school)
    for r in results:
        click.echo(f"{r.school:<22} {r.node:<28} {r.summary()}")
    if not results:
        click.echo("No proxy to check (none has shipped, or this account may read no school).")
    if any(not r.is_ok for r in results):
        sys.exit(1)


@trust_group.command("report")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), help="first day (default: 30 days ago)")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="last day, included (default: today)")
@click.option("--school", help="only this school")
@click.option("--html", "html", type=click.Path(dir_okay=False, path_type=Path), help="write the report as HTML")
@click.option("--json", "as_json", type=click.Path(dir_okay=False, path_type=Path), help="write it as JSON")
@database_option
@pass_env
def report(env: Environment, start: datetime | None, end: datetime | None, school: str | None, html: Path | None,
           as_json: Path | None, database: str | None) -> None:
    """Every school's decisions side by side (the schools this account may read).

    Prints a summary; --html and --json write the whole report.

    \b
    Example:
      dojoguard trust report --from 2026-09-01 --to 2027-07-23 --html trust-report.html
    """
    from dojoguard.trust import report as trust_report

    tz = zoneinfo.ZoneInfo(env.config["timezone"])
    today = env.clock.now().astimezone(tz).date()
    last = end.date() if end else today
    first = start.date() if start else last - timedelta(days=29)
    if first > last:
        raise click.ClickException(f"--from {first} is after --to {last}")
    begin = datetime.combine(first, time(0), tz)
    finish = datetime.combine(last + timedelta(days=1), time(0), tz)
    with _store(env, database) as central:
        made = trust_report.gather(central, begin, finish, school=school, now=env.clock.now())
    click.echo(trust_report.render_text(made), nl=False)
    for path, fmt in ((html, "html"), (as_json, "json")):
        if path is not None:
            trust_report.write(made, path, fmt)
            click.echo(f"Wrote {path}")


@trust_group.command("grant")
@click.argument("account")
@click.option("--school", help="the school it may read")
@click.option("--trust-wide", is_flag=True, help="every school (for the trust's leaders and auditors)")
@database_option
@pass_env
def grant(env: Environment, account: str, school: str | None, trust_wide: bool, database: str | None) -> None:
    """Let a database account read one school's records, or the whole trust's.

    The account is made first by the database administrator (CREATE ROLE ...
    LOGIN). PostgreSQL itself then shows it only its scope, whatever it runs.

    \b
    Example:
      dojoguard trust grant head_st_wilfrids --school st-wilfrids
    """
    from dojoguard.trust import accounts

    if bool(school) == trust_wide:
        raise click.UsageError("give exactly one of --school SCHOOL or --trust-wide")
    with _store(env, database, migrate=True) as central:
        accounts.grant(central, account, None if trust_wide else school)
    click.echo(f"{account} may now read {'every school' if trust_wide else school}.")


@trust_group.command("allow-shipper")
@click.argument("account")
@click.option("--node", required=True, help="the proxy's name (its trust.node)")
@click.option("--school", required=True, help="the proxy's school (its trust.school)")
@database_option
@pass_env
def allow_shipper(env: Environment, account: str, node: str, school: str, database: str | None) -> None:
    """Let one proxy's own database account ship as its node, and do nothing else.

    The account is made first by the database administrator (CREATE ROLE ...
    LOGIN); the proxy then uses it in trust.database. It may register only
    this node in this school, add only to this node's chain, read only its rows.

    \b
    Example:
      dojoguard trust allow-shipper ship_st_wilfrids_1 --node st-wilfrids-1 --school st-wilfrids
    """
    from dojoguard.trust import accounts

    with _store(env, database, migrate=True) as central:
        accounts.allow_shipper(central, account, node, school)
    click.echo(f"{account} may now ship as {node} ({school}).")


@trust_group.command("revoke")
@click.argument("account")
@click.option("--school", help="only this scope (default: every scope it has)")
@database_option
@pass_env
def revoke(env: Environment, account: str, school: str | None, database: str | None) -> None:
    """Take a database account's read access away (for one school, or all of it, shipping included).

    \b
    Example:
      dojoguard trust revoke head_st_wilfrids
    """
    from dojoguard.trust import accounts

    with _store(env, database) as central:
        gone = accounts.revoke(central, account, school)
    click.echo(f"{account} lost {gone} scope(s).")


@trust_group.command("readers")
@database_option
@pass_env
def list_readers(env: Environment, database: str | None) -> None:
    """List the accounts that may read the central store (and what), and the proxies' shipping accounts.

    \b
    Example:
      dojoguard trust readers
    """
    from dojoguard.trust import accounts

    with _store(env, database) as central:
        found = accounts.scopes(central)
    for account, scope in found:
        if scope == accounts.TRUST_WIDE:
            scope = "reads every school"
        elif not scope.startswith("ships"):
            scope = f"reads {scope}"
        click.echo(f"{account:<30} {scope}")


@trust_group.command("purge")
@click.option("--older-than-days", "days", type=click.IntRange(min=1), required=True,
              help="remove records written more than this many days ago (the trust's retention)")
@click.option("--school", help="only this school's proxies")
@database_option
@pass_env
def purge(env: Environment, days: int, school: str | None, database: str | None) -> None:
    """Remove the central copy's records older than the trust's retention (the owner's account).

    Each proxy's chain then starts after its last removed record, so `trust
    verify` goes on checking the rest; every cut is kept in the store's
    purges table. Each school's own log keeps its own retention.

    \b
    Example:
      dojoguard trust purge --older-than-days 730
    """
    before = env.clock.now() - timedelta(days=days)
    with _store(env, database) as central:
        done = central.purge(before, school=school)  # refuses any account but the owner, saying so
    for p in done:
        click.echo(f"{p.school:<22} {p.node:<28} removed records {p.first_seq}-{p.last_seq} ({p.records})")
    click.echo(f"Removed {sum(p.records for p in done)} records written before {before:%Y-%m-%d %H:%M} "
               f"from {len(done)} proxies' chains.")


@trust_group.command("retire")
@click.argument("node")
@database_option
@pass_env
def retire(env: Environment, node: str, database: str | None) -> None:
    """Set a proxy's registration aside (its log or key was replaced), keeping every record it shipped.

    Its records stay under NODE.retired-TIME; the name can then register again
    with the new log and key. Do this only after finding why they changed.

    \b
    Example:
      dojoguard trust retire st-wilfrids-1
    """
    with _store(env, database) as central:
        central.retire(node)
    click.echo(f"{node}'s registration is set aside; its records are kept.")


COMMANDS = [trust_group]
