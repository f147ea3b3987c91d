"""Serving stands on the model layer, never on the orchestrator: the service module imports no Dagster (so the
Bento and the UI image ship none), and what it reads the registry with is the read-only interface."""
import subprocess
import sys


def test_importing_the_service_or_the_ui_loads_no_dagster_module():
    probe = ("import sys, bento.service, bento.packing, ui.form, ui.views.predict, ui.views.data, ui.views.models, "
             "ui.views.monitoring, ui.views.batch; "
             "print(sorted(m for m in sys.modules if m == 'dagster' or m.startswith(('dagster.', 'dagster_'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]", done.stdout[-2000:]


def test_the_service_holds_the_read_only_registry(monkeypatch, tmp_path):
    """The running service reads through `RegistryReader`, which has no write to call."""
    from assets.resources.registry import ModelRegistry, RegistryReader

    monkeypatch.setenv("READMIT_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("READMIT_REGISTRY_POLL_SECONDS", "3600")
    monkeypatch.setattr(ModelRegistry, "from_settings", classmethod(lambda cls, settings: 1 / 0))
    from bento.service import ReadmissionService

    service = ReadmissionService.inner()
    try:
        assert type(service.registry) is RegistryReader
    finally:
        service.live.stop()
    assert not any(hasattr(service.registry, write)
                   for write in ("activate", "register", "set_production", "log_candidate", "record_decision"))
