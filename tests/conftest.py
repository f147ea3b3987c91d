"""Shared fixtures: settings rooted in a temp folder, a small synthetic source, the real data if present."""
from __future__ import annotations

import os

# One OpenMP thread per test process: `make test` runs three pytest workers on two cores, and scikit-learn's
# threads under contention make a boosted fit slower, not faster (docs/benchmarks.md). Set before any import
# of scikit-learn; a test that measures threads sets its own.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No vendor hears from a test run either, by hand (`uv run pytest`) or under make: before MLflow's import, which
# starts its telemetry client, and inherited by every process a test starts (servers, the CLI, Airflow).
from assets.settings import without_telemetry  # noqa: E402

without_telemetry()

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

from assets.encounters.synthetic import generate_encounters  # noqa: E402
from assets.pipeline import open_instance, tick  # noqa: E402
from assets.settings import Settings  # noqa: E402
from tests.homes import copy_home, forget_artifact_locations  # noqa: E402

SHARED_ZIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dataset_diabetes.zip"
PROJECT_TOOLS = Path(__file__).resolve().parents[1] / ".tools" / "bin"


# Property tests draw 40 batches each in `make test` (each costs a parse, a clean and a validation, ~0.8 s);
# HYPOTHESIS_PROFILE=thorough searches 150 (what make test drew before, docs/benchmarks.md "The test suite").
hypothesis_settings.register_profile("fast", max_examples=40)
hypothesis_settings.register_profile("thorough", max_examples=150)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


def pytest_addoption(parser):
    parser.addoption("--figures-dir", default=None,
                     help="where the stack tests write the figures the docs show (make figures: docs/); "
                          "by default each test's own temporary folder, so a test run leaves the checkout clean")


@pytest.fixture
def figures_dir(request, tmp_path) -> Path:
    """The folder a test writes its published figures to (docs/ only under `make figures`)."""
    chosen = request.config.getoption("--figures-dir")
    folder = Path(chosen).resolve() if chosen else tmp_path / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pytest_configure(config):
    """Processes the tests start find the project's own uv (as under make) even when pytest is run by hand,
    and every file the tests create (lakes, MLflow stores, servers' files) is private, as in `make demo`."""
    os.umask(0o077)
    if PROJECT_TOOLS.is_dir() and str(PROJECT_TOOLS) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{PROJECT_TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="session")
def synthetic_frame() -> pd.DataFrame:
    """2,500 synthetic encounters as the CSV spells them."""
    return generate_encounters(2_500, seed=11)


@pytest.fixture
def synthetic_csv(tmp_path: Path, synthetic_frame: pd.DataFrame) -> Path:
    path = tmp_path / "diabetic_data.csv"
    synthetic_frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """An embedded MLflow store with its schema migrated and nothing in it, made once per session.

    Creating the store runs every MLflow migration (~3-4 s on these 2 cores); the many tests that start from
    an empty home copy this file instead. `test_cli`'s real demo still creates its store from scratch."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def _small_world(root: Path, source: Path) -> Settings:
    """The settings every `settings` test starts from: 3 batches (1,000, 1,000, 500) of a synthetic source."""
    return Settings(home=root / "home", source=str(source), offline=True, batch_size=1_000)


@pytest.fixture
def settings(request, tmp_path: Path, synthetic_csv: Path, empty_mlflow_db: Path) -> Settings:
    """Embedded settings on a 2,500-row synthetic source cut into batches of 1,000 (3 batches).

    Marked `after_ticks(n)`, the test starts from the home `n` plain ticks leave (a copy of one made once per
    test run): what a test sets up with ticks it does not examine need not be trained again for it."""
    import shutil

    marker = request.node.get_closest_marker("after_ticks")
    if marker:
        copy_home(request.getfixturevalue("ticked_homes")(*marker.args), tmp_path)
    else:
        (tmp_path / "home").mkdir()
        shutil.copyfile(empty_mlflow_db, tmp_path / "home" / "mlflow.db")
    return _small_world(tmp_path, synthetic_csv)


@pytest.fixture(scope="session")
def ticked_homes(tmp_path_factory, synthetic_frame, empty_mlflow_db):
    """`root(n)`: a folder whose `home` is what `n` plain ticks of the `settings` world leave.

    Made once per test run (the pytest-xdist workers share them under a file lock) by ticking one home as
    far as a test asks and copying it after each tick; `copy_home` relocates each copy, so nothing in one
    points at another."""
    import shutil

    from filelock import FileLock

    folder = _real_demo_root(tmp_path_factory.getbasetemp()) / "ticked-homes"
    ticking = folder / "ticking"

    def root(n: int) -> Path:
        assert n >= 1, "after_ticks(n) needs n >= 1"
        folder.mkdir(exist_ok=True)
        with FileLock(str(folder.parent / "ticked-homes.lock")):
            if not (folder / f"after-{n}" / "done").exists():
                made = max((k for k in range(1, n) if (folder / f"after-{k}" / "done").exists()), default=0)
                if not made:
                    shutil.rmtree(ticking, ignore_errors=True)
                    (ticking / "home").mkdir(parents=True)
                    shutil.copyfile(empty_mlflow_db, ticking / "home" / "mlflow.db")
                    synthetic_frame.to_csv(ticking / "diabetic_data.csv", index=False)
                settings = _small_world(ticking, ticking / "diabetic_data.csv")
                instance = open_instance(settings)
                forget_artifact_locations()  # the copies made since the last tick share the template's run ids
                for k in range(made + 1, n + 1):
                    tick(settings, instance)
                    shutil.rmtree(folder / f"after-{k}", ignore_errors=True)
                    copy_home(ticking, folder / f"after-{k}")
                    (folder / f"after-{k}" / "done").write_text("")
                instance.dispose()
        return folder / f"after-{n}"

    return root


@pytest.fixture
def gateway():
    """A loopback Pushgateway stand-in: 200 to everything, or `status` when set; `received` holds each push."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received, state = [], {"status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            received.append({"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"),
                             "body": body})
            self.send_response(state["status"])
            self.end_headers()

        do_POST = do_DELETE = do_PUT

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received, state
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def real_source() -> str:
    """The real UCI data (READMIT_SOURCE or the shared copy); these tests skip only where it is absent."""
    source = os.environ.get("READMIT_SOURCE") or (str(SHARED_ZIP) if SHARED_ZIP.exists() else None)
    if not source or not Path(source).exists():
        pytest.skip("real dataset not available (set READMIT_SOURCE)")
    return source


def _real_source() -> str | None:
    source = os.environ.get("READMIT_SOURCE") or (str(SHARED_ZIP) if SHARED_ZIP.exists() else None)
    return source if source and Path(source).exists() else None


def _real_demo_root(base: Path) -> Path:
    """A folder every pytest-xdist worker of this run shares (the session's own without xdist)."""
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: `make test-stack` selects no test that needs it
def pytest_collection_modifyitems(session, config, items):
    """The real demo takes minutes: start it in the background as soon as a collected test needs it, so it
    runs beside the other tests instead of holding up a worker (two cores, three busy processes)."""
    waiting = {item.path for item in items if item.get_closest_marker("realdata") and (
        "real_demo" in getattr(item, "fixturenames", ()) or item.get_closest_marker("reads_real_demo"))}
    if waiting and _real_source() and not config.option.collectonly:
        _start_real_demo(_real_demo_root(config._tmp_path_factory.getbasetemp()), _real_source())
        # The files that read the demo run last (xdist hands out files in this order), when it is done.
        items.sort(key=lambda item: item.path in waiting)


def _start_real_demo(root: Path, source: str) -> Path:
    """`readmit demo` then `readmit status --json` on the real data, started once per test run (file lock)."""
    from filelock import FileLock

    folder = root / "real-demo"
    with FileLock(str(root / "real-demo.lock")):
        if not (folder / "started").exists():
            folder.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "READMIT_HOME": str(folder / "home"), "READMIT_SOURCE": source}
            env.pop("READMIT_BATCH_SIZE", None)
            script = (f'timeout 1800 "{sys.executable}" -m assets.cli demo > demo.out 2> demo.err; echo $? > demo.rc.tmp; '
                      f'"{sys.executable}" -m assets.cli status --json > status.json; mv demo.rc.tmp demo.rc')
            demo = subprocess.Popen(["bash", "-c", script], cwd=folder, stdin=subprocess.DEVNULL, start_new_session=True,
                                    env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
            (folder / "started").write_text(str(demo.pid))
    return folder


def pytest_sessionfinish(session, exitstatus):
    """A real demo still running when the whole run ends (a test run stopped early) is stopped with it: by the
    xdist controller, or the one pytest process, never by a worker (another may still be reading it)."""
    import signal

    if os.environ.get("PYTEST_XDIST_WORKER") or not hasattr(session.config, "_tmp_path_factory"):
        return
    started = session.config._tmp_path_factory.getbasetemp() / "real-demo" / "started"
    if started.exists() and started.read_text().strip() and not (started.parent / "demo.rc").exists():
        try:
            os.killpg(int(started.read_text()), signal.SIGTERM)
        except (ProcessLookupError, PermissionError, ValueError):
            pass


@pytest.fixture(scope="session")
def real_demo(real_source, tmp_path_factory) -> dict:
    """`readmit demo` on the real data, run once per test run as a user runs it (a process of its own), and
    shared by every test that reads its home: the CLI's contract and the privacy scan. Read-only for them."""
    import time

    folder = _start_real_demo(_real_demo_root(tmp_path_factory.getbasetemp()), real_source)
    deadline = time.monotonic() + 2400
    while not (folder / "demo.rc").exists():
        assert time.monotonic() < deadline, "the real demo did not finish in 40 minutes"
        time.sleep(2)
    return {"home": str(folder / "home"), "source": real_source, "returncode": int((folder / "demo.rc").read_text()),
            "stderr": (folder / "demo.err").read_text()[-5000:], "status": (folder / "status.json").read_text()}


@pytest.fixture(scope="session", params=["synthetic", pytest.param("real", marks=pytest.mark.realdata)])
def clean_rows(request, tmp_path_factory):
    """(clean frame, which data): 60k synthetic encounters cleaned, and (marked `realdata`, run by
    `make test-real`) every real encounter."""
    from assets.encounters.source import acquire_dataset
    from assets.encounters.labels import labelled_encounters
    from assets.encounters.transforms import parse_batch

    if request.param == "real":
        home = tmp_path_factory.mktemp("real")
        info = acquire_dataset(Settings(home=home, source=request.getfixturevalue("real_source"), offline=True))
        clean, _ = labelled_encounters(parse_batch(Path(info.csv_path).read_bytes()), "batch-all")
        return clean, "real"
    clean, _ = labelled_encounters(generate_encounters(60_000, seed=8), "batch-all")
    return clean, "synthetic"


@pytest.fixture(scope="session")
def encounter(synthetic_frame) -> dict:
    """One valid request encounter as a client would send it (JSON types, CSV names)."""
    from bento.contract import encounter_model

    row = synthetic_frame.drop(columns=["readmitted"]).iloc[0].to_dict()
    return encounter_model().model_validate(
        {k: (int(v) if str(v).isdigit() and k not in ("diag_1", "diag_2", "diag_3") else v)
         for k, v in row.items()}).model_dump(by_alias=True, exclude_none=True)


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory) -> Settings:
    """Two ticks on 4,000 synthetic encounters (batches of 2,000), trained once per test run (the pytest-xdist
    workers share it under a file lock) and only ever read: `trained_settings` hands out copies."""
    from filelock import FileLock

    root = _real_demo_root(tmp_path_factory.getbasetemp()) / "served-template"
    settings = Settings(home=root / "home", source=str(root / "diabetic_data.csv"), offline=True, batch_size=2_000)
    with FileLock(str(root.parent / "served-template.lock")):
        if not (root / "done").exists():
            import shutil

            shutil.rmtree(root, ignore_errors=True)  # a half-made one from a worker that died
            root.mkdir()
            generate_encounters(4_000, seed=21).to_csv(settings.source, index=False)
            instance = open_instance(settings)
            tick(settings, instance)
            tick(settings, instance)
            instance.dispose()
            (root / "done").write_text("")
    return settings


@pytest.fixture(scope="module")
def trained_settings(request, tmp_path_factory, synthetic_frame):
    """Embedded settings whose registry holds two versions after two ticks on synthetic data.

    Each module gets its own relocated copy of a trained home (registry and its artifacts, aliases, lake,
    Dagster instance), so a test that moves the alias, registers a version or tampers with a model's files
    cannot leak into another module, without training again. `make test`'s modules copy the home two ticks of
    the `settings` world leave (`ticked_homes(2)`, made for the `after_ticks` tests anyway); the stack tests,
    which serve it to outside clients and a browser, copy `trained_template` (4,000 encounters)."""
    import shutil

    root = tmp_path_factory.mktemp("served-copy")
    if request.node.get_closest_marker("stack"):
        template = request.getfixturevalue("trained_template")
        shutil.copyfile(template.source, root / "diabetic_data.csv")
        copy_home(template.home.parent, root)
        return Settings(home=root / "home", source=str(root / "diabetic_data.csv"), offline=True,
                        batch_size=template.batch_size)
    synthetic_frame.to_csv(root / "diabetic_data.csv", index=False)
    copy_home(request.getfixturevalue("ticked_homes")(2), root)
    return _small_world(root, root / "diabetic_data.csv")


def raw_frame(rows: list[dict] | None = None, base: pd.DataFrame | None = None, n: int = 3) -> pd.DataFrame:
    """A tiny raw batch: `n` valid rows of `base` with per-row overrides."""
    frame = base.head(n).copy().reset_index(drop=True)
    for index, changes in enumerate(rows or []):
        for column, value in changes.items():
            frame.at[index, column] = value
    return frame
