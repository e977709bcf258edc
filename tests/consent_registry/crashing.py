"""Worker functions that misbehave on purpose, for the image checker's failure tests."""

from __future__ import annotations

import os
import time


def exit_quietly(*args, **kwargs):
    """Ends the worker process with status 0, as face_recognition's quit() does."""
    os._exit(0)


def hang(*args, **kwargs):
    """Never finishes in time."""
    time.sleep(60)
