"""``dojoguard rules init DIR``: the built-in policy written out as a folder IT can edit.

The folder is laid out as a policy folder must be (docs/rules.md):

    DIR/
      st-wilfrids.yaml             the rules
      st-wilfrids.tests.yaml       their companion tests
      example.calendar.yaml        a school calendar (the tests use it)
      lists/*.txt                  the phrase lists the rules name
      schema.json, ruletests.schema.json, calendar.schema.json
                                   for editors (the files' first lines point at them)

so that ``dojoguard rules check DIR`` and ``dojoguard rules test DIR`` pass
as soon as it is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dojoguard.rules.loader import CALENDAR_SUFFIX, builtin_folder

SCHEMAS = ("schema.json", "ruletests.schema.json", "calendar.schema.json")
# In the package the policy's files point editors at the schemas beside the
# engine's code; in the written folder the schemas sit beside them.
_PACKAGED_SCHEMA_PATH = "$schema=../../rules/"


class InitError(Exception):
    """The folder cannot be written as asked (it is a file, or would overwrite files)."""


@dataclass(frozen=True)
class Written:
    folder: Path
    files: tuple[Path, ...]

    @property
    def calendar(self) -> Path:
        return next(f for f in self.files if f.name.endswith(CALENDAR_SUFFIX))


def planned() -> dict[Path, bytes]:
    """Every file ``init`` writes, relative to the folder, with its content."""
    source = builtin_folder()
    files: dict[Path, bytes] = {}
    for path in sorted(source.rglob("*")):
        if path.is_file() and (path.suffix in (".yaml", ".txt")):
            text = path.read_text("utf-8").replace(_PACKAGED_SCHEMA_PATH, "$schema=./")
            files[path.relative_to(source)] = text.encode("utf-8")
    for name in SCHEMAS:
        files[Path(name)] = resources.files("dojoguard.rules").joinpath(name).read_bytes()
    return files


def init_folder(folder: Path, *, force: bool = False) -> Written:
    """Write the built-in policy into ``folder``; raises ``InitError`` before writing anything if it cannot."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InitError(f"{folder} is a file, not a folder")
    files = planned()
    existing = sorted(str(name) for name in files if (folder / name).exists())
    if existing and not force:
        shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
        raise InitError(f"{folder} already has {shown}; nothing was written. Choose an empty folder, or give "
                        "--force to overwrite them.")
    written = []
    for name, content in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written.append(target)
    return Written(folder, tuple(written))
