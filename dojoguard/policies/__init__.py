"""The policies dojoguard ships: data, not code (one folder per school policy, laid out as docs/rules.md says)."""
