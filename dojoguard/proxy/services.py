"""Everything the addon works with, opened once at start (fail closed) and reloaded when files change.

The rules, audit, consent-registry and holds packages are used only through
their published entry points. A policy, catalogue, settings or audit problem
at start stops the proxy; an image checker or hold store that cannot open
leaves the proxy running with every photo or hold failing closed, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from dojoguard.clock import Clock
from dojoguard.proxy import catalogue as catalogues
from dojoguard.proxy import staff as staffroles
from dojoguard.proxy.attachments import AttachmentMemory, Fetcher
from dojoguard.proxy.context import ClassTeachers, StoryPosts, Threads
from dojoguard.proxy.discovery import Discovery
from dojoguard.proxy.inbound import Inbound
from dojoguard.proxy.sessions import Sessions
from dojoguard.proxy.settings import Settings
from dojoguard.proxy.skills import Skills
from dojoguard.names import Names
from dojoguard.proxy.counting import Counts
from dojoguard.state import State, open_state
from dojoguard.storage.location import Storage

log = structlog.get_logger("dojoguard.proxy")


class StartupError(Exception):
    """The proxy cannot start safely; the message says why."""


@dataclass
class Services:
    settings: Settings
    clock: Clock
    policy: Any
    exemptions: Any
    catalogue: catalogues.Catalogue
    audit: Any
    state: State
    sessions: Sessions
    skills: Skills
    discovery: Discovery
    names: Names
    memory: AttachmentMemory
    fetcher: Fetcher
    checker: Any = None
    registry: Any = None
    holds: Any = None
    # Parents' messages in the threads teachers open (proxy/inbound.py; reads nothing unless turned on).
    inbound: Any = None
    # What is known around a write (proxy/context.py, proxy/staff.py): None leaves it unknown.
    classes: ClassTeachers | None = None
    posts: StoryPosts | None = None
    threads: Threads | None = None
    staff: staffroles.Staff | None = None
    # What the rules' counting conditions count (proxy/counting.py).
    counts: Any = None
    # The audit log's flusher process, once the proxy runs (audit.durability).
    flusher: Any = None
    # What is not available, for the start-up banner and logs.
    missing: list[str] = field(default_factory=list)
    stamps: dict[str, Any] = field(default_factory=dict)
    # The exemptions are kept on the trust's server and it has not answered for longer than the bound: none
    # applies until it does (rules/exemption_store.py), whatever the file here says.
    exemptions_suspended: bool = False

    def close(self) -> None:
        for name in ("checker", "registry", "holds"):
            thing = getattr(self, name)
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing must reach every service
                    log.exception("close.failed", service=name)
        self.audit.close()
        self.state.close()


def load_policy(settings: Settings):
    from dojoguard.rules.policy import load_policy as load

    return load(settings.policy, base=settings.base, calendar=settings.calendar,
                device_groups=settings.device_groups, timezone=settings.timezone)


def load_exemptions(settings: Settings):
    from dojoguard.rules.exemptions import load_exemptions as load

    # A hand-edited exemption longer than the school allows is refused like a broken file.
    max_days = settings.config["exemptions"]["max_days"] if settings.config is not None else None
    return load(settings.exemptions, max_days=max_days)


def load_catalogue(settings: Settings) -> catalogues.Catalogue:
    return catalogues.load(settings.catalogue, extra_hosts=settings.extra_hosts)


def open_services(settings: Settings, clock: Clock, *, images: bool = True) -> Services:
    """Open everything; raises ``FileProblems`` (bad rule or catalogue file) or ``StartupError``.

    ``images=False`` leaves the image checker out (every photo then fails closed): for tools and
    tests that never see a photo and should not start face-detection workers.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        policy = load_policy(settings)
        exemptions = load_exemptions(settings)
    except ImportError as exc:
        raise StartupError(f"the rules package is not installed ({exc}); refusing to run without a policy") from None
    catalogue = load_catalogue(settings)
    staff = staffroles.load(settings.staff.roles, settings.staff.file)
    try:
        from dojoguard.audit.log import AuditLog
    except ImportError as exc:
        raise StartupError(f"the audit package is not installed ({exc}); refusing to run unrecorded") from None
    # The proxy writes the one canonical log line per judged request itself (request.judged).
    # Deferred sync: a write is forwarded once its record is committed and answered once
    # the record is flushed to disk (see Judge.record).
    from dojoguard.audit.fingerprints import key_path_for

    # Message fingerprints are keyed with a secret beside the signing key, never in the database.
    audit = AuditLog.open(settings.audit_path, clock=clock, emit_decisions=False, deferred_sync=True,
                          fingerprint_key=key_path_for(settings.config, settings.audit_path))
    # On the trust's server with storage: postgresql://... (each school its own schema), else the file.
    central = settings.config is not None and Storage.from_config(settings.config).central
    state = open_state(settings.config) if central else State(settings.state_path)
    services = Services(
        settings=settings, clock=clock, policy=policy, exemptions=exemptions, catalogue=catalogue, audit=audit,
        state=state, sessions=Sessions(state, limit=settings.max_sessions, days=settings.session_days),
        skills=Skills(state),
        discovery=Discovery(state, limit=settings.max_unclassified_shapes, days=settings.unclassified_days),
        names=Names(state),
        memory=AttachmentMemory(),
        fetcher=Fetcher(settings.resolve, settings.upstream_trust, settings.max_write_bytes),
        inbound=Inbound(state, settings.inbound),
        classes=ClassTeachers(state), posts=StoryPosts(), threads=Threads(), staff=staff,
        counts=Counts(state, clock.now()),
    )
    if images:
        services.checker = _optional("image checks (every photo will be blocked)", services, _open_checker,
                                     settings)
    else:
        services.missing.append("image checks (not started; every photo will be blocked)")
    services.registry = _optional("consent registry learning (rosters are not recorded)", services,
                                  _open_registry, settings, clock)
    services.holds = _optional("hold store (holds and deferrals will be blocked)", services, _open_holds, settings)
    services.stamps = watched_stamps(settings)
    # The file may have been edited while the proxy was down.
    services.exemptions = _checked_exemptions(services, exemptions, str(settings.exemptions))
    return services


def _optional(what: str, services: Services, opener, *args):
    try:
        return opener(*args)
    except Exception as exc:  # noqa: BLE001 - reported loudly; the proxy fails closed without it
        services.missing.append(what)
        log.error("service.unavailable", service=what, error=type(exc).__name__, detail=str(exc)[:200])
        return None


def _open_checker(settings: Settings):
    from dojoguard.consent_registry.imagecheck import ImageChecker

    copy = settings.config is not None and Storage.from_config(settings.config).central
    return ImageChecker(settings.images, settings.registry_path, settings.channel_purposes, copy=copy)


def _open_registry(settings: Settings, clock: Clock):
    from dojoguard.consent_registry.opening import CentralLearner, open_registry
    from dojoguard.consent_registry.registry import Registry

    if settings.config is None:
        return Registry.open(settings.registry_path, clock=clock, purposes=settings.purposes)
    if Storage.from_config(settings.config).central:
        # What the proxy learns (classes, rosters) goes to the school's register on the server, from the
        # learning threads; photos are judged from this proxy's copy of it (consent_registry/replica.py).
        return CentralLearner(settings.config, clock=clock)
    return open_registry(settings.config, clock=clock)


def _open_holds(settings: Settings):
    from dojoguard.holds.seal import key_path_for
    from dojoguard.holds.store import HoldStore

    if settings.config is not None and Storage.from_config(settings.config).central:
        from dojoguard.holds.opening import open_holds

        # The school's held and queued items on the trust's server: kept and sent from worker threads.
        return open_holds(settings.config)
    return HoldStore.open(settings.holds_path, key_path=key_path_for(settings.config, settings.holds_path))


# -- reloading ------------------------------------------------------------

def _stamp(path: Path | str | None) -> Any:
    """A cheap fingerprint of a file or folder: (name, mtime, size) of everything in it."""
    if path is None or str(path) == catalogues.BUILTIN:
        return None
    path = Path(path)
    try:
        if path.is_dir():
            return tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in path.rglob("*")
                                if p.is_file()))
        st = path.stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return "missing"


def watched_stamps(settings: Settings) -> dict[str, Any]:
    return {
        # The trust's base rules are part of the policy: an edit to them reloads it too.
        "policy": (_stamp(settings.policy), _stamp(settings.calendar), _stamp(settings.base)),
        "exemptions": _stamp(settings.exemptions),
        "catalogue": _stamp(settings.catalogue),
    }


@dataclass(frozen=True)
class Reloaded:
    """One reload attempt: what changed and, when it failed, the problems (the old files stay)."""

    what: str
    source: str
    ok: bool
    codes: tuple[str, ...] = ()
    problems: int = 0
    previous_revision: str = ""
    # Where each problem is, "file:line:column CODE" (the first MAX_PLACES): IT fixes them from the log.
    places: tuple[str, ...] = ()


# A broken edit can have hundreds of problems; the log names the first ones, `rules check` lists all.
MAX_PLACES = 20


def _place(problem) -> str:
    where = f"{problem.file}:{problem.line}:{problem.column}" if problem.line else problem.file
    return f"{where} {problem.code}"


def reload_changed(services: Services) -> list[Reloaded]:
    """Reload changed rule, exemption and catalogue files (blocking: run in a thread)."""
    settings, results = services.settings, []
    stamps = watched_stamps(settings)
    loaders = (("policy", settings.policy, load_policy), ("exemptions", str(settings.exemptions), load_exemptions),
               ("catalogue", settings.catalogue, load_catalogue))
    for what, source, loader in loaders:
        if stamps[what] == services.stamps.get(what):
            continue
        if what == "exemptions" and services.exemptions_suspended:
            continue  # applied again, from the file, once the server answers
        services.stamps[what] = stamps[what]
        results.append(_reload(services, what, source, loader))
    return results


def reload_exemptions(services: Services) -> Reloaded:
    """Load the exemptions file again now (blocking): the copy of the trust server's exemptions was rewritten."""
    settings = services.settings
    services.stamps["exemptions"] = watched_stamps(settings)["exemptions"]
    return _reload(services, "exemptions", str(settings.exemptions), load_exemptions)


def _reload(services: Services, what: str, source: str, loader) -> Reloaded:
    from dojoguard.yamlfile import FileProblems

    previous = services.policy.revision if what == "policy" else ""
    try:
        value = loader(services.settings)
    except FileProblems as exc:
        return Reloaded(what, source, False, tuple(sorted({p.code for p in exc.problems})), len(exc.problems),
                        previous, tuple(_place(p) for p in exc.problems[:MAX_PLACES]))
    except (OSError, ValueError) as exc:
        return Reloaded(what, source, False, (type(exc).__name__,), 1, previous)
    if what == "exemptions":
        value = _checked_exemptions(services, value, source)
    setattr(services, what, value)
    return Reloaded(what, source, True, previous_revision=previous)


def _checked_exemptions(services: Services, exemptions, source: str):
    """Record hand edits of the exemptions file before any applies; what is not on record is left out."""
    from dojoguard.proxy.exemption_checks import check

    checked = check(exemptions, services.audit, services.clock, source)
    if not checked.complete:
        services.stamps["exemptions"] = None  # check again at the next reload
    return checked.exemptions
