"""Dataset acquisition: a given path (zip or csv), the download with cache, the synthetic fallback."""
import functools
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from assets.encounters.source import DatasetError, acquire_dataset, download, read_source_info, sha256_of
from assets.settings import Settings


def _zip_of(csv: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        archive.write(csv, "dataset_diabetes/diabetic_data.csv")
        archive.writestr("dataset_diabetes/IDs_mapping.csv", "admission_type_id,description\n1,Emergency\n")
    return target


def test_csv_path_is_copied_and_described(tmp_path, synthetic_csv):
    info = acquire_dataset(Settings(home=tmp_path / "h", source=str(synthetic_csv)))
    assert info.rows == 2_500 and not info.synthetic and info.origin == str(synthetic_csv)
    assert Path(info.csv_path).read_bytes() == synthetic_csv.read_bytes()
    assert read_source_info(Settings(home=tmp_path / "h")) == info


def test_zip_path_yields_data_and_ids_mapping(tmp_path, synthetic_csv):
    archive = _zip_of(synthetic_csv, tmp_path / "d.zip")
    info = acquire_dataset(Settings(home=tmp_path / "h", source=str(archive)))
    assert info.rows == 2_500 and info.ids_mapping_path and info.sha256 == sha256_of(archive)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        acquire_dataset(Settings(home=tmp_path, source=str(tmp_path / "nope.zip")))


def test_a_file_that_is_not_the_dataset_is_refused(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="missing columns"):
        acquire_dataset(Settings(home=tmp_path / "h", source=str(other)))


def test_offline_without_a_path_generates_labelled_synthetic_data(tmp_path):
    info = acquire_dataset(Settings(home=tmp_path, offline=True))
    assert info.synthetic and info.data_source == "synthetic" and info.rows == 101_766


def test_failed_download_falls_back_to_synthetic(tmp_path):
    info = acquire_dataset(Settings(home=tmp_path, source_url="http://127.0.0.1:9/unreachable.zip"))
    assert info.synthetic


@pytest.fixture
def http_root(tmp_path):
    """A static file server on loopback standing in for archive.ics.uci.edu."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_is_verified_cached_and_hash_recorded(tmp_path, synthetic_csv, http_root):
    root, base = http_root
    archive = _zip_of(synthetic_csv, root / "data.zip")
    cache = tmp_path / "cache"
    first = download(f"{base}/data.zip", cache)
    assert first.read_bytes() == archive.read_bytes()
    assert (cache / "data.zip.sha256").read_text() == sha256_of(archive)
    archive.unlink()  # the second call must not need the server
    assert download(f"{base}/data.zip", cache) == first


def test_download_of_something_else_is_refused_and_not_cached(tmp_path, http_root):
    root, base = http_root
    (root / "page.zip").write_text("<html>not found</html>")
    with pytest.raises(DatasetError):
        download(f"{base}/page.zip", tmp_path / "cache")
    assert not (tmp_path / "cache" / "page.zip").exists()


def test_user_given_url_failure_is_not_hidden(tmp_path):
    with pytest.raises(DatasetError, match="could not fetch"):
        acquire_dataset(Settings(home=tmp_path, source="http://127.0.0.1:9/x.zip"))
