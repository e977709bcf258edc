"""``dojoguard consent ...`` and ``dojoguard image check``: the registry and the image check from the shell."""

from __future__ import annotations

import asyncio
import hashlib
import json
import zoneinfo
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import click

from dojoguard.clitools import fail, pass_env
from dojoguard.clock import minute
from dojoguard.consent_registry import enrolment, importer
from dojoguard.consent_registry.recording import record_import, subject
from dojoguard.consent_registry.imagecheck import ImageCheck, ImageChecker, settings_from
from dojoguard.consent_registry.registry import (
    BIOMETRIC,
    OWN_WORD,
    LinkState,
    PersonKind,
    Registry,
    RegistryError,
    State,
    check_hand_source,
)
from dojoguard.consent_registry.opening import open_registry
from dojoguard.environment import Environment
from dojoguard.yamlfile import FileProblems


def _registry(env: Environment) -> Registry:
    cfg = _config(env)
    try:
        return open_registry(cfg, clock=env.clock)
    except RegistryError as exc:
        raise fail(exc) from None


def _config(env: Environment):
    try:
        return env.config
    except FileProblems as exc:
        raise fail(exc) from None


@contextmanager
def _audit(env: Environment):
    """The audit log, opened before a change so a change is never made that cannot be recorded."""
    from dojoguard.audit.log import AuditLog

    try:
        log = AuditLog.open(_config(env).path("audit", "database"), clock=env.clock)
    except Exception as exc:  # noqa: BLE001 - no audit, no change
        raise click.ClickException(f"cannot open the audit log, so nothing was changed: {exc}") from None
    try:
        yield log
    finally:
        log.close()


def _record(log, event: str, fields: dict) -> None:
    try:
        log.append_event(event, fields)
    except Exception as exc:  # noqa: BLE001 - the change is made; say it is unrecorded, whatever the failure
        raise click.ClickException(f"the change was saved but could not be recorded in the audit log: {exc}. "
                                   "Record it by hand and check the audit log.") from None


_subject = subject


def _label(person) -> str:
    """How a person is named to the office: name, MIS id and registry id (never in the audit trail)."""
    return f"{person.name} (MIS {person.mis_id}, registry id {person.id})"


def _tz(env: Environment) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(_config(env)["timezone"])


def _at(stamp: str | None, tz) -> str:
    """A stored time, to the minute in the school's time zone."""
    if not stamp:
        return "time not recorded"
    try:
        return minute(datetime.fromisoformat(stamp), tz)
    except ValueError:
        return stamp


def _consent_text(consent, tz) -> str:
    """'granted (paper form, by jsmith, 4 Dec 2026 09:12; given 1 Dec 2026 00:00)'."""
    if not consent.source:
        return f"{consent.state} (nothing recorded)"
    given = f"; given {_at(consent.given_at, tz)}" if consent.given_at else ""
    return f"{consent.state} ({consent.source}, by {consent.informed_by}, {_at(consent.recorded_at, tz)}{given})"


def _biometric_text(registry, who, consent, tz) -> str:
    """Biometric matching as it stands: an objection is never shown as a bare "granted"."""
    objection = registry.objection(who.id)
    if objection is None:
        return _consent_text(consent, tz)
    said = f"not permitted: the pupil objected ({_at(objection.recorded_at, tz)}, by {objection.informed_by or '-'})"
    if consent.state is State.GRANTED:
        # Never the word "granted" beside an objection: the parents' consent is overridden.
        recorded = _consent_text(consent, tz).removeprefix("granted ")
        return f"{said}; the parents' consent {recorded} is overridden"
    return f"{said}; the parents' answer: {_consent_text(consent, tz)}"


@click.group("consent")
def consent_group() -> None:
    """Pupils, staff and consents: import from the MIS, link to ClassDojo, enrol, erase.

    \b
    Example:
      dojoguard consent import sims-consents.csv --format sims --dry-run
    """


@consent_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice([f.value for f in importer.Format]), required=True,
              help="Which MIS export this is (column layouts in docs/consent.md).")
@click.option("--dry-run", is_flag=True, help="Check the file and report what would change; save nothing.")
@click.option("--exported-on", type=click.DateTime(["%Y-%m-%d"]), default=None, metavar="YYYY-MM-DD",
              help="The day the file was exported, for rows without their own response date. Without it, "
                   "a consent recorded by hand is never replaced by the file.")
@click.option("--accept-mis", "accept_mis", multiple=True, metavar="MIS_ID",
              help="Take the file's values for this person even over a later consent recorded by hand "
                   "(repeatable; MIS id or UPN). A pupil's own objection to biometrics still stands.")
@pass_env
def consent_import(env: Environment, file: Path, fmt: str, dry_run: bool, exported_on, accept_mis) -> None:
    """Import pupils and consents from an MIS export (all or nothing).

    Every row is checked first; one bad row means nothing is imported, and
    every problem is listed with its line. Importing the same file again
    changes nothing. A consent recorded by hand after the export (a parent's
    withdrawal, a paper form, a pupil's objection) is kept and reported as a
    conflict, person by person; so is every blank consent cell.

    \b
    Example:
      dojoguard consent import arbor-consents.csv --format arbor --dry-run
      dojoguard consent import sims.csv --format sims --exported-on 2026-12-01
    """
    cfg = _config(env)
    options = {"exported_on": exported_on.date() if exported_on else None, "accept_mis": accept_mis,
               "timezone": zoneinfo.ZoneInfo(cfg["timezone"])}
    with _registry(env) as registry:
        if dry_run:
            report = _run_import(registry, file, fmt, cfg["consent"]["import"], True, env.stderr, options)
        else:
            with _audit(env) as log:
                report = _run_import(registry, file, fmt, cfg["consent"]["import"], False, env.stderr, options)
                record_import(registry, lambda event, fields: _record(log, event, fields), report, file.name,
                              len(accept_mis))
    for line in report.summary():
        click.echo(line)


def _run_import(registry, file, fmt, settings, dry_run, stream, options):
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="Importing", file=stream)
            bar.__enter__()
        bar.update(1)

    try:
        return importer.import_file(registry, file, fmt, settings, dry_run=dry_run, progress=progress, **options)
    except (FileProblems, RegistryError) as exc:
        raise fail(exc) from None
    except registry.database.integrity_errors as exc:
        raise click.ClickException(f"nothing was imported: the file conflicts with the registry ({exc}). "
                                   "Hint: a UPN already belongs to another pupil.") from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


@consent_group.command("set")
@click.argument("person")
@click.argument("purpose")
@click.argument("state", type=click.Choice([s.value for s in State]))
@click.option("--source", required=True, help='Where the decision came from ("paper form", "email"; "pupil" '
                                              "for a pupil's own word on biometrics).")
@click.option("--by", "informed_by", required=True, help="Who recorded or informed it (staff id or name).")
@pass_env
def consent_set(env: Environment, person: str, purpose: str, state: str, source: str, informed_by: str) -> None:
    """Record one consent for a pupil or member of staff (by registry id, MIS id or UPN).

    Anything but "granted" means not permitted. With --source pupil and the
    purpose biometric_matching, "refused" records the pupil's own objection,
    which overrides any parental consent; "granted" lifts it. Withdrawing
    biometric consent deletes the person's face templates at once.

    \b
    Example:
      dojoguard consent set A123456789012 class_story granted --source "paper form" --by jsmith
    """
    with _registry(env) as registry, _audit(env) as log:
        try:
            who = registry.find(person)
            registry.check_purpose(purpose)
            own_word = purpose == BIOMETRIC and source == OWN_WORD
            before = _said(registry, who, purpose, own_word)
            previous = ("objection" if registry.objection(who.id) else "no objection") if own_word \
                else str(registry.consents(who.id)[purpose].state)
            templates = registry.template_count(who.id)
            changed = registry.set_consent(who.id, purpose, state, source=source, informed_by=informed_by)
        except RegistryError as exc:
            raise fail(exc) from None
        after = _said(registry, who, purpose, own_word)
        if changed:
            was = "objection" if own_word and state != "granted" else None
            held = registry.consents(who.id)[purpose]
            _record(log, "consent.changed", {**_subject(who), "purpose": purpose,
                                             "from": previous,
                                             "to": was or state, "source": source})
            removed = templates - registry.template_count(who.id)
            click.echo(f"{_label(who)}: {purpose} was {before}; now {after} (source {source}, by {informed_by})")
            if own_word:
                click.echo(f"  biometric matching is now "
                           f"{'permitted' if registry.has_biometric_consent(who.id) else 'not permitted'} "
                           f"(the parents' answer: {held.state})")
            if removed:
                click.echo(f"  deleted {removed} face template(s)")
        else:
            click.echo(f"{_label(who)}: {purpose} was already {after}; nothing changed")


def _said(registry, who, purpose: str, own_word: bool) -> str:
    """The state a command changes, in words: for a pupil's own word, whether they object."""
    if own_word:
        return "objected to by the pupil" if registry.objection(who.id) else "not objected to by the pupil"
    return str(registry.consents(who.id)[purpose].state)


@consent_group.command("withdraw-biometric")
@click.argument("person")
@click.option("--source", required=True, help='Who withdrew it: "parent", "pupil" (their own objection), ...')
@click.option("--by", "informed_by", required=True, help="Who recorded it (staff id or name).")
@pass_env
def consent_withdraw_biometric(env: Environment, person: str, source: str, informed_by: str) -> None:
    """Withdraw biometric consent (or record the pupil's objection) and delete face templates now.

    With --source pupil it records the pupil's own objection, which outranks
    any parental consent. Otherwise it records a refusal from that source,
    even where nothing was granted, so that no older MIS export can grant it
    again (see `consent import`).

    \b
    Example:
      dojoguard consent withdraw-biometric 42 --source pupil --by jsmith
      dojoguard consent withdraw-biometric A123456789012 --source parent --by office
    """
    with _registry(env) as registry, _audit(env) as log:
        try:
            check_hand_source(source)
            who = registry.find(person)
            before = registry.consents(who.id)[BIOMETRIC]
            objected = registry.objection(who.id) is not None
            templates = registry.template_count(who.id)
            with registry.transaction():
                changed = registry.record_consent(who.id, BIOMETRIC, State.REFUSED, source=source,
                                                  informed_by=informed_by, restate=True)
            registry.delete_templates(who.id)  # already gone with the consent; a belt for any left over
            removed = templates - registry.template_count(who.id)
        except RegistryError as exc:
            raise fail(exc) from None
        if changed:
            _record(log, "consent.changed", {**_subject(who), "purpose": BIOMETRIC,
                                             "from": "objection" if objected else str(before.state),
                                             "to": "objection" if source == OWN_WORD else "refused",
                                             "source": source, "templates_removed": removed})
    click.echo(f"{_label(who)}: {_withdrawal_text(source, before, objected, changed)}")
    click.echo(f"  biometric matching is not permitted; {removed} face template(s) deleted")


def _withdrawal_text(source: str, before, objected: bool, changed: bool) -> str:
    """What a withdrawal did, in words that never claim a grant that was not there."""
    if source == OWN_WORD:
        if objected:
            return "the pupil's objection to biometric matching was already recorded; nothing changed"
        return f"the pupil's own objection to biometric matching recorded (the parents' answer: {before.state})"
    if not changed:
        return f"biometric matching was already refused ({before.source}); nothing changed"
    if before.state is State.GRANTED:
        return f"biometric matching withdrawn: was granted, now refused (source {source})"
    if before.state is State.REFUSED:
        return f"biometric matching was already refused ({before.source}); the refusal is now recorded from {source}"
    return (f"biometric matching was not granted (it was {before.state}); recorded as refused (source {source}), "
            "so no older MIS export can grant it")


@consent_group.command("show")
@click.argument("person")
@click.option("--history", is_flag=True, help="Also list every recorded change.")
@pass_env
def consent_show(env: Environment, person: str, history: bool) -> None:
    """Show one person's record, consents, ClassDojo links and template count.

    \b
    Example:
      dojoguard consent show A123456789012 --history
    """
    with _registry(env) as registry:
        try:
            who = registry.find(person)
        except RegistryError as exc:
            raise fail(exc) from None
        tz = _tz(env)
        click.echo(f"{who.name} ({who.kind}; registry id {who.id})")
        click.echo(f"  MIS id {who.mis_id}, UPN {who.upn or '-'}, year {who.year or '-'}, "
                   f"registration group {who.reg_group or '-'}")
        for consent in registry.consents(who.id).values():
            text = (_biometric_text(registry, who, consent, tz) if consent.purpose == BIOMETRIC
                    else _consent_text(consent, tz))
            click.echo(f"  {consent.purpose:<20} {text}")
        links = [p for p in registry.dojo_pupils() if p.person_id == who.id]
        for link in links:
            click.echo(f"  ClassDojo pupil {link.dojo_pupil_id} ({link.link_state})")
        click.echo(f"  face templates: {registry.template_count(who.id)}")
        if history:
            for h in registry.history(who.id):
                what = ("objection" if h.state is not State.GRANTED else "objection lifted") \
                    if h.purpose == BIOMETRIC and h.source == OWN_WORD else str(h.state)
                given = f", given {_at(h.given_at, tz)}" if h.given_at else ""
                click.echo(f"  {_at(h.recorded_at, tz)}  {h.purpose} -> {what} ({h.source}, by {h.informed_by}{given})")


@consent_group.command("links")
@click.option("--confirm", "confirm", multiple=True, metavar="DOJO_PUPIL_ID",
              help="Accept the proposed link of this ClassDojo pupil (repeatable).")
@click.option("--set", "set_", multiple=True, metavar="DOJO_PUPIL_ID=PERSON",
              help="Link a ClassDojo pupil to a registry pupil (registry id, MIS id or UPN); "
                   "an empty PERSON unlinks. Repeatable.")
@click.option("--class", "class_", multiple=True, metavar="CLASS_ID=REG_GROUP",
              help="Link a ClassDojo class to a registration group. Repeatable.")
@click.option("--all", "show_all", is_flag=True, help="List every link, not only those needing a person.")
@pass_env
def consent_links(env: Environment, confirm, set_, class_, show_all: bool) -> None:
    """List ClassDojo pupils and classes whose link to the MIS needs confirming, or fix links.

    Links are proposed automatically from the rosters the proxy sees. Doubtful
    and missing ones are listed here; until they are confirmed, a photo for
    their class cannot be allowed on the "whole class is permitted" rule.

    \b
    Example:
      dojoguard consent links --confirm 5f1c2a --set 5f1c2b=A123456789012 --class 61aa=3O
    """
    with _registry(env) as registry:
        try:
            for item in class_:
                class_id, _, group = item.partition("=")
                registry.set_class_link(class_id, group or None)
                click.echo(f"class {class_id} -> {group or 'no registration group'}")
            for dojo_id in confirm:
                link = registry.confirm_link(dojo_id)
                click.echo(f"confirmed {dojo_id} ({link.first_name} {link.last_name} on ClassDojo) -> "
                           f"{_label(registry.person(link.person_id))}")
            for item in set_:
                dojo_id, _, ref = item.partition("=")
                link = registry.set_link(dojo_id, ref or None)
                target = _label(registry.person(link.person_id)) if ref else "nobody"
                click.echo(f"set {dojo_id} ({link.first_name} {link.last_name} on ClassDojo) -> {target}")
        except RegistryError as exc:
            raise fail(exc) from None
        if confirm or set_ or class_:
            return
        states = None if show_all else (LinkState.NONE, LinkState.DOUBTFUL)
        pupils = registry.dojo_pupils(states=states)
        for p in pupils:
            target = ""
            if p.person_id is not None:
                person = registry.person(p.person_id)
                target = f" -> {_label(person)}, registration group {person.reg_group or '-'}"
            score = f" score {p.link_score:.2f}" if p.link_score is not None else ""
            click.echo(f"{p.link_state:<9} {p.dojo_pupil_id} {p.first_name} {p.last_name}{target}{score} "
                       f"[classes {', '.join(p.class_ids)}]")
        for class_id, name, group, state in registry.classes():
            if show_all or state in (LinkState.NONE, LinkState.DOUBTFUL):
                click.echo(f"class {state:<9} {class_id} {name!r} -> {group or 'no registration group'}")
        if not pupils:
            click.echo(_nothing_to_list(registry, show_all))


def _nothing_to_list(registry, show_all: bool) -> str:
    """Why `links` lists nobody: never "every pupil is linked" when there is nobody to link."""
    seen = len(registry.dojo_pupils())
    if seen and not show_all:
        return f"every ClassDojo pupil seen so far ({seen}) is linked to a registry pupil"
    advice = ("ClassDojo pupils are learned from the class rosters the proxy sees when teachers open their "
              "classes through it.")
    if not registry.people(kind=PersonKind.PUPIL):
        advice += " The registry has no pupils either: import them first with `dojoguard consent import`."
    return f"no ClassDojo pupils seen yet, so nothing is linked. {advice}"


@consent_group.command("enrol")
@click.argument("photos_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@pass_env
def consent_enrol(env: Environment, photos_dir: Path) -> None:
    """Build face templates from a folder of photos, for eligible people only.

    Name each photo after its person (registry id, MIS id or UPN): 42.jpg, or
    a folder 42/ with several photos. Only people with photo permission and
    written biometric consent, and no objection, are enrolled; problems with
    one photo are listed and the rest carry on.

    \b
    Example:
      dojoguard consent enrol /srv/enrolment-photos
    """
    cfg = _config(env)
    settings = settings_from(cfg["images"])
    with _registry(env) as registry:
        photos = enrolment.photos_in(photos_dir)
        results = []
        with click.progressbar(length=len(photos), label="Enrolling", file=env.stderr) as bar:
            for result in enrolment.enrol(registry, photos_dir, settings):
                results.append(result)
                bar.update(1)
    enrolled = sum(r.outcome in (enrolment.Outcome.ENROLLED, enrolment.Outcome.ALREADY) for r in results)
    for r in results:
        if r.outcome not in (enrolment.Outcome.ENROLLED, enrolment.Outcome.ALREADY):
            click.echo(f"{r.photo.relative_to(photos_dir)}: {r.outcome}")
    click.echo(f"{enrolled} of {len(results)} photo(s) enrolled")


@consent_group.command("erase")
@click.argument("person")
@click.option("--by", "requested_by", required=True, help="Who asked for the erasure (staff id).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_env
def consent_erase(env: Environment, person: str, requested_by: str, yes: bool) -> None:
    """Erase a person: record, consents, history, ClassDojo links and face templates.

    The audit log records that an erasure happened (registry id, number of
    templates removed, who asked), never what was erased.

    \b
    Example:
      dojoguard consent erase A123456789012 --by dpo --yes
    """
    with _registry(env) as registry:
        try:
            who = registry.find(person)
        except RegistryError as exc:
            raise fail(exc) from None
        if not yes:
            click.confirm(f"Erase {_label(who)} and everything held about them: record, consents, history, "
                          "ClassDojo links and face templates?", abort=True)
        with _audit(env) as log:
            templates = registry.template_count(who.id)
            registry.erase(who.id)
            fields = {"pupil": str(who.id)} if who.kind is PersonKind.PUPIL else {"pupil": f"staff-{who.id}"}
            _record(log, "pupil.erased", {**fields, "templates_removed": templates, "requested_by": requested_by})
    click.echo(f"{_label(who)} erased: record, consents, history, ClassDojo links and {templates} face template(s) "
               f"removed; the registry keeps only that registry id {who.id} was erased, and when")


# -- image check --------------------------------------------------------------

def _bring_copy_up_to_date(cfg, path: Path) -> bool:
    """With the register on the trust's server, copy it into this machine's copy first, as the proxy's copier
    does, so the check judges as the proxy would now; returns whether the file is such a copy.

    If the server cannot be reached the copy is left as it is, and the check
    refuses it once it is older than consent.max_staleness_s.
    """
    from dojoguard.consent_registry.replica import Replica
    from dojoguard.storage.location import Storage

    storage = Storage.from_config(cfg)
    if not storage.central:
        return False
    copier = Replica(storage, path, max_staleness_s=float(cfg["consent"]["max_staleness_s"]))
    try:
        copier.turn()
    except Exception as exc:  # noqa: BLE001 - the check below fails closed on a stale copy and says so
        click.echo(f"warning: the consent register on the trust's server could not be copied: {exc}", err=True)
    finally:
        copier.close()
    return True


def _verdict(env: Environment, check: ImageCheck, channel: str, class_id: str | None, data: bytes,
             device: str | None):
    """The decision the current policy gives a post carrying this picture, or (None, why not)."""
    try:
        from dojoguard.rules.action import Action, Attachment, Channel, Kind
        from dojoguard.rules.policy import load_policy
    except ImportError as exc:
        return None, f"the rules engine is not available ({exc})"
    cfg = _config(env)
    try:
        policy = load_policy(cfg["rules"]["policy"], base=cfg.path("rules", "base"),
                             calendar=cfg.path("rules", "calendar"),
                             device_groups=cfg["proxy"]["device_groups"], timezone=cfg["timezone"])
    except FileProblems as exc:
        return None, f"the policy does not load ({len(exc.problems)} problem(s); run `dojoguard rules check`)"
    kind = Kind.STORY_POST if channel in ("class_story", "school_story") else Kind.ATTACHMENT_UPLOAD
    attachment = Attachment(kind=check.kind, content_type=None, size=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), findings=check.findings)
    action = Action(kind=kind, channel=Channel(channel), at=env.clock.now(), class_id=class_id,
                    device_address=device, attachments=(attachment,))
    return policy.evaluate(action), None


@click.group("image")
def image_group() -> None:
    """Check pictures the way the proxy does.

    \b
    Example:
      dojoguard image check trip.jpg --channel class_story --class 5f1c
    """


@image_group.command("check")
@click.argument("photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--channel", default="class_story", show_default=True,
              type=click.Choice(["class_story", "school_story", "portfolio", "message", "comment"]),
              help="Where the picture would be posted.")
@click.option("--class", "class_id", default=None, help="ClassDojo class id (the audience for Class Story).")
@click.option("--device", default=None, metavar="ADDRESS",
              help="The posting device's address, for rules about devices (none: an unknown device).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with every face box.")
@pass_env
def image_check(env: Environment, photo: Path, channel: str, class_id: str | None, device: str | None,
                as_json: bool) -> None:
    """Print what the image check finds in a picture and the verdict the current policy would give.

    Face boxes are [top, right, bottom, left] in the original picture's
    pixels, after EXIF orientation.

    \b
    Example:
      dojoguard image check trip.jpg --channel class_story --class 5f1c --json
    """
    cfg = _config(env)
    data = photo.read_bytes()
    registry_path = cfg.path("consent", "database")
    copy = _bring_copy_up_to_date(cfg, registry_path)
    checker = ImageChecker(cfg["images"], registry_path if registry_path.exists() else None,
                           cfg["consent"]["channel_purposes"], workers=1, copy=copy)
    try:
        check = asyncio.run(checker.check(data, channel=channel, class_id=class_id, content_type=None))
    finally:
        checker.close()
    decision, why_not = _verdict(env, check, channel, class_id, data, device)
    f = check.findings
    if as_json:
        doc = {"file": photo.name, "kind": str(check.kind), "format": check.format, "layer": check.layer,
               "findings": {"faces_found": f.faces_found, "faces_permitted": f.faces_permitted,
                            "faces_not_permitted": f.faces_not_permitted,
                            "faces_unidentified": f.faces_unidentified, "gps_present": f.gps_present,
                            "frames_checked": f.frames_checked,
                            "unreadable": f.unreadable, "error": f.error},
               "boxes": [list(b) for b in check.boxes],
               "boxes_not_permitted": [list(b) for b in f.boxes_not_permitted],
               "verdict": str(decision.verdict) if decision else None,
               "decision": decision.to_dict() if decision else None,
               "verdict_unavailable": why_not}
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(f"{photo.name}: {check.kind}, {check.format or 'unknown format'}")
        click.echo(f"  faces found {f.faces_found}, permitted {f.faces_permitted}, "
                   f"not permitted {f.faces_not_permitted}, unidentified {f.faces_unidentified}")
        if str(check.kind) == "video":
            click.echo(f"  frames checked {f.frames_checked} (faces are counted in every frame)")
        click.echo(f"  GPS location {'present' if f.gps_present else 'absent'}; decided by: {check.layer}")
        if f.unreadable or f.error:
            click.echo(f"  check not completed{' (unreadable)' if f.unreadable else ''}: {f.error}")
        if decision:
            click.echo(f"verdict: {decision.verdict}" + (f" - {decision.notice}" if decision.notice else ""))
            for m in decision.matches:
                click.echo(f"  rule {m.rule_id}: {m.verdict}")
        else:
            click.echo(f"verdict: unavailable: {why_not}")
    if decision is None:
        raise SystemExit(1)


COMMANDS = [consent_group, image_group]
