"""The rules package's front door: load a policy, and evaluate actions against it.

``load_policy`` (in ``loader``) returns a complete ``Policy`` or raises
``FileProblems`` with every problem; ``Policy.evaluate`` (in ``engine``)
returns a ``Decision``. This module names them for everyone else.
"""

from __future__ import annotations

from dojoguard.rules.engine import Policy, Rule
from dojoguard.rules.loader import (BUILTIN, CALENDAR_SUFFIX, EXAMPLES, TESTS_SUFFIX, builtin_calendar,
                                    builtin_folder, builtin_path, companion_tests, load_policy, policy_files)

__all__ = ["BUILTIN", "CALENDAR_SUFFIX", "EXAMPLES", "TESTS_SUFFIX", "Policy", "Rule", "builtin_calendar", "builtin_folder",
           "builtin_path", "companion_tests", "load_policy", "policy_files"]
