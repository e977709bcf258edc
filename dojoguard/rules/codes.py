"""The stable error codes of rule, list, calendar, exemption and rule-test files.

Codes are part of the interface: people search for them in docs/errors.md and
scripts match on them, so a code is never renamed or reused.
"""

from __future__ import annotations

import enum


class Code(enum.StrEnum):
    # Rule files (structure, checked against rules/schema.json).
    RULES_UNKNOWN_KEY = "DG-RULES-UNKNOWN-KEY"
    RULES_MISSING_KEY = "DG-RULES-MISSING-KEY"
    RULES_TYPE = "DG-RULES-TYPE"
    RULES_VALUE = "DG-RULES-VALUE"
    # Rule files (meaning).
    RULES_EMPTY = "DG-RULES-EMPTY"
    RULES_DUPLICATE_ID = "DG-RULES-DUPLICATE-ID"
    RULES_UNDEFINED = "DG-RULES-UNDEFINED"
    RULES_REGEX = "DG-RULES-REGEX"
    RULES_REGEX_LENGTH = "DG-RULES-REGEX-LENGTH"
    RULES_WINDOW = "DG-RULES-WINDOW"
    RULES_NETWORK = "DG-RULES-NETWORK"
    RULES_DEFER = "DG-RULES-DEFER"
    RULES_DEFAULT = "DG-RULES-DEFAULT"
    RULES_TIMEZONE = "DG-RULES-TIMEZONE"
    RULES_FOLDER = "DG-RULES-FOLDER"
    # Phrase list files.
    LIST_PATH = "DG-LIST-PATH"
    LIST_MISSING = "DG-LIST-MISSING"
    LIST_ENCODING = "DG-LIST-ENCODING"
    LIST_SIZE = "DG-LIST-SIZE"
    LIST_ENTRY = "DG-LIST-ENTRY"
    LIST_EMPTY = "DG-LIST-EMPTY"
    # School calendar files.
    CALENDAR_UNKNOWN_KEY = "DG-CALENDAR-UNKNOWN-KEY"
    CALENDAR_MISSING_KEY = "DG-CALENDAR-MISSING-KEY"
    CALENDAR_TYPE = "DG-CALENDAR-TYPE"
    CALENDAR_VALUE = "DG-CALENDAR-VALUE"
    CALENDAR_DATE = "DG-CALENDAR-DATE"
    # Exemption files.
    EXEMPT_UNKNOWN_KEY = "DG-EXEMPT-UNKNOWN-KEY"
    EXEMPT_MISSING_KEY = "DG-EXEMPT-MISSING-KEY"
    EXEMPT_TYPE = "DG-EXEMPT-TYPE"
    EXEMPT_VALUE = "DG-EXEMPT-VALUE"
    EXEMPT_TIME = "DG-EXEMPT-TIME"
    EXEMPT_DUPLICATE_ID = "DG-EXEMPT-DUPLICATE-ID"
    # Companion rule-test files.
    RULETEST_UNKNOWN_KEY = "DG-RULETEST-UNKNOWN-KEY"
    RULETEST_MISSING_KEY = "DG-RULETEST-MISSING-KEY"
    RULETEST_TYPE = "DG-RULETEST-TYPE"
    RULETEST_VALUE = "DG-RULETEST-VALUE"
    RULETEST_ACTION = "DG-RULETEST-ACTION"
    RULETEST_MISSING = "DG-RULETEST-MISSING"


class SchemaCodes:
    """The four structural codes used when a file is checked against its JSON Schema."""

    def __init__(self, unknown_key: Code, missing_key: Code, type_: Code, value: Code):
        self.unknown_key, self.missing_key, self.type, self.value = unknown_key, missing_key, type_, value


RULES = SchemaCodes(Code.RULES_UNKNOWN_KEY, Code.RULES_MISSING_KEY, Code.RULES_TYPE, Code.RULES_VALUE)
CALENDAR = SchemaCodes(Code.CALENDAR_UNKNOWN_KEY, Code.CALENDAR_MISSING_KEY, Code.CALENDAR_TYPE,
                       Code.CALENDAR_VALUE)
EXEMPT = SchemaCodes(Code.EXEMPT_UNKNOWN_KEY, Code.EXEMPT_MISSING_KEY, Code.EXEMPT_TYPE, Code.EXEMPT_VALUE)
RULETEST = SchemaCodes(Code.RULETEST_UNKNOWN_KEY, Code.RULETEST_MISSING_KEY, Code.RULETEST_TYPE,
                       Code.RULETEST_VALUE)
