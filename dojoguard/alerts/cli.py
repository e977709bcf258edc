"""``dojoguard alerts``: what the alert sender owes and has sent, and a test email to a recipient group."""

from __future__ import annotations

import click

from dojoguard.alerts.outbox import Outbox
from dojoguard.alerts.sender import AlertSettings, alerting_groups
from dojoguard.audit import mail
from dojoguard.clitools import fail, pass_env
from dojoguard.environment import Environment
from dojoguard.yamlfile import FileProblems


def _settings(env: Environment) -> AlertSettings:
    try:
        return AlertSettings.from_config(env.config)
    except FileProblems as exc:
        raise fail(exc) from None


def _policy(env: Environment):
    from dojoguard.rules.policy import BUILTIN, load_policy

    config = env.config
    path = BUILTIN if config["rules"]["policy"] == BUILTIN else config.path("rules", "policy")
    try:
        return load_policy(path, base=config.path("rules", "base"), calendar=config.path("rules", "calendar"),
                           device_groups=dict(config["proxy"]["device_groups"]), timezone=config["timezone"])
    except FileProblems as exc:
        raise fail(exc) from None


@click.group("alerts")
def alerts_group() -> None:
    """Emails to the headteacher, the DSL or leaders when a rule with `alert:` steps in.

    Recipient groups and their addresses are in the settings (alerts.recipients);
    the mail server is reports.smtp. See docs/alerts.md.

    \b
    Example:
      dojoguard alerts status
      dojoguard alerts test dsl
    """


@alerts_group.command("status")
@pass_env
def status(env: Environment) -> None:
    """Show the recipient groups, the alerts waiting, emails not yet sent (and why) and the last one sent.

    Also says which groups the rules name that have no address, so an alert
    would never arrive.

    \b
    Example:
      dojoguard alerts status
    """
    settings = _settings(env)
    named = alerting_groups(_policy(env))
    for group in sorted(named | set(settings.recipients)):
        addresses = settings.recipients.get(group) or []
        used = "used by the rules" if group in named else "not used by any rule"
        shown = ", ".join(addresses) if addresses else "NO ADDRESS: alerts to it cannot be sent"
        click.echo(f"{group:<14} {shown}  ({used})")
    if not settings.enabled:
        click.echo("Alerts are off: alerts.recipients has no addresses. Decisions still record who would be told.")
    if not settings.smtp.get("host"):
        click.echo("No mail server is set (reports.smtp.host): alerts cannot be sent.")
    if not settings.database.exists():
        click.echo("The alert sender has not run yet (no outbox).")
        return
    outbox = Outbox(settings.database)
    try:
        state = outbox.status()
    finally:
        outbox.close()
    click.echo(f"Waiting to be put in an email: {state['waiting_now']} now, {state['waiting_daily']} for the digest.")
    for batch in state["unsent"]:
        click.echo(f"Not yet sent: {batch.id} to {batch.group} ({batch.cadence}), {batch.attempts} tries, "
                   f"next at {batch.next_try:%Y-%m-%d %H:%M:%S}Z" + (f": {batch.last_error}" if batch.last_error else ""))
    last = state["last_sent"]
    click.echo(f"Last email sent: {last:%Y-%m-%d %H:%M:%S}Z" if last else "No email sent yet.")


@alerts_group.command("test")
@click.argument("group")
@pass_env
def test(env: Environment, group: str) -> None:
    """Send a test email to one recipient group now, to check the addresses and the mail server.

    \b
    Example:
      dojoguard alerts test headteacher
    """
    settings = _settings(env)
    addresses = settings.recipients.get(group)
    if not addresses:
        known = ", ".join(sorted(g for g, a in settings.recipients.items() if a)) or "none"
        raise click.ClickException(f"no addresses for the recipient group {group!r} (alerts.recipients.{group}); "
                                   f"groups with addresses: {known}")
    try:
        mail.send(settings.smtp, addresses, f"dojoguard alert test for {group}",
                  f"This is a test from dojoguard: alerts for the {group} recipient group reach this address.\n"
                  "Nothing has happened; no reply is needed.\n")
    except mail.MailError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"sent: a test email to {group} ({', '.join(addresses)})")


COMMANDS = [alerts_group]
