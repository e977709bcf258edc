"""``dojoguard names``: the display names of teachers and classes (list, import the school's list, forget)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dojoguard.clitools import fail, pass_env
from dojoguard.environment import Environment
from dojoguard.names import IMPORTED, KINDS, ImportRefused, Names, read_staff_csv
from dojoguard.yamlfile import FileProblems


def open_names(env: Environment, *, create: bool = False) -> Names | None:
    """The names of this data folder, or None when the proxy has never run here (and ``create`` is false)."""
    try:
        path = env.config.path("proxy", "state")
    except FileProblems as exc:
        raise fail(exc) from None
    from dojoguard.state import open_state

    if path.exists() or create:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = open_state(env.config, create=create)
    return Names(state) if state is not None else None


def name_table(env: Environment) -> dict[tuple[str, str], str]:
    """(kind, id) -> name for this data folder; empty when none are known. For listings."""
    names = open_names(env)
    if names is None:
        return {}
    try:
        return names.table()
    finally:
        names.close()


def labelled(table: dict[tuple[str, str], str], kind: str, id_: str | None) -> str:
    """"Mrs Jones (5f...)" when the name is known, else the id ("unknown" for none)."""
    if not id_:
        return "unknown"
    name = table.get((kind, id_))
    return f"{name} ({id_})" if name else id_


def _audit(env: Environment, event: str, fields: dict) -> None:
    from dojoguard.audit.log import AuditLog

    log = AuditLog.open(env.config.path("audit", "database"), clock=env.clock)
    try:
        log.append_event(event, fields)
    finally:
        log.close()


@click.group("names")
def names_group() -> None:
    """Teachers' and classes' display names, shown instead of ClassDojo ids.

    Names are learned when teachers use ClassDojo through the proxy, or imported
    from the school's own list. They are kept in the proxy's state database,
    never in the audit log.

    \b
    Example:
      dojoguard names list
      dojoguard names import staff.csv
    """


@names_group.command("list")
@click.option("--kind", type=click.Choice(KINDS), help="Only teachers or only classes.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_env
def list_names(env: Environment, kind: str | None, as_json: bool) -> None:
    """List the known names, with their ClassDojo ids and where each came from.

    \b
    Example:
      dojoguard names list --kind teacher
    """
    names = open_names(env)
    known = [] if names is None else names.all(kind)
    if names is not None:
        names.close()
    if as_json:
        for n in known:
            click.echo(json.dumps(n.__dict__))
        return
    if not known:
        click.echo("No names are known yet. They are learned when teachers use ClassDojo through the proxy, or "
                   "imported with `dojoguard names import FILE`.")
        return
    for n in known:
        source = "school list" if n.source == IMPORTED else "learned from ClassDojo"
        click.echo(f"{n.kind:<8} {n.id}  {n.name}  ({source})")


@names_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the file and say what it would set; change nothing.")
@pass_env
def import_names(env: Environment, path: Path, dry_run: bool) -> None:
    """Import names from a CSV with columns "ClassDojo ID", "Name" and optionally "Type" (teacher or class).

    The school's names replace those learned from ClassDojo, and are kept when
    ClassDojo later gives another. A file with any wrong line changes nothing.

    \b
    Example:
      dojoguard names import staff.csv
    """
    try:
        rows = read_staff_csv(path.read_text("utf-8-sig"))
    except UnicodeDecodeError:
        raise click.ClickException(f"{path} is not UTF-8 text; save it as \"CSV UTF-8\" and try again") from None
    except ImportRefused as exc:
        for problem in exc.problems:
            click.echo(f"{path}:{problem}", err=True)
        raise click.ClickException(f"nothing imported: {len(exc.problems)} problem(s) in {path}") from None
    counts = {kind: sum(1 for r in rows if r[0] == kind) for kind in KINDS}
    summary = ", ".join(_count(n, kind) for kind, n in counts.items() if n)
    if dry_run:
        for kind, id_, name in rows:
            click.echo(f"would set {kind} {id_}: {name}")
        click.echo(f"dry run: {summary} would be set; nothing changed")
        return
    names = open_names(env, create=True)
    try:
        # Recorded first (counts only, never names): a change that could not be audited is not made.
        _audit(env, "names.imported", {"source": path.name, "teachers": counts["teacher"],
                                       "classes": counts["class"]})
        names.set(rows, env.clock.now())
    finally:
        names.close()
    click.echo(f"imported {summary} from {path}")


@names_group.command("forget")
@click.argument("classdojo_id")
@pass_env
def forget_name(env: Environment, classdojo_id: str) -> None:
    """Forget the name held for a ClassDojo id (a member of staff who left, or on request).

    ClassDojo may teach it again if that person still uses it through the proxy.

    \b
    Example:
      dojoguard names forget 5f0000000000000000000a01
    """
    names = open_names(env)
    removed = 0
    if names is not None:
        try:
            removed = names.forget(classdojo_id.strip().lower())
        finally:
            names.close()
    if not removed:
        raise click.ClickException(f"no name is held for {classdojo_id!r} (see `dojoguard names list`)")
    _audit(env, "names.forgotten", {"id": classdojo_id.strip().lower()})
    click.echo(f"forgot the name held for {classdojo_id}")


def _count(n: int, kind: str) -> str:
    if n == 1:
        return f"1 {kind}"
    return f"{n} {'classes' if kind == 'class' else 'teachers'}"


COMMANDS = [names_group]
