"""The system events the audit trail records, each with the fields it carries.

Every event name written to the log must be listed here (``check`` refuses
others), and every one is documented in docs/audit.md. The fields listed are
the ones callers are expected to give; extra non-content fields are kept, so a
caller can add context without a change here, but content never passes
(see ``privacy``). Pupil ids given in ``pupil``/``pupils`` fields are replaced
by pseudonyms before the record is sealed (see ``pseudonyms``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dojoguard.audit.privacy import refuse_content

DECISION = "decision"


@dataclass(frozen=True)
class Event:
    name: str
    summary: str
    fields: dict[str, str]
    # Shown in the report's "system health" section.
    is_health: bool = False


_EVENTS = (
    Event("audit.created", "The audit log was created; the first record of every log.",
          {"log_id": "random id of this log, repeated in every checkpoint", "schema": "storage version"}),
    Event("proxy.started", "The proxy started with this policy.",
          {"policy_revision": "hash of the policy in force", "mode": "proxy mode"}),
    Event("proxy.stopped", "The proxy stopped cleanly.",
          {"reason": "why, when known", "signal": "the signal that stopped it (SIGTERM, SIGINT)",
           "drained": "ClassDojo writes in flight at the stop that ran to their end (answered, or failed on "
                      "their own) within proxy.drain_s",
           "cut": "writes still unanswered after proxy.drain_s, whose connections were closed",
           "refused": "requests that arrived during the stop and were answered 503"}),
    Event("proxy.recovered", "The proxy started after a run that did not stop cleanly (killed, crashed or "
          "lost power); a signed checkpoint over that run's records follows at once.",
          {"last_seq": "the last record in the log at this start", "last_id": "its id",
           "last_type": "its type", "last_at": "its time",
           "started_seq": "the unclean run's proxy.started", "started_at": "when that run started",
           "records": "records from that run's start to the last one",
           "uncovered": "records after the newest checkpoint before this start"}, is_health=True),
    Event("policy.reloaded", "A changed rule, exemption or catalogue file was loaded and is now in force.",
          {"policy_revision": "hash of the new policy", "previous_revision": "hash of the policy it replaced",
           "source": "file or folder it came from", "rules": "number of rules"}),
    Event("policy.rejected", "An edited rule file was invalid; the last good policy stayed in force.",
          {"source": "file or folder", "problems": "number of problems", "codes": "their error codes",
           "places": "file:line:column and code of the first twenty problems",
           "policy_revision": "hash of the policy still in force"}, is_health=True),
    Event("exemption.granted", "The headteacher granted an exemption.",
          {"exemption": "exemption id", "rules": "rule ids it switches off", "teacher": "teacher id (if scoped)",
           "class": "class id (if scoped)", "starts": "start time", "ends": "end time",
           "granted_by": "who granted it (staff id)", "reason": "the recorded reason"}),
    Event("exemption.used", "An exemption switched a rule off for one action.",
          {"exemption": "exemption id", "decision_id": "the decision it applied to", "rules": "rule ids"}),
    Event("exemption.revoked", "An exemption was withdrawn before it ended.",
          {"exemption": "exemption id", "revoked_by": "staff id"}),
    Event("exemption.expired", "An exemption reached its end time.", {"exemption": "exemption id"}),
    Event("exemption.edited_by_hand", "The exemptions file holds a change no `exempt` command made.",
          {"exemption": "exemption id", "change": "added, changed, removed, revoked, unrevoked or restored",
           "changed": "the fields that differ from the recorded grant", "now": "the exemption as the file has it",
           "recorded": "the exemption as granted and revoked by the commands",
           "version": "fingerprint of the file's version",
           "honoured": "whether the proxy applies the file's version", "source": "the file"}, is_health=True),
    Event("names.imported", "Teachers' and classes' display names were imported from the school's list "
          "(the names themselves are kept in the proxy's state database, never here).",
          {"source": "the file's name", "teachers": "number of teachers named", "classes": "number of classes named"}),
    Event("names.forgotten", "The display name held for a ClassDojo id was removed.", {"id": "teacher or class id"}),
    Event("console.login", "Someone logged in to the leaders' console.",
          {"account": "console account name", "role": "its role", "address": "the connection's source address"}),
    Event("console.login_refused", "A login to an existing console account was refused (wrong password, "
          "locked or disabled; attempts at names that do not exist are not recorded).",
          {"account": "console account name", "reason": "why", "address": "the connection's source address"}),
    Event("console.locked", "A console account was locked after too many wrong passwords in a row.",
          {"account": "console account name", "until": "when the lock ends", "reason": "why",
           "address": "the connection's source address"}, is_health=True),
    Event("console.logout", "Someone logged out of the console.", {"account": "console account name"}),
    Event("console.account_added", "A console account was made (`dojoguard console user add`).",
          {"account": "console account name", "role": "its role"}),
    Event("console.account_disabled", "A console account was disabled; its logins ended.",
          {"account": "console account name"}),
    Event("console.password_set", "A console account's password was set again; its logins ended.",
          {"account": "console account name"}),
    Event("console.account_unlocked", "A locked console account was unlocked by IT.",
          {"account": "console account name"}),
    Event("console.account_scoped", "Which schools of the trust's central store a console account sees was set "
          "(`dojoguard console user scope`); its logins ended.",
          {"account": "console account name", "trust_scope": "a school's id, * for every school, or none"}),
    Event("report.downloaded", "A report was downloaded from the console.",
          {"from": "first day", "to": "last day", "format": "html, csv or json", "account": "console account name",
           "via": "console", "trust": "for the trust's report: the school shown, or * for every school"}),
    Event("consent.changed", "A pupil's consent for a purpose changed.",
          {"pupil": "pupil (pseudonymised)", "purpose": "consent purpose", "from": "previous state",
           "to": "new state", "source": "mis import, or who changed it"}),
    Event("consent.imported", "Consent data was imported from the MIS.",
          {"source": "import file", "pupils": "number of pupils", "changed": "number of changes",
           "conflicts": "consents the file would change but a later act recorded by hand kept",
           "accepted": "number of people whose file values were taken over later hand-recorded ones"}),
    Event("pupil.erased", "A person was erased from the registry; a pupil's pseudonym key is destroyed.",
          {"pupil": "pupil (pseudonymised, unlinkable once erased)",
           "staff": "staff id, when a member of staff was erased instead", "templates_removed": "face templates deleted",
           "requested_by": "staff id"}),
    Event("write.unclassified", "A write to ClassDojo matched no catalogue entry.",
          {"method": "HTTP method", "host": "host", "path": "path with ids replaced",
           "verdict": "what happened to it", "decision_id": "its decision, if any"}, is_health=True),
    Event("connection.uninspectable", "A ClassDojo connection could not be inspected (TLS not intercepted).",
          {"host": "host", "device": "client address", "action": "refused or passed", "error": "TLS error class"},
          is_health=True),
    Event("connection.refused", "The proxy refused a connection or request it must not serve (recorded at most "
          "once per device and reason every ten minutes).",
          {"device": "client address",
           "reason": "outside-client-networks, too-many-connections, port, loopback, own-address, header-too-large, header-timeout, "
                     "websocket-message-too-large, ...",
           "host": "destination asked for", "port": "destination port",
           "repeats": "refusals of this device and reason not recorded since the last record"}, is_health=True),
    Event("audit.write_failed", "Recorded after the log came back: earlier writes failed and were blocked.",
          {"failures": "number of failed writes", "since": "first failure", "error": "error class"},
          is_health=True),
    Event("retention.purged", "Records older than the retention period were removed (signed).",
          {"before": "cut-off time", "records": "records removed", "first_seq": "first removed",
           "last_seq": "last removed", "last_hash": "hash of the last removed record (the chain's anchor)",
           "last_at": "when the last removed record was written", "retention_days": "the retention in force",
           "purged_at": "when the purge ran", "signature": "Ed25519 signature over all of these and the log id",
           "key_fingerprint": "signing key fingerprint"}),
    Event("checkpoint.written", "A signed checkpoint of the chain was exported.",
          {"seq": "last record covered", "hash": "its hash", "file": "exported file name",
           "key_fingerprint": "signing key fingerprint",
           "published": "copies published to audit.checkpoint_publish_dir (0 or 1)"}),
    Event("checkpoint.unpublished", "A signed checkpoint could not be published off this server (it is kept "
          "locally and published again later).",
          {"seq": "last record covered", "file": "checkpoint file name", "error": "why"}, is_health=True),
    Event("hold.created", "An action was held for a leader to review.",
          {"hold": "hold id", "decision_id": "decision", "rules": "rule ids"}),
    Event("hold.joined", "The teacher sent an action again while it was held (the same request, or the same "
          "post with the same text and attachments): this decision joined the held item, which is sent at most once.",
          {"hold": "hold id of the item already waiting", "decision_id": "this decision"}),
    Event("hold.approved", "A leader approved a held action; the proxy sends it next.",
          {"hold": "hold id", "decision_id": "decision", "by": "staff id"}),
    Event("hold.rejected", "A leader rejected a held or queued action; it was discarded, never sent.",
          {"hold": "hold id", "kind": "hold or defer", "decision_id": "decision", "by": "staff id",
           "reason": "why (shown to the teacher)", "state": "the item's state when it was rejected"}),
    Event("hold.closed", "A person closed an uncertain, failed or expired item without sending it.",
          {"hold": "hold or deferred item id", "kind": "hold or defer", "decision_id": "decision",
           "by": "staff id", "reason": "what they found", "state": "the item's state when it was closed"}),
    Event("hold.expired", "A held action waited longer than holds.max_age_days (for a leader, or to be sent); it "
          "is kept, listed by `held list --failed`, and the teacher is told.",
          {"hold": "hold id", "decision_id": "decision", "waiting_since": "when its age started counting"},
          is_health=True),
    Event("hold.uncertain", "A send of an approved held action was cut short (the proxy stopped, or no answer "
          "came): it may have reached ClassDojo, so it is not sent again until a person decides.",
          {"hold": "hold id", "decision_id": "decision", "sent_at": "when the send began", "error": "what is known"},
          is_health=True),
    Event("hold.waiting_for_login", "ClassDojo refused an approved held action because the teacher's login had "
          "ended; it is sent when the teacher next uses ClassDojo through the proxy.",
          {"hold": "hold id", "decision_id": "decision", "status": "HTTP status", "error": "why"}),
    Event("hold.resent", "A person checked that an uncertain item had not arrived and asked for it to be sent again.",
          {"hold": "hold or deferred item id", "kind": "hold or defer", "decision_id": "decision",
           "by": "staff id"}),
    Event("hold.released", "An approved held action was sent on to ClassDojo.",
          {"hold": "hold id", "decision_id": "decision", "attempts": "attempts needed", "status": "HTTP status"}),
    Event("hold.retrying", "Sending an approved held action failed; it will be tried again.",
          {"hold": "hold id", "decision_id": "decision", "attempts": "attempts so far", "error": "why"}),
    Event("hold.failed", "An approved held action could not be sent after every attempt.",
          {"hold": "hold id", "decision_id": "decision", "attempts": "attempts made", "error": "why"},
          is_health=True),
    Event("hold.retried", "A leader asked for a failed or expired item to be tried again.",
          {"hold": "hold or deferred item id", "kind": "hold or defer", "decision_id": "decision",
           "by": "staff id"}),
    Event("hold.tampered", "A held or deferred item was changed outside the commands; it was set aside, never sent.",
          {"hold": "held or deferred item id", "found": "what did not match (seal, approval record, already done)",
           "kind": "hold or defer, as found", "state": "state as found", "decision_id": "decision, as found",
           "teacher_id": "teacher, as found", "class_id": "class, as found",
           "release_at": "release time, as found", "approval": "the approval record it names, as found",
           "noticed_by": "the command that found it (held approve, held retry), when not the proxy"},
          is_health=True),
    Event("defer.created", "An action was queued, to be sent when the deferring rule's window next opens.",
          {"hold": "deferred item id", "decision_id": "decision", "rules": "rule ids",
           "release_at": "when it is due to be sent"}),
    Event("defer.joined", "The teacher sent an action again while it was queued: this decision joined the queued "
          "item, which is sent once.",
          {"hold": "deferred item id of the item already waiting", "decision_id": "this decision"}),
    Event("defer.retrying", "Sending a deferred action failed; it will be tried again.",
          {"hold": "deferred item id", "decision_id": "decision", "attempts": "attempts so far", "error": "why"}),
    Event("defer.released", "A deferred action was sent when its window opened.",
          {"hold": "deferred item id", "decision_id": "decision", "attempts": "attempts needed"}),
    Event("defer.failed", "A deferred action could not be sent after every attempt.",
          {"hold": "deferred item id", "decision_id": "decision", "attempts": "attempts made",
           "error": "error class"}, is_health=True),
    Event("defer.expired", "A deferred action was not sent within holds.max_age_days of its release time; it is "
          "kept, listed by `held list --failed`, and the teacher is told.",
          {"hold": "deferred item id", "decision_id": "decision", "waiting_since": "its release time"},
          is_health=True),
    Event("defer.uncertain", "A send of a deferred action was cut short (the proxy stopped, or no answer came): it "
          "may have reached ClassDojo, so it is not sent again until a person decides.",
          {"hold": "deferred item id", "decision_id": "decision", "sent_at": "when the send began",
           "error": "what is known"}, is_health=True),
    Event("defer.waiting_for_login", "ClassDojo refused a deferred action because the teacher's login had ended; it "
          "is sent when the teacher next uses ClassDojo through the proxy.",
          {"hold": "deferred item id", "decision_id": "decision", "status": "HTTP status", "error": "why"}),
    Event("teacher.told", "A teacher was told the outcome of a held or queued item, on their next ClassDojo write.",
          {"hold": "held or deferred item id", "teacher_id": "teacher", "outcome": "released, rejected, failed, "
           "expired or uncertain", "decision_id": "the decision of the write that carried the notice"}),
    Event("report.sent", "A scheduled report was written and/or emailed.",
          {"period_from": "start", "period_to": "end", "file": "file name", "recipients": "number emailed"}),
    Event("job.failed", "A scheduled job could not finish (it is retried).",
          {"job": "job name", "error": "error class and message"}, is_health=True),
    Event("alert.sent", "An alert email (or the day's digest) was handed to the mail server for a recipient "
          "group; it names decisions by reference, never their content.",
          {"batch": "email id (its Message-ID)", "group": "recipient group (alerts.recipients)",
           "cadence": "now or daily", "alerts": "number of alerts in it",
           "references": "the records it alerted about (up to 50)", "rules": "their rules",
           "attempts": "tries it took", "delay_s": "seconds from the first alert's record to sending"}),
    Event("alert.failed", "An alert email could not be sent; it is retried with backoff (recorded at the first "
          "failure and then hourly while it keeps failing).",
          {"batch": "email id", "group": "recipient group", "cadence": "now or daily",
           "alerts": "number of alerts waiting in it", "references": "the records it alerts about (up to 50)",
           "attempts": "tries so far", "error": "why",
           "next_try": "when it is tried next"}, is_health=True),
    Event("inbound.language", "A parent's message in a thread a teacher opened held inappropriate language (only "
          "with inbound.language_alerts on); the rule's alert recipients are told. No text and no name is kept.",
          {"thread": "message thread id", "message_at": "when the parent wrote (if ClassDojo gave it)",
           "teacher": "teacher who opened the thread (if known)", "class": "class id (if known)",
           "rule": "the language rule", "rules": "every language rule it matched",
           "alerts": "who is told: [{rule, to: [recipient groups], when}]"}),
    Event("check.found", "A scheduled check of the policy (`checks:`) found a class or teacher whose count meets "
          "its comparison (e.g. fewer than two videos this week); its alert recipients are told.",
          {"check": "the check's id", "per": "class or teacher", "class": "class id (per class)",
           "teacher": "teacher id (per teacher)", "count": "what was counted", "limit": "the number compared with",
           "comparison": "at_least, more_than, fewer_than or at_most", "within": "the span counted",
           "alerts": "who is told: [{rule, to: [recipient groups], when}]"}),
    Event("check.ran", "A scheduled check ran: how many classes or teachers it looked at and found.",
          {"check": "the check's id", "looked_at": "classes or teachers looked at", "found": "how many it found"}),
    Event("trust.unreachable", "The trust's central store could not be reached: decisions go on being judged and "
          "recorded here, and are shipped when it is back (recorded once per outage).",
          {"node": "this proxy's name in the trust", "error": "why",
           "shipped_up_to": "the last record the central store holds"}, is_health=True),
    Event("trust.refused", "The trust's central store refused this proxy's records (its log, key or history differs "
          "from what it shipped before): shipping is stopped until a person acts (docs/trust.md).",
          {"node": "this proxy's name in the trust", "error": "why",
           "shipped_up_to": "the last record the central store holds"}, is_health=True),
    Event("trust.resumed", "Shipping to the trust's central store works again after an outage or a refusal.",
          {"node": "this proxy's name in the trust", "after_s": "seconds since it first failed",
           "shipped_up_to": "the last record the central store held when it resumed"}),
    Event("consent.copy_failing", "This proxy could not confirm its copy of the school's consent register with the "
          "trust's server (recorded once per outage): photos that need the register are blocked once the copy is "
          "older than consent.max_staleness_s.",
          {"error": "why", "version": "the register's version the copy holds",
           "max_staleness_s": "how old the copy may grow before photos are blocked"}, is_health=True),
    Event("consent.copy_resumed", "This proxy's copy of the school's consent register is confirmed with the trust's "
          "server again after an outage.",
          {"after_s": "seconds since it first failed", "version": "the register's version the copy holds"}),
    Event("exemptions.suspended", "The school's exemptions are kept on the trust's server, which has not answered "
          "for longer than consent.max_staleness_s: no exemption applies until it does (a revocation may be "
          "waiting there).", {"error": "why", "max_staleness_s": "the bound"}, is_health=True),
    Event("exemptions.resumed", "The trust's server answers again: the school's exemptions apply again, as the "
          "file copied from it says.", {}),
    Event("policy.review_due", "The policy's annual review date has passed.",
          {"reviewed": "date of the last review", "due": "date the review was due"}, is_health=True),
)

EVENTS: dict[str, Event] = {e.name: e for e in _EVENTS}
HEALTH_EVENTS = frozenset(e.name for e in _EVENTS if e.is_health)


class UnknownEvent(ValueError):
    """An event name that is not in the catalogue."""


def check(name: str, fields: dict) -> None:
    """Refuse unknown event names and any content-bearing field."""
    if name not in EVENTS:
        raise UnknownEvent(f"unknown audit event {name!r}; known events: {', '.join(sorted(EVENTS))}")
    if not isinstance(fields, dict):
        raise TypeError("event fields must be a dict")
    refuse_content(fields)
