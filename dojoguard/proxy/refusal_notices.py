"""What a teacher is told when the proxy itself refuses a write (a check that could not be completed).

The rules' own notices are in the policy file; these are the proxy's, shown
by the app in place of ClassDojo's answer, with the decision's reference
(see ``enforcement.refusal``). ``docs/teachers.md`` quotes them, and its
test checks the quotes against this module.
"""

from __future__ import annotations

NOTICE_INCOMPLETE = ("dojoguard could not read everything in this request, so it was not sent. "
                     "Try again; if it keeps happening, tell the school's IT staff and quote the reference.")
NOTICE_UNKNOWN_WRITE = ("This ClassDojo action is not one the school's system recognises yet, so it was not sent. "
                        "Tell the school's IT staff and quote the reference.")
NOTICE_CANNOT_REDACT = ("This photo needs faces blurred before it can be shared, but it was uploaded before it "
                        "could be changed. Upload it again from this device, or remove it.")
NOTICE_NOT_RECORDED = ("The school's ClassDojo safeguards could not record this action, so it was not sent. "
                       "Try again in a few minutes and tell the school's IT staff.")
NOTICE_NOT_QUEUED = ("This needs to be held for later, but the school's system could not keep it safely, "
                     "so it was not sent. Try again later and tell the school's IT staff.")
NOTICE_TOO_LARGE = "This upload is larger than the school's system can check, so it was not sent."
NOTICE_MISDIRECTED = ("This request named a different website from the one it was sent to, so it was not sent. "
                      "If you did not do anything unusual, tell the school's IT staff and quote the reference.")
NOTICE_INTERNAL = ("Something went wrong while the school's system checked this, so it was not sent. "
                   "Try again; if it keeps happening, tell the school's IT staff and quote the reference.")
NOTICE_SLOW_BODY = ("This upload took too long to reach the school's system, so it was not sent. "
                    "Try again on a better connection; if it keeps happening, tell the school's IT staff "
                    "and quote the reference.")
