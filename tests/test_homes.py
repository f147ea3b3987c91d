"""The test homes' copier: a copy names only its own folder, or the copy fails loudly."""
import json
import sqlite3

import pytest

from tests.homes import HomeNotRelocatable, copy_home


def _home(root, binary: bytes = b"") -> None:
    home = root / "home"
    (home / "lake").mkdir(parents=True)
    (home / "lake" / "ledger.json").write_text(json.dumps({"arrival": f"{root}/home/lake/raw/b.csv"}))
    with sqlite3.connect(home / "store.db") as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE runs (uri TEXT, size INTEGER, body BLOB)")
        db.execute("INSERT INTO runs VALUES (?, 3, ?)", (f"file://{root}/home/art/1", b"\x00\x01"))
    model = home / "mlartifacts" / "models" / "m-1" / "artifacts"
    model.mkdir(parents=True)
    (model / "MLmodel").write_text(f"artifact_path: file://{root}/home/mlartifacts/models/m-1/artifacts\n")
    if binary:
        (home / "blob.bin").write_bytes(binary)


def test_a_copy_names_its_own_folder_everywhere_but_in_a_logged_models_recorded_bytes(tmp_path):
    source, target = tmp_path / "template-root", tmp_path / "a-test"
    _home(source)
    home = copy_home(source, target)
    assert json.loads((home / "lake" / "ledger.json").read_text())["arrival"] == f"{target}/home/lake/raw/b.csv"
    with sqlite3.connect(home / "store.db") as db:
        assert db.execute("SELECT uri, size, body FROM runs").fetchall() == [(f"file://{target}/home/art/1", 3, b"\x00\x01")]
    model_file = home / "mlartifacts" / "models" / "m-1" / "artifacts" / "MLmodel"
    assert model_file.read_bytes() == (source / "home" / model_file.relative_to(home)).read_bytes()
    assert str(source).encode() not in (home / "store.db").read_bytes()  # no free page nor log keeps it


def test_a_target_whose_name_extends_the_templates_is_copied(tmp_path):
    source = tmp_path / "served"
    _home(source)
    home = copy_home(source, tmp_path / "served-copy0")  # "…/served" is a prefix of "…/served-copy0"
    assert json.loads((home / "lake" / "ledger.json").read_text())["arrival"].startswith(f"{tmp_path}/served-copy0/")


def test_a_binary_file_naming_the_old_folder_is_refused(tmp_path):
    source = tmp_path / "template-root"
    _home(source, binary=b"\x80\x04\x95" + f"{source}/home/x".encode() + b"\xff")  # e.g. a pickle holding a path
    with pytest.raises(HomeNotRelocatable, match="blob.bin"):
        copy_home(source, tmp_path / "a-test")
