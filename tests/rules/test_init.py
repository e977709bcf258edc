"""`dojoguard rules init`: a copy of the shipped policy that checks and tests clean, as docs/rules.md tells IT."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from dojoguard import config as configs
from dojoguard import yamlfile
from dojoguard.proxy.services import load_policy as proxy_load_policy
from dojoguard.proxy.settings import Settings
from dojoguard.rules.policy import builtin_folder, builtin_path

from .conftest import write
from .test_cli import run

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
DOCS_FOLDER = "/etc/dojoguard/rules"


@pytest.fixture
def settings(tmp_path: Path) -> Path:
    """A settings file that keeps the embedded defaults (builtin policy, no calendar)."""
    return write(tmp_path / "config.yaml", f"data_dir: {tmp_path / 'data'}\n")


def _docs_section(title: str) -> str:
    return DOCS.read_text("utf-8").split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _docs_commands() -> list[list[str]]:
    """The commands of the sh block in docs/rules.md's "Your own copy", split as a shell would."""
    block = _docs_section("Your own copy").split("```sh\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


def _printed_settings(output: str) -> dict:
    """The `rules:` lines `rules init` prints, read as YAML."""
    block = re.search(r"^rules:\n(?:  .*\n)+", output, flags=re.M)
    assert block is not None, output
    return yaml.safe_load(block.group(0))


def _init(settings: Path, folder: Path, *extra: str):
    return run(settings, "rules", "init", str(folder), *extra)


def test_the_docs_steps_work_as_written(settings, tmp_path):
    """docs/rules.md's steps (init, check, test), run with the real CLI in a temporary folder, each succeed."""
    commands = _docs_commands()
    assert [c[:3] for c in commands] == [["dojoguard", "rules", "init"], ["dojoguard", "rules", "check"],
                                         ["dojoguard", "rules", "test"]]
    folder = tmp_path / "school rules"
    outputs = []
    for command in commands:
        args = [str(folder) if a == DOCS_FOLDER else a for a in command[1:]]
        result = run(settings, *args)
        assert result.exit_code == 0, (command, result.output)
        outputs.append(result.output)
    assert "23 rules" in outputs[1] and "10 lists" in outputs[1]
    assert outputs[2].count("PASS  ") >= 50 and "FAIL" not in outputs[2]
    assert outputs[2].strip().endswith("0 failed")


def test_printed_commands_run_as_printed(settings, tmp_path):
    """The check and test commands init prints (quoted for a folder with a space) run clean when split as a shell."""
    result = _init(settings, tmp_path / "my rules")
    assert result.exit_code == 0, result.output
    printed = [shlex.split(line) for line in result.output.splitlines() if line.startswith("  dojoguard rules")]
    assert [p[2] for p in printed] == ["check", "test"]
    for command in printed:
        assert command[3] == str(tmp_path / "my rules")
        assert run(settings, *command[1:]).exit_code == 0


def test_the_printed_settings_load_the_copy_as_the_proxy_does(settings, tmp_path):
    """The settings init prints, put in a config file, make the proxy's own loader load the copy and its calendar."""
    folder = tmp_path / "rules"
    result = _init(settings, folder)
    printed = _printed_settings(result.output)
    assert printed == {"rules": {"policy": str(folder), "calendar": str(folder / "example.calendar.yaml")}}
    docs_settings = yaml.safe_load(_docs_section("Your own copy").split("```yaml\n", 1)[1].split("```", 1)[0])
    assert docs_settings["rules"].keys() == printed["rules"].keys()
    config_file = tmp_path / "dojoguard.yaml"
    config_file.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), **printed}), "utf-8")
    policy = proxy_load_policy(Settings.from_config(configs.load(config_file)))
    assert len(policy.rules) == 23
    assert Path(policy.calendar.file) == folder / "example.calendar.yaml"
    assert {p.parent for p in policy.files if p.suffix == ".yaml"} == {folder}


def test_an_edit_with_a_mistake_is_caught_by_check(settings, tmp_path):
    """After init, a misspelt key in one rule makes `rules check` fail, naming the file and line of the mistake."""
    folder = tmp_path / "rules"
    _init(settings, folder)
    rules = folder / "st-wilfrids.yaml"
    text = rules.read_text("utf-8")
    edited = text.replace("  - id: urgent-messages\n", "  - id: urgent-messages\n    verdit: warn\n", 1)
    assert edited != text
    rules.write_text(edited, "utf-8")
    line = edited.splitlines().index("    verdit: warn") + 1
    result = run(settings, "rules", "check", str(folder))
    assert result.exit_code == 2, result.output
    assert f"{rules}:{line}:5: DG-RULES-UNKNOWN-KEY" in result.output
    rules.write_text(text, "utf-8")
    assert run(settings, "rules", "check", str(folder)).exit_code == 0


def test_copy_holds_every_shipped_file_and_the_schemas(settings, tmp_path):
    """The copy has the shipped rules, tests, calendar and lists byte for byte (bar the schema line) and 3 schemas."""
    folder = tmp_path / "rules"
    _init(settings, folder)
    shipped = {p.relative_to(builtin_folder()).as_posix() for p in builtin_folder().rglob("*") if p.is_file()}
    written = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert written == shipped | {"schema.json", "ruletests.schema.json", "calendar.schema.json"}
    for name in shipped:
        original, copy = (builtin_folder() / name).read_text("utf-8"), (folder / name).read_text("utf-8")
        assert copy.splitlines()[1:] == original.splitlines()[1:] if name.endswith(".yaml") else copy == original
    assert (folder / "st-wilfrids.yaml").read_text("utf-8") != builtin_path().read_text("utf-8")


@pytest.mark.parametrize(("name", "schema"), [("st-wilfrids.yaml", "schema.json"),
                                              ("st-wilfrids.tests.yaml", "ruletests.schema.json"),
                                              ("example.calendar.yaml", "calendar.schema.json")])
def test_each_copied_file_points_editors_at_a_schema_beside_it_that_accepts_it(settings, tmp_path, name, schema):
    """The editor hint names a schema in the copy itself, and that schema accepts the file as written."""
    folder = tmp_path / "rules"
    _init(settings, folder)
    text = (folder / name).read_text("utf-8")
    assert text.splitlines()[0] == f"# yaml-language-server: $schema=./{schema}"
    validator = jsonschema.Draft202012Validator(json.loads((folder / schema).read_text("utf-8")))
    assert list(validator.iter_errors(yamlfile.load(folder / name).data)) == []


def test_init_refuses_to_overwrite_and_loses_nothing(settings, tmp_path):
    """A second init into the same folder writes nothing, names the clashing files, and keeps IT's edits."""
    folder = tmp_path / "rules"
    _init(settings, folder)
    rules = folder / "st-wilfrids.yaml"
    rules.write_text("# our edited rules\n", "utf-8")
    (folder / "lists" / "urgent.txt").unlink()
    result = _init(settings, folder)
    assert result.exit_code == 1, result.output
    assert "already holds" in result.output and "st-wilfrids.yaml" in result.output and "--force" in result.output
    assert rules.read_text("utf-8") == "# our edited rules\n"
    assert not (folder / "lists" / "urgent.txt").exists()


def test_force_replaces_only_the_shipped_files(settings, tmp_path):
    """--force puts the shipped files back and leaves the school's own files in the folder alone."""
    folder = tmp_path / "rules"
    _init(settings, folder)
    (folder / "st-wilfrids.yaml").write_text("# broken\n", "utf-8")
    own = write(folder / "school.calendar.yaml", "terms: []\n")
    result = _init(settings, folder, "--force")
    assert result.exit_code == 0, result.output
    assert (folder / "st-wilfrids.yaml").read_text("utf-8").splitlines()[1:] == \
        builtin_path().read_text("utf-8").splitlines()[1:]
    assert own.read_text("utf-8") == "terms: []\n"
    assert [p.name for p in folder.iterdir() if p.name.endswith(".part")] == []


def test_init_into_a_folder_of_other_files(settings, tmp_path):
    """A folder that already holds unrelated files is fine: they are kept and the copy still checks clean."""
    folder = tmp_path / "rules"
    readme = write(folder / "README.txt", "our notes\n")
    assert _init(settings, folder).exit_code == 0
    assert readme.read_text("utf-8") == "our notes\n"
    assert run(settings, "rules", "check", str(folder)).exit_code == 0


def test_init_refuses_a_file(settings, tmp_path):
    """FOLDER naming an existing file is refused and the file is untouched."""
    target = write(tmp_path / "rules.yaml", "default: {verdict: allow}\n")
    result = _init(settings, target)
    assert result.exit_code == 1
    assert "is a file, not a folder" in result.output
    assert target.read_text("utf-8") == "default: {verdict: allow}\n"


def test_init_refuses_a_file_where_the_lists_folder_goes(settings, tmp_path):
    """A file called `lists` in FOLDER is refused, even with --force, before any file is written."""
    folder = tmp_path / "rules"
    write(folder / "lists", "not a folder\n")
    result = _init(settings, folder, "--force")
    assert result.exit_code == 1
    assert "lists" in result.output and "move it away" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["lists"]


def test_init_refuses_a_folder_where_a_file_goes(settings, tmp_path):
    """A folder named like a file of the copy is refused, even with --force, and nothing is written."""
    folder = tmp_path / "rules"
    (folder / "schema.json").mkdir(parents=True)
    result = _init(settings, folder, "--force")
    assert result.exit_code == 1
    assert "schema.json is a folder" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["schema.json"]


def test_a_symlinked_file_is_a_clash_and_force_never_writes_through_it(settings, tmp_path):
    """A link in place of a rule file counts as existing (even dangling); --force replaces the link, not its target."""
    folder = tmp_path / "rules"
    folder.mkdir()
    outside = write(tmp_path / "elsewhere.yaml", "# someone else's file\n")
    (folder / "st-wilfrids.yaml").symlink_to(outside)
    (folder / "example.calendar.yaml").symlink_to(tmp_path / "missing.yaml")
    refused = _init(settings, folder)
    assert refused.exit_code == 1
    assert "example.calendar.yaml" in refused.output and "st-wilfrids.yaml" in refused.output
    assert _init(settings, folder, "--force").exit_code == 0
    assert outside.read_text("utf-8") == "# someone else's file\n"
    assert not (folder / "st-wilfrids.yaml").is_symlink()
    assert not (tmp_path / "missing.yaml").exists()


def test_a_folder_that_cannot_be_made_is_a_plain_error(settings, tmp_path):
    """A FOLDER below a file cannot be created: one plain sentence naming the place and the reason, no traceback."""
    blocker = write(tmp_path / "notes.txt", "ours\n")
    result = _init(settings, blocker / "rules")
    assert result.exit_code == 1
    assert "could not write" in result.output and "Not a directory" in result.output
    assert "Traceback" not in result.output
    assert blocker.read_text("utf-8") == "ours\n"
