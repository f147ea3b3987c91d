"""`make up`'s per-process wrapper (scripts/run_with.sh) restarts a service that exits, with backoff, up to a
limit, instead of letting honcho stop the whole platform; a stop (TERM) stops it without a restart."""
import os
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_WITH = REPO / "scripts" / "run_with.sh"


def _run(tmp_path, script: str, restarts: int = 3, timeout: float = 60):
    env_file = tmp_path / "svc.env"
    env_file.write_text("GREETING=hello\n")
    env = {**os.environ, "READMIT_SERVICE_RESTARTS": str(restarts), "READMIT_SERVICE_BACKOFF_SECONDS": "0.2"}
    return subprocess.run(["bash", str(RUN_WITH), str(env_file), "--", "bash", "-c", script],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def test_a_service_that_exits_is_restarted_and_keeps_its_environment(tmp_path):
    # exits twice with an error, then succeeds; every start sees the env file's variable
    script = 'echo "$GREETING" >> starts; [ "$(wc -l < starts)" -ge 3 ]'
    result = _run(tmp_path, script)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "starts").read_text().split() == ["hello"] * 3
    assert result.stderr.count("restart") == 2 and "restart 1 of 3" in result.stderr and "exited with status 1" in result.stderr


def test_a_service_that_keeps_exiting_gives_up_after_the_limit_with_its_status(tmp_path):
    result = _run(tmp_path, 'echo x >> starts; exit 7', restarts=2)
    assert result.returncode == 7
    assert len((tmp_path / "starts").read_text().split()) == 3  # the first start and two restarts
    assert "giving up" in result.stderr


def test_a_stop_stops_the_service_without_a_restart(tmp_path):
    env_file = tmp_path / "svc.env"
    env_file.write_text("")
    process = subprocess.Popen(["bash", str(RUN_WITH), str(env_file), "--", "bash", "-c", "echo x >> starts; sleep 300"],
                               cwd=tmp_path, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 20
    while not (tmp_path / "starts").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGTERM)  # as make down and honcho stop it
    process.wait(timeout=20)
    time.sleep(1)
    assert (tmp_path / "starts").read_text().split() == ["x"]
    assert "restart" not in process.stderr.read()


def test_the_stack_runs_every_service_through_the_wrapper():
    up = (REPO / "scripts" / "up.sh").read_text()
    procfile = [line for line in up.splitlines() if line.strip().startswith('echo "') and ": " in line and "Procfile" not in line]
    services = [line for line in procfile if line.strip().startswith('echo "') and line.split('"')[1].split(":")[0].isidentifier()
                or "-" in line.split('"')[1].split(":")[0]]
    assert len(services) >= 12
    assert all("$run " in line for line in services), [l for l in services if "$run " not in l]


def test_a_python_service_gets_interrupts_and_terms_as_usual(tmp_path):
    """A script's background command starts with SIGINT ignored; the wrapper gives the service the default back."""
    import sys

    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    result = _run(tmp_path, f'"{sys.executable}" -c "{probe}"')
    assert result.returncode == 0 and result.stdout.strip() == "True", (result.stdout, result.stderr)
