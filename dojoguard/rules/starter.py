"""`dojoguard rules init`: the school's own copy of the shipped policy, ready to check, test and edit.

The copy is laid out as docs/rules.md describes a policy folder: the rule
file, its companion tests (``*.tests.yaml``), an example school calendar
(``*.calendar.yaml``), the phrase lists (``lists/*.txt``) and the JSON
Schemas editors use to complete and check the YAML files as they are typed.
Nothing already in the folder is overwritten unless asked.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from dojoguard.rules.policy import EXAMPLES, builtin_calendar, builtin_folder

SCHEMAS = ("schema.json", "ruletests.schema.json", "calendar.schema.json")
# In the package the shipped files point editors at the schemas beside the engine's
# code; in the copy the schemas sit beside the files themselves.
_SCHEMA_HINT = re.compile(r"^(# yaml-language-server: \$schema=)\S*/([^/\s]+\.json)$", re.M)


class InitError(Exception):
    """The folder cannot be written as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Starter:
    folder: Path
    written: tuple[Path, ...]

    @property
    def calendar(self) -> Path:
        return self.folder / builtin_calendar().name


def contents(example: str = EXAMPLES[0]) -> dict[str, bytes]:
    """Every file of the copy of the shipped ``example`` policy, by its path relative to the folder."""
    source = builtin_folder(example)
    files: dict[str, bytes] = {}
    for path in sorted(source.glob("*.yaml")):
        text = _SCHEMA_HINT.sub(r"\1./\2", path.read_text("utf-8"), count=1)
        files[path.name] = text.encode("utf-8")
    for path in sorted(source.glob("lists/*.txt")):
        files[f"lists/{path.name}"] = path.read_bytes()
    for name in SCHEMAS:
        files[name] = resources.files("dojoguard.rules").joinpath(name).read_bytes()
    return files


def write_starter(folder: Path, *, force: bool = False, example: str = EXAMPLES[0]) -> Starter:
    """Write the copy into ``folder`` (created if need be); raises ``InitError`` with the reason.

    A clash (a file that would be overwritten without ``force``, a folder or file in
    the way) is refused before anything is written.
    """
    folder = folder.expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise InitError(f"{folder} is a file, not a folder: give the folder to write the rules into.")
    files = {folder / name: data for name, data in contents(example).items()}
    _refuse_clashes(folder, files, force=force)
    for path, data in files.items():
        try:
            _write(path, data)
        except OSError as exc:
            raise InitError(f"could not write {exc.filename or path}: {exc.strerror or exc}. "
                            "Choose a folder this user may create and write to.") from exc
    return Starter(folder, tuple(files))


def _refuse_clashes(folder: Path, files: dict[Path, bytes], *, force: bool) -> None:
    blocked = sorted(p for p in files if p.parent.exists() and not p.parent.is_dir())
    if blocked:
        raise InitError(f"{blocked[0].parent} is a file, but the lists go in a folder of that name: "
                        "move it away first.")
    folders = sorted(p for p in files if p.is_dir())
    if folders:
        raise InitError(f"{folders[0]} is a folder, so the file of that name cannot be written: move it away first.")
    existing = sorted(p.relative_to(folder).as_posix() for p in files if p.exists() or p.is_symlink())
    if existing and not force:
        raise InitError(f"{folder} already holds {', '.join(existing)}; nothing was written. Choose an empty folder, "
                        "or add --force to replace those files with the shipped ones (your edits to them are lost).")


def _write(path: Path, data: bytes) -> None:
    # Each file appears whole or not at all: a copy interrupted halfway never leaves a truncated rule file.
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def settings(starter: Starter) -> str:
    """The configuration lines that point the proxy at the copy (quoted as YAML needs)."""
    return yaml.safe_dump({"rules": {"policy": str(starter.folder), "calendar": str(starter.calendar)}},
                          sort_keys=False, allow_unicode=True, width=1 << 16)


def report(starter: Starter) -> str:
    """What was written, how to check it, and the settings that point the proxy at it."""
    folder = starter.folder
    return "\n".join([
        f"wrote {len(starter.written)} files to {folder}",
        "",
        "Check and test them (run these again after every edit):",
        f"  dojoguard rules check {shlex.quote(str(folder))}",
        f"  dojoguard rules test {shlex.quote(str(folder))}",
        "",
        "To use them, put these lines in the configuration file (dojoguard run --config FILE):",
        settings(starter).rstrip("\n"),
        "",
        f"{starter.calendar.name} holds an example school's dates for 2026-27: the companion tests assume it,",
        "so keep it, copy it to school.calendar.yaml with your own term dates, INSET days and closures,",
        "and point `rules.calendar` at your copy.",
    ])
