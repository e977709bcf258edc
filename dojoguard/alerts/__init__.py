"""Alerts: telling the headteacher, the DSL or leaders by email when a rule steps in.

A rule names who is told (``alert: [dsl]``); the decision's audit record
carries it (``alerts``). The proxy's alert sender, on a thread of its own,
reads new records from the audit log, keeps what it owes in a small outbox
database, batches what happened in one minute (or one day, for the digest)
into one email per recipient group, and retries with backoff until the mail
server takes it. Nothing here holds message text, photos or pupils' names.
"""
