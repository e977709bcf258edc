"""`dojoguard held`: leaders review held posts and see the queue of deferred messages."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

from dojoguard.clitools import fail, pass_env
from dojoguard.environment import Environment
from dojoguard.holds import review
from dojoguard.holds.export import media
from dojoguard.names_cli import name_table
from dojoguard.references import ReferenceProblem
from dojoguard.holds.store import NEEDS_A_PERSON, HoldError, HoldKind, HoldState, HoldStore


@contextmanager
def _opened(env: Environment, command: str = "") -> Iterator[HoldStore]:
    """The store, closed afterwards; a missing item or wrong step becomes a clear CLI error.

    An item found changed behind the commands' back is recorded (``hold.tampered``)
    and set aside before the command fails: it is never approved, retried or sent.
    """
    # In staging the records are stamped with the proxy's clock, so the log stays in time order.
    env.follow_proxy_clock()
    with _failing():
        with review.opened(env.config, env.clock, command) as store:
            yield store


@contextmanager
def _failing() -> Iterator[None]:
    """A refused step (``HoldError``, tampering included) becomes the command's error, with its message."""
    try:
        yield
    except (HoldError, ReferenceProblem) as exc:
        raise fail(exc) from None


def _resolve(env: Environment, reference: str) -> str:
    """The id of the item a reference names: its own id, or the decision's reference the teacher read out."""
    with _opened(env) as store:
        return store.find(reference).id


def _review(env: Environment, step, reference: str, by: str, reason: str | None = None) -> str:
    """Run one of ``review``'s steps with the command's configuration and (the proxy's) clock; the item's id."""
    item_id = _resolve(env, reference)
    env.follow_proxy_clock()
    with _failing():
        step(env.config, env.clock, item_id, by, reason)
    return item_id


@click.group("held")
def held() -> None:
    """Review held posts and the queue of deferred messages.

    \b
    Example:
      dojoguard held list
      dojoguard held approve 3f9c2a1b7d20 --by "Mrs Head"
    """


@held.command("list")
@click.option("--kind", type=click.Choice([k.value for k in HoldKind]), help="Only holds or only deferred.")
@click.option("--failed", is_flag=True,
              help="Only items that need a person: failed, expired, uncertain (a send cut short), or set aside "
                   "as tampered.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_env
def list_items(env: Environment, kind: str | None, failed: bool, as_json: bool) -> None:
    """List held and queued items, oldest first.

    \b
    Example:
      dojoguard held list --kind hold
    """
    with _opened(env) as store:
        items = store.list(kind=HoldKind(kind) if kind else None, states=NEEDS_A_PERSON + (HoldState.TAMPERED,) if failed else None)
    if as_json:
        for item in items:
            click.echo(json.dumps(item.summary()))
        return
    if not items:
        click.echo("Nothing is held or queued.")
        return
    tz = env.config.timezone
    table = name_table(env)
    click.echo(f"{'ID':<13} {'REFERENCE':<9} {'KIND':<6} {'STATE':<17} {'SINCE':<17} {'TEACHER':<25} "
               f"{'WHAT':<18} WHY")
    for item in items:
        since = item.created_at.astimezone(tz).strftime("%a %d %b %H:%M")
        # For items that need a person, what happened matters more than the rule that held them.
        why = item.last_error if item.state in NEEDS_A_PERSON and item.last_error else item.reason
        teacher = table.get(("teacher", item.teacher_id or "")) or item.teacher_id or "unknown"
        click.echo(f"{item.id:<13} {item.decision_id[:8]:<9} {item.kind:<6} {item.state:<17} {since:<17} "
                   f"{teacher:<25} {item.action_kind:<18} {why}")


@held.command("show")
@click.argument("item_id", metavar="REFERENCE")
@click.option("--export", "export_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also save the photo(s) or video it carries into this folder, for review.")
@pass_env
def show(env: Environment, item_id: str, export_dir: Path | None) -> None:
    """Show what an item is, who sent it, when and why it is held.

    \b
    Example:
      dojoguard held show 3f9c2a1b7d20 --export ./review
    """
    with _opened(env) as store:
        item = store.find(item_id)
        request = store.request(item.id)
    for key, value in item.summary().items():
        click.echo(f"{key:>15}: {value if value is not None else '-'}")
    click.echo(f"{'endpoint':>15}: {request.method} {request.host}{request.path.split('?', 1)[0]}")
    if export_dir:
        export_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        found = media(request)
        if not found:
            click.echo("No photo or video found in this item.")
        for number, (ext, data) in enumerate(found, start=1):
            path = export_dir / f"{item.id}-{number}{ext}"
            path.write_bytes(data)
            path.chmod(0o600)
            click.echo(f"Saved {path}")


@held.command("approve")
@click.argument("item_id", metavar="REFERENCE")
@click.option("--by", "by", required=True, help="Who approved it (recorded).")
@pass_env
def approve(env: Environment, item_id: str, by: str) -> None:
    """Approve a held item: the running proxy sends it on to ClassDojo within seconds.

    \b
    Example:
      dojoguard held approve 3f9c2a1b7d20 --by "Mrs Head"
    """
    item_id = _review(env, review.approve, item_id, by)
    click.echo(f"Approved {item_id}: the proxy will send it on within seconds; the teacher is told once it is "
               "posted.")


@held.command("reject")
@click.argument("item_id", metavar="REFERENCE")
@click.option("--reason", required=True, help="Why it was rejected (recorded, and shown to the teacher).")
@click.option("--by", "by", required=True, help="Who rejected it (recorded).")
@pass_env
def reject(env: Environment, item_id: str, reason: str, by: str) -> None:
    """Reject a held or queued item: it is discarded, never reaches ClassDojo, and the teacher is told.

    Refused while the proxy is sending the item (it may already be at ClassDojo).

    \b
    Example:
      dojoguard held reject 3f9c2a1b7d20 --reason "Pupil without photo consent" --by "Mrs Head"
    """
    item_id = _review(env, review.reject, item_id, by, reason)
    click.echo(f"Rejected {item_id}: discarded; the teacher is told on their next ClassDojo post.")


@held.command("close")
@click.argument("item_id", metavar="REFERENCE")
@click.option("--reason", required=True,
              help="What was found (e.g. \"it is on ClassDojo\"); recorded.")
@click.option("--by", "by", required=True, help="Who closed it (recorded).")
@pass_env
def close(env: Environment, item_id: str, reason: str, by: str) -> None:
    """Close an uncertain, failed or expired item without sending it (e.g. it did reach ClassDojo).

    \b
    Example:
      dojoguard held close 3f9c2a1b7d20 --reason "It is on the class story" --by "IT office"
    """
    item_id = _review(env, review.close, item_id, by, reason)
    click.echo(f"Closed {item_id}: it will not be sent.")


@held.command("retry")
@click.argument("item_id", metavar="REFERENCE")
@click.option("--by", "by", required=True, help="Who asked for the retry (recorded).")
@pass_env
def retry(env: Environment, item_id: str, by: str) -> None:
    """Queue a failed or expired item again (e.g. after ClassDojo's outage ended).

    It is sent with the teacher's most recent ClassDojo login seen by the proxy.

    \b
    Example:
      dojoguard held retry 3f9c2a1b7d20 --by "IT office"
    """
    item_id = _review(env, review.retry, item_id, by)
    click.echo(f"{item_id} is queued again: the proxy sends it within seconds.")


@held.command("resend")
@click.argument("item_id", metavar="REFERENCE")
@click.option("--by", "by", required=True, help="Who checked that it did not arrive (recorded).")
@pass_env
def resend(env: Environment, item_id: str, by: str) -> None:
    """Send an uncertain item again, once someone has checked that it is not on ClassDojo.

    An item is uncertain when its send was cut short (the proxy stopped, the
    connection dropped) before ClassDojo answered: it may have arrived. It is
    never sent again without this command.

    \b
    Example:
      dojoguard held resend 3f9c2a1b7d20 --by "IT office"
    """
    item_id = _review(env, review.resend, item_id, by)
    click.echo(f"{item_id} will be sent again within seconds.")


COMMANDS = [held]
