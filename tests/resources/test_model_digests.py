"""What is served is what the gate judged: every file of a version's artifact has its sha256 recorded at
registration, and every loader (the pipeline's, the API's, the packed fallback) checks them before it
unpickles anything."""
import contextlib
import json
import os
import pickle
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import pytest

from assets.resources.model_files import DIGEST_TAG, DigestMismatch, file_digests, verify_folder
from assets.resources.registry import ModelRegistry


class _Marker:
    """A pickle whose unpickling creates a folder: proof of whether a loader unpickled it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


def model_folder(registry: ModelRegistry, version) -> Path:
    """Where the artifact store keeps the version's model files (a local folder in the embedded mode)."""
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    registry.activate()
    uri = ModelsArtifactRepository.get_underlying_uri(f"models:/{registry.model_name}/{version}")
    return Path(unquote(urlparse(uri).path))


@contextlib.contextmanager
def replaced(path: Path, payload: bytes):
    """`path` holds `payload` inside the block and its own bytes again after it (the artifacts of a trained
    home are shared by every copy of it)."""
    original = path.read_bytes()
    path.write_bytes(payload)
    try:
        yield
    finally:
        path.write_bytes(original)


def test_a_folder_verifies_only_with_the_same_files_and_bytes(tmp_path):
    (tmp_path / "m" / "code").mkdir(parents=True)
    (tmp_path / "m" / "model.pkl").write_bytes(b"model")
    (tmp_path / "m" / "code" / "portable.py").write_text("x = 1\n")
    recorded = file_digests(tmp_path / "m")
    assert set(recorded) == {"model.pkl", "code/portable.py"}
    assert verify_folder(tmp_path / "m", json.dumps(recorded), "m") == recorded
    (tmp_path / "m" / "extra.pth").write_text("import os")  # an added file is refused too
    with pytest.raises(DigestMismatch, match="unexpected: extra.pth"):
        verify_folder(tmp_path / "m", recorded, "m")
    (tmp_path / "m" / "extra.pth").unlink()
    (tmp_path / "m" / "code" / "portable.py").write_text("x = 2\n")
    with pytest.raises(DigestMismatch, match="changed: code/portable.py"):
        verify_folder(tmp_path / "m", recorded, "m")


def _import_in_a_fresh_process(code: Path, module: str) -> str:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", f"import {module}; print({module}.ANSWER)"], cwd=code, check=True,
                          capture_output=True, text=True, env={"PATH": os.environ["PATH"], "PYTHONPATH": str(code),
                                                               "PYTHONDONTWRITEBYTECODE": "1"}).stdout.strip()


def test_bytecode_a_loader_cached_beside_the_code_is_discarded_never_loaded_and_a_bare_pyc_is_refused(tmp_path):
    """A plain MLflow load of a local store imports the model's code in place and Python caches its bytecode
    there: the version must still load (the cache is dropped, not trusted), and nothing else may be added."""
    import py_compile
    import subprocess
    import sys

    model = tmp_path / "m"
    (model / "code" / "pkg").mkdir(parents=True)
    (model / "code" / "pkg" / "__init__.py").write_text("")
    (model / "code" / "pkg" / "scoring.py").write_text("ANSWER = 'checked source'\n")
    recorded = file_digests(model)
    # What a loader leaves: a real import that writes its bytecode (the test's environment may forbid it)
    subprocess.run([sys.executable, "-c", "import pkg.scoring"], cwd=model / "code", check=True,
                   env={"PATH": os.environ["PATH"], "PYTHONPATH": str(model / "code")})
    cached = model / "code" / "pkg" / "__pycache__"
    assert any(cached.glob("scoring.*.pyc"))
    # A planted one that Python loads without looking at the source (PEP 552, unchecked hash) ...
    planted = tmp_path / "evil.py"
    planted.write_text("ANSWER = 'planted'\n")
    py_compile.compile(str(planted), cfile=str(next(cached.glob("scoring.*.pyc"))),
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    assert _import_in_a_fresh_process(model / "code", "pkg.scoring") == "planted"
    # ... is gone once the folder is checked, and the checked source is what runs
    assert verify_folder(model, recorded, "m") == recorded and not cached.exists()
    assert _import_in_a_fresh_process(model / "code", "pkg.scoring") == "checked source"
    (model / "code" / "pkg" / "helper.pyc").write_bytes(b"\x00")  # sourceless bytecode is importable: refused
    with pytest.raises(DigestMismatch, match="unexpected: code/pkg/helper.pyc"):
        verify_folder(model, recorded, "m")


@pytest.mark.parametrize("link", ["__pycache__", "code/pkg", "code/pkg/scoring.py"])
def test_a_symbolic_link_anywhere_in_a_model_folder_is_refused(tmp_path, link):
    """A linked folder is neither digested nor cleaned, and its files would still be imported."""
    model = tmp_path / "m"
    (model / "code" / "pkg").mkdir(parents=True)
    (model / "code" / "pkg" / "scoring.py").write_text("ANSWER = 1\n")
    recorded = file_digests(model)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "scoring.py").write_text("ANSWER = 1\n")
    target = model / "code" / "pkg" / "__pycache__" if link == "__pycache__" else model / link
    if target.exists():
        target.unlink() if target.is_file() else __import__("shutil").rmtree(target)
    target.symlink_to(elsewhere / "scoring.py" if link.endswith(".py") else elsewhere)
    with pytest.raises(DigestMismatch, match="not a plain file or folder"):
        verify_folder(model, recorded, "m")


@pytest.mark.parametrize("recorded", [None, "", "not json", "[]", "{}", '{"model.pkl": 1}'])
def test_a_folder_without_readable_digests_is_refused(tmp_path, recorded):
    (tmp_path / "model.pkl").write_bytes(b"model")
    with pytest.raises(DigestMismatch, match="no recorded sha256"):
        verify_folder(tmp_path, recorded, "m")


def test_every_version_records_the_digest_of_every_file_and_the_decision_keeps_them(trained_settings):
    registry = ModelRegistry.from_settings(trained_settings)
    for version in registry.versions():
        digests = json.loads(version.tags[DIGEST_TAG])
        assert {"MLmodel", "model.pkl"} <= set(digests)
        assert digests == file_digests(model_folder(registry, version.version))
    client = registry.client()
    gates = client.search_runs([client.get_experiment_by_name("readmit").experiment_id],
                               "tags.`readmit.kind` = 'promotion'")
    assert gates
    for gate in gates:
        decision = mlflow.artifacts.load_dict(f"runs:/{gate.info.run_id}/decision.json")
        version = client.get_model_version(registry.model_name, str(decision["challenger_version"]))
        assert decision["challenger_sha256"] == json.loads(version.tags[DIGEST_TAG])
        assert decision["policy"] == {"promotion": "auto", "promotion_margin": 0.002, "subgroup_margin": 0.02,
                                      "subgroup_min_rows": 500, "train_max_rows": 80_000, "holdout_max_rows": 25_000}


def test_another_versions_valid_pickle_in_place_of_the_production_one_is_refused(trained_settings):
    registry = ModelRegistry.from_settings(trained_settings)
    first, second = registry.versions()[:2]
    other = (model_folder(registry, first.version) / "model.pkl").read_bytes()
    with replaced(model_folder(registry, second.version) / "model.pkl", other):
        with pytest.raises(DigestMismatch, match="changed: model.pkl"):
            ModelRegistry.from_settings(trained_settings).load_for_serving(second.version)
        with pytest.raises(DigestMismatch, match="changed: model.pkl"):
            ModelRegistry.from_settings(trained_settings).load(second.version)


def test_a_hostile_pickle_is_never_unpickled(trained_settings, tmp_path):
    registry = ModelRegistry.from_settings(trained_settings)
    version = registry.versions()[-1].version
    marker = tmp_path / "unpickled"
    with replaced(model_folder(registry, version) / "model.pkl", pickle.dumps(_Marker(marker))):
        with pytest.raises(DigestMismatch):
            registry.load_for_serving(version)
    assert not marker.exists()


def test_removing_the_digest_tag_does_not_get_around_the_check(trained_settings, monkeypatch, capsys):
    from assets.cli import main

    monkeypatch.setenv("READMIT_HOME", str(trained_settings.home))
    registry = ModelRegistry.from_settings(trained_settings)
    version = registry.versions()[0]
    client = registry.client()
    client.delete_model_version_tag(registry.model_name, version.version, DIGEST_TAG)
    try:
        with pytest.raises(DigestMismatch, match="no recorded sha256"):
            registry.load_for_serving(version.version)
        assert main(["record-digests", str(version.version)]) == 0  # a person's command stamps it again
        assert "recorded the sha256 of" in capsys.readouterr().out
        stamped = client.get_model_version(registry.model_name, version.version).tags[DIGEST_TAG]
        assert json.loads(stamped) == json.loads(version.tags[DIGEST_TAG])
        assert registry.load_for_serving(version.version) is not None
    finally:
        client.set_model_version_tag(registry.model_name, version.version, DIGEST_TAG, version.tags[DIGEST_TAG])


def test_with_a_verify_key_rewritten_digests_are_refused_and_signed_ones_load(trained_settings, tmp_path):
    """Who can write tags can rewrite digests and files together; only the signing key's holder can sign."""
    from assets.resources.model_files import SIGNATURE_TAG, generate_keys

    signing, verifying = generate_keys(tmp_path / "keys")
    assert oct(signing.stat().st_mode & 0o777) == "0o600"
    registry = ModelRegistry.from_settings(trained_settings.with_(model_signing_key=str(signing),
                                                                  model_verify_key=str(verifying)))
    first, second = registry.versions()[:2]
    client = registry.client()
    with pytest.raises(DigestMismatch, match="signature"):  # registered before signing: unsigned
        registry.load_for_serving(second.version)
    registry.record_digests(second.version)  # a person vouches for the bytes as they are: signed now
    assert registry.load_for_serving(second.version) is not None
    folder = model_folder(registry, second.version)
    other = (model_folder(registry, first.version) / "model.pkl").read_bytes()
    with replaced(folder / "model.pkl", other):
        forged = dict(json.loads(second.tags[DIGEST_TAG]), **{"model.pkl": file_digests(folder)["model.pkl"]})
        client.set_model_version_tag(registry.model_name, second.version, DIGEST_TAG, json.dumps(forged))
        try:
            with pytest.raises(DigestMismatch, match="signature"):
                registry.load_for_serving(second.version)
            # Nor can a valid signature be moved from another version onto this one.
            registry.record_digests(first.version)
            moved = client.get_model_version(registry.model_name, first.version).tags
            for tag in (DIGEST_TAG, SIGNATURE_TAG):
                client.set_model_version_tag(registry.model_name, second.version, tag, moved[tag])
            with pytest.raises(DigestMismatch, match="signature"):
                registry.load_for_serving(second.version)
        finally:
            client.set_model_version_tag(registry.model_name, second.version, DIGEST_TAG, second.tags[DIGEST_TAG])
            client.delete_model_version_tag(registry.model_name, second.version, SIGNATURE_TAG)
            client.delete_model_version_tag(registry.model_name, first.version, SIGNATURE_TAG)


@pytest.mark.parametrize("key", ["missing", "not a key", "ec"])
def test_a_verify_key_that_is_missing_or_not_ed25519_refuses_as_a_digest_mismatch(tmp_path, key):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from assets.resources.model_files import statement, verify_signature

    path = tmp_path / "verify.pem"
    if key == "not a key":
        path.write_text("hello")
    elif key == "ec":
        path.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(DigestMismatch, match="does not verify"):
        verify_signature(statement("readmission", 1, "{}"), "c2ln", path, "v1")
