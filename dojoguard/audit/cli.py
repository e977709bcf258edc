"""``dojoguard audit``: verify the log, sign checkpoints, produce reports, purge, and look at records."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path

import click

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit import retention
from dojoguard.audit.checkpoint import CheckpointError
from dojoguard.audit.log import AuditLog, AuditWriteError
from dojoguard.audit.record import format_time
from dojoguard.audit.render import FORMATS, render
from dojoguard.audit.report import (build_report, configured, calendar_term, conventional_term, day_label, last_week,
                                    period_bounds, this_week)
from dojoguard.audit.verification import verify
from dojoguard.references import ReferenceProblem
from dojoguard.clitools import fail, pass_env
from dojoguard.environment import Environment
from dojoguard.yamlfile import FileProblems

database_option = click.option(
    "--database", "database", type=click.Path(dir_okay=False, path_type=Path),
    help="Audit database to use instead of the configured one (e.g. a copy).")


def _config(env: Environment):
    try:
        return env.config
    except FileProblems as exc:
        raise fail(exc) from None


def _open(env: Environment, database: Path | None, *, must_exist: bool = True) -> AuditLog:
    path = database or _config(env).path("audit", "database")
    if must_exist and not path.exists():
        raise click.ClickException(f"no audit log at {path}. Hint: give --database, or check audit.database "
                                   f"in the settings.")
    try:
        return AuditLog.open(path, clock=env.clock, emit_decisions=False)
    except AuditWriteError as exc:
        raise fail(exc) from None


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log: verify it, sign checkpoints, report to leaders.

    \b
    Example:
      dojoguard audit verify
    """


@audit_group.command("verify")
@click.option("--checkpoint", "checkpoint_files", multiple=True,
              type=click.Path(exists=True, path_type=Path),
              help="Signed checkpoint file, or a folder of them (the published copies, say), to check "
                   "against the log (repeatable). Default: every checkpoint in audit.checkpoint_dir "
                   "and audit.checkpoint_publish_dir.")
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The log's public key (audit-signing.pub). Default: the one beside the checkpoints.")
@click.option("--retention-days", type=click.IntRange(1), default=None,
              help="The retention a purge is held to. Default: audit.retention_days.")
@database_option
@pass_env
def verify_command(env: Environment, checkpoint_files, public_key, retention_days, database) -> None:
    """Check the hash chain, the signed retention purges and the signed checkpoints; exit 1 naming what failed.

    It ends by saying how many records (and seconds) follow the newest
    matching checkpoint: those no signature protects yet.

    \b
    Example:
      dojoguard audit verify --checkpoint /mnt/governors/dojoguard-checkpoints \\
          --public-key audit-signing.pub
    """
    cfg = _config(env)
    folder = cfg.path("audit", "checkpoint_dir")
    published = cfg.path("audit", "checkpoint_publish_dir")
    given = list(checkpoint_files) or [folder, published]
    files = _checkpoint_files(given)
    if not checkpoint_files and published is not None and not published.is_dir():
        click.echo(f"note: the publish folder {published} cannot be reached; only the local checkpoints, "
                   f"on this server, are checked", file=env.stdout)
    with _open(env, database) as log:
        try:
            key = _public_key(cfg, folder, public_key, required=bool(files) or _has_purge(log))
        except CheckpointError as exc:
            raise fail(exc) from None
        result = verify(log, checkpoint_files=files, public_key=key,
                        retention_days=retention_days or cfg["audit"]["retention_days"])
    chain = result.chain
    out = env.stdout
    for problem in result.problems:
        click.echo(f"checkpoint problem: {problem}", file=out)
    for c in result.checkpoints:
        click.echo(f"checkpoint {Path(c.source).name} (record {c.seq}): {c.status}: {c.detail}", file=out)
    for purge in result.purges:
        if not purge.is_ok:
            click.echo(f"retention purge record {purge.seq}: refused: {purge.problem}", file=out)
    if chain.first_break is not None:
        click.echo(f"FAILED: {chain.first_break}", file=out)
        click.echo(f"{chain.records} record(s) before it verified.", file=out)
        sys.exit(1)
    if not all(p.is_ok for p in result.purges):
        click.echo("FAILED: the log starts from a retention purge that cannot be trusted (see above): "
                   "the records it removed may have been deleted by hand.", file=out)
        sys.exit(1)
    if not result.is_ok:
        click.echo("FAILED: the chain is intact but a checkpoint does not match it (see above).", file=out)
        sys.exit(1)
    span = f"records {chain.first_seq} to {chain.last_seq}" if chain.records else "no records"
    cut = f", starting from the signed retention cut after record {chain.anchor[0]}" if chain.anchor else ""
    matched = sum(1 for c in result.checkpoints if c.status == "ok")
    click.echo(f"ok: {chain.records} record(s) verified ({span}{cut}); {matched} checkpoint(s) match; "
               f"{result.seconds:.2f} s", file=out)
    if result.tail is not None:
        click.echo(_describe_tail(result.tail), file=out)


def _describe_tail(tail) -> str:
    if tail.after_seq is None:
        return (f"unprotected: all {tail.records} record(s); no checkpoint matched, so none is protected "
                f"against a rebuilt log")
    span = f", {tail.seconds:.0f} s" if tail.seconds is not None else ""
    return (f"unprotected tail: {tail.records} record(s){span} after the newest matching checkpoint "
            f"(record {tail.after_seq})")


def _checkpoint_files(given) -> list[Path]:
    """Checkpoint files from files and folders (a missing or unset folder gives none)."""
    found: dict[Path, None] = {}  # in order, each once (a list's "in" made many files quadratic)
    for path in given:
        if path is None:
            continue
        for file in (checkpoints.files(path) if path.is_dir() else [path] if path.is_file() else []):
            found.setdefault(file, None)
    return list(found)


def _has_purge(log) -> bool:
    with log.lock:
        return log.connection.execute(
            "SELECT 1 FROM records WHERE type = 'retention.purged' LIMIT 1").fetchone() is not None


def _public_key(cfg, folder: Path, given: Path | None, *, required: bool = True):
    if given is not None:
        return checkpoints.load_public_key(given)
    exported = folder / checkpoints.PUBLIC_KEY_NAME
    if exported.exists():
        return checkpoints.load_public_key(exported)
    key_path = cfg.path("audit", "signing_key")
    if key_path.exists():
        return checkpoints.load_key(key_path).public_key()
    if not required:
        return None
    raise CheckpointError(f"no public key found (looked for {exported} and {key_path}). "
                          f"Hint: give --public-key audit-signing.pub")


@audit_group.command("checkpoint")
@pass_env
def checkpoint_command(env: Environment) -> None:
    """Sign the log's current head now, export it to audit.checkpoint_dir and publish it.

    The signing key (audit.signing_key) is created on first use, readable by
    its owner only; the public key is written beside the checkpoints. A copy
    goes to audit.checkpoint_publish_dir when it is set.

    \b
    Example:
      dojoguard audit checkpoint
    """
    cfg = _config(env)
    publish = cfg.path("audit", "checkpoint_publish_dir")
    with _open(env, None, must_exist=False) as log:
        try:
            checkpoint, path = checkpoints.write_checkpoint(log, cfg.path("audit", "signing_key"),
                                                            cfg.path("audit", "checkpoint_dir"),
                                                            [publish] if publish is not None else [])
        except (CheckpointError, AuditWriteError, OSError) as exc:
            raise fail(exc) from None
    click.echo(f"wrote {path} (record {checkpoint.seq}, key {checkpoint.key_fingerprint})", file=env.stdout)


@audit_group.command("public-key")
@pass_env
def public_key_command(env: Environment) -> None:
    """Print the public key that verifies checkpoints (give it to whoever keeps them).

    \b
    Example:
      dojoguard audit public-key > audit-signing.pub
    """
    cfg = _config(env)
    try:
        key = checkpoints.load_or_create_key(cfg.path("audit", "signing_key"))
    except (CheckpointError, OSError) as exc:
        raise fail(exc) from None
    click.echo(checkpoints.public_key_pem(key).decode("ascii"), nl=False, file=env.stdout)
    click.echo(f"fingerprint: {checkpoints.fingerprint(key.public_key())}", file=env.stderr)


@audit_group.command("report")
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), help="First day (YYYY-MM-DD); needs --to.")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), help="Last day, included; needs --from.")
@click.option("--week", "this_week", is_flag=True, help="This week: Monday to today.")
@click.option("--last-week", "previous_week", is_flag=True, help="Last week: Monday to Sunday.")
@click.option("--term", "term", is_flag=True,
              help="This term: from the school calendar (rules.calendar) when it covers today, otherwise the UK "
                   "convention (September-December, January-Easter, Easter-July); to today at the latest.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write ('-' for standard output).")
@database_option
@pass_env
def report_command(env: Environment, first: datetime | None, last: datetime | None, this_week: bool,
                   previous_week: bool, term: bool, fmt: str, output: Path, database) -> None:
    """Write the leaders' report for a period: HTML (self-contained), CSV or JSON.

    Give the period as --from and --to, or as one of --week, --last-week or
    --term (the days are the school's, in its time zone), e.g.
    `dojoguard audit report --last-week -o last-week.html`.

    \b
    Example:
      dojoguard audit report --from 2026-11-23 --to 2026-11-27 --format html -o week.html
    """
    cfg = _config(env)
    today = env.clock.now().astimezone(cfg.timezone).date()
    first_day, last_day, label = _report_period(cfg, today, first, last, this_week, previous_week, term)
    if label is None:
        label = day_label(first_day, last_day)
    else:
        click.echo(f"Period: {label}", file=env.stderr)
    # A year of a large school takes seconds: say what is happening (on stderr, so `-o -` stays clean).
    click.echo("Reading and verifying the audit log...", file=env.stderr)
    from dojoguard.names_cli import name_table

    with _open(env, database) as log:
        try:
            start, end = period_bounds(first_day, last_day, cfg.timezone)
            table = name_table(env)
            report = build_report(log, start, end, tz=cfg.timezone, now=env.clock.now(), label=label,
                                  names=lambda kind, id_: table.get((kind, id_)), **configured(cfg))
        except ValueError as exc:
            raise fail(exc) from None
    click.echo(f"Writing the {fmt.upper()} report ({report.decisions:,} decisions)...", file=env.stderr)
    data = render(report, fmt)
    if str(output) == "-":
        click.echo(data.decode("utf-8"), nl=False, file=env.stdout)
        return
    output.write_bytes(data)
    click.echo(f"wrote {output} ({report.decisions} decisions, {first_day} to {last_day})", file=env.stderr)


_PERIOD_HINT = "give the period as --from DAY --to DAY, or as one of --week, --last-week or --term"


def _report_period(cfg, today: date, first: datetime | None, last: datetime | None, this_week_: bool,
                   previous_week: bool, term: bool) -> tuple[date, date, str | None]:
    """The report's first and last day, and a label for a shortcut (None: the days say it)."""
    shortcuts = [name for name, on in (("--week", this_week_), ("--last-week", previous_week), ("--term", term))
                 if on]
    given = [name for name, value in (("--from", first), ("--to", last)) if value is not None]
    if len(shortcuts) > 1:
        raise click.UsageError(f"{' and '.join(shortcuts)} were both given: {_PERIOD_HINT}, only one")
    if shortcuts and given:
        raise click.UsageError(f"{shortcuts[0]} and {' and '.join(given)} were both given: {_PERIOD_HINT}, "
                               f"not both")
    if not shortcuts:
        if not given:
            raise click.UsageError(f"no period: {_PERIOD_HINT}")
        if len(given) == 1:
            missing = "--to" if given[0] == "--from" else "--from"
            raise click.UsageError(f"{given[0]} needs {missing} too: {_PERIOD_HINT}")
        return first.date(), last.date(), None
    if this_week_:
        monday, end = this_week(today)
        return monday, end, f"this week, {day_label(monday, end)}"
    if previous_week:
        monday, sunday = last_week(today)
        return monday, sunday, f"last week, {day_label(monday, sunday)}"
    found = _calendar_term(cfg, today)
    if found is not None:
        term_first, term_last = found
        end = min(term_last, today)
        return term_first, end, f"this term (school calendar), {day_label(term_first, end)}"
    name, term_first, term_last = conventional_term(today)
    end = min(term_last, today)
    return term_first, end, f"{name} (no school calendar for today: terms by UK convention), {day_label(term_first, end)}"


def _calendar_term(cfg, today: date) -> tuple[date, date] | None:
    path = cfg.path("rules", "calendar")
    if path is None:
        return None
    from dojoguard.rules.calendar import load_calendar  # only here: it loads the bank holiday tables

    try:
        calendar = load_calendar(path)
    except FileProblems as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read the school calendar {path}: {exc.strerror or exc}. "
                                   f"Hint: give --from and --to instead of --term.") from None
    return calendar_term(today, calendar.terms)


@audit_group.command("purge")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@click.option("--before", type=click.DateTime(["%Y-%m-%d"]),
              help="Remove records before this day instead of audit.retention_days ago.")
@pass_env
def purge_command(env: Environment, dry_run: bool, before: datetime | None) -> None:
    """Remove records older than the retention period, recording the purge, signed, in the chain.

    --before may only move the cut earlier: records younger than
    audit.retention_days are never removed.

    \b
    Example:
      dojoguard audit purge --dry-run
    """
    cfg = _config(env)
    days = cfg["audit"]["retention_days"]
    cut = (datetime.combine(before.date(), datetime.min.time(), cfg.timezone) if before
           else retention.cutoff(env.clock.now(), days))
    with _open(env, None) as log:
        try:
            key = None if dry_run else checkpoints.load_or_create_key(cfg.path("audit", "signing_key"))
            result = retention.purge(log, cut, retention_days=days, key=key, dry_run=dry_run)
        except (AuditWriteError, CheckpointError, OSError) as exc:
            raise fail(exc) from None
        except retention.PurgeRefused as exc:
            raise click.ClickException(f"{exc}. Hint: give an earlier --before, or none to cut at "
                                       f"audit.retention_days.") from None
    verb = "would remove" if dry_run else "removed"
    if result.records:
        click.echo(f"{verb} {result.records} record(s) ({result.first_seq} to {result.last_seq}) written "
                   f"before {format_time(cut)}", file=env.stdout)
    else:
        click.echo(f"nothing to remove: no record is older than {format_time(cut)}", file=env.stdout)


@audit_group.command("tail")
@click.option("-n", "count", default=20, show_default=True, type=click.IntRange(1, 100000))
@click.option("--type", "types", multiple=True, help="Only records of this type (e.g. decision, policy.rejected).")
@database_option
@pass_env
def tail_command(env: Environment, count: int, types, database) -> None:
    """Print the latest records as JSON lines (they hold ids, hashes and counts, never content).

    \b
    Example:
      dojoguard audit tail -n 5 --type decision
    """
    with _open(env, database) as log:
        head = log.head()
        after = max(0, (head.seq if head else 0) - (count if not types else 10**12))
        records = list(log.records(after_seq=after, types=tuple(types) or None))[-count:]
    for record in records:
        click.echo(json.dumps(record.to_dict(), sort_keys=True), file=env.stdout)


@audit_group.command("show")
@click.argument("record_id")
@database_option
@pass_env
def show_command(env: Environment, record_id: str, database) -> None:
    """Show one record by its id (the decision id a teacher was shown, for example), or its first 8 characters.

    Teachers and classes the proxy knows by name are named under "names".

    \b
    Example:
      dojoguard audit show 3f2a9c0e8b7d4e1fa0c2b4d6e8f01234
      dojoguard audit show 3f2a9c0e
    """
    from dojoguard.names_cli import name_table

    with _open(env, database) as log:
        try:
            record = log.find(record_id)
        except ReferenceProblem as exc:
            raise fail(exc) from None
    if record is None:
        raise click.ClickException(f"no record with the reference {record_id.strip()!r}")
    shown = record.to_dict()
    table = name_table(env)
    fields = record.fields
    known = {value: table[(kind, value)] for kind, key in (("teacher", "teacher"), ("class", "class"))
             for value in [fields.get(key)] if isinstance(value, str) and (kind, value) in table}
    if known:
        shown["names"] = known
    click.echo(json.dumps(shown, indent=2, sort_keys=True), file=env.stdout)


COMMANDS = [audit_group]
