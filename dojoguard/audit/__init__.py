"""The audit room: the append-only, hash-chained decision log and what is built on it.

- ``log``: ``AuditLog`` (open, append_decision, append_event) and ``AuditWriteError``
- ``thread``, ``durability``, ``flusher``: the proxy's writes off its event loop, and their flushes to disk
- ``entry``: what a decision record keeps (and what it never keeps)
- ``events``: the catalogue of system events
- ``privacy``, ``pseudonyms``: content refused; pupils as erasable pseudonyms
- ``record``, ``chain``, ``checkpoint``, ``verification``: sealing and proving
- ``retention``: the purge that keeps the chain verifiable
- ``report``, ``render``, ``charts``: the leaders' reports
- ``jobs``, ``mail``: scheduled reports, checkpoints, purges and reminders
"""
