"""``dojoguard demo``: play a scripted school day through the real proxy, then write the leaders' report."""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from dojoguard.clitools import pass_env
from dojoguard.environment import Environment


class _Stopped(Exception):
    """SIGTERM arrived: unwind like Ctrl-C so every process is stopped."""


def _on_sigterm(signum, frame):
    raise _Stopped()


@click.command("demo")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per step (and one for the report).")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the demo's data folder (settings, audit log, registry, proxy CA) here; "
                   "it must be new or empty. Without it a temporary folder is used and removed.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("dojoguard-demo-report.html"), show_default=True,
              help="Where to write the leaders' HTML report of the demo day.")
@pass_env
def demo(env: Environment, as_json: bool, keep: Path | None, report_path: Path) -> None:
    """Play a school day through the real proxy in front of a local ClassDojo stand-in.

    Needs no ClassDojo account and no internet. It imports a class's consents,
    enrols the portrait of the one pupil with biometric consent, starts a
    ClassDojo stand-in and `dojoguard run` in front of it, and then posts,
    awards points and sends messages as a teacher would, moving the proxy's
    clock through the day. Each step is printed with the verdict the proxy
    gave (read back from the audit log), and the day ends with the leaders'
    HTML report. The demo's processes are stopped on exit and on Ctrl-C.

    \b
    Example:
      dojoguard demo
      dojoguard demo --json --keep ./demo-day --report demo-report.html
    """
    from dojoguard.demo.day import Day
    from dojoguard.demo.school import TIMEZONE, demo_day
    from dojoguard.demo.table import JsonLines, Table
    from dojoguard.demo.world import DemoError, World

    if keep is not None:
        if keep.exists() and any(keep.iterdir()):
            raise click.ClickException(f"{keep} is not empty. Hint: give --keep a new or empty folder.")
        keep.mkdir(parents=True, exist_ok=True)
        folder = keep.resolve()
    else:
        folder = Path(tempfile.mkdtemp(prefix="dojoguard-demo-"))
    report_path = report_path.resolve()
    output = JsonLines(env.stdout) if as_json else Table(env.stdout)

    def progress(message: str) -> None:
        click.echo(f"... {message}", file=env.stderr)

    today = env.clock.now().astimezone(ZoneInfo(TIMEZONE)).date()
    day = demo_day(today)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with World(folder, day, progress) as world:
            progress(f"Playing {day:%A %d %B %Y} at St Wilfrid's (the proxy's clock is moved through the day)")
            output.header()
            for step in Day(world).steps():
                output.row(step)
            progress("Writing the leaders' report (dojoguard audit report)")
            report_path.parent.mkdir(parents=True, exist_ok=True)
            # From today: the consent change and the exemption were recorded at the real time.
            world.dojoguard("audit", "report", "--from", today.isoformat(), "--to", day.isoformat(),
                            "--format", "html", "-o", str(report_path))
            proxy_log = world.proxy.log() if world.proxy else ""
        if keep is not None:
            (folder / "proxy.log").write_text(proxy_log, "utf-8")
        output.footer(str(report_path), str(folder) if keep is not None else None)
    except DemoError as exc:
        raise click.ClickException(f"the demo stopped: {exc}") from None
    except (KeyboardInterrupt, _Stopped):
        click.echo("demo interrupted; its processes have been stopped", file=env.stderr)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


COMMANDS = [demo]
