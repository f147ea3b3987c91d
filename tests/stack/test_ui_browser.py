"""The Streamlit app in real Chromium against a running service: predict, batch scoring, API down."""
import shutil
import sys
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from tests.bento.conftest import start_service
from harness.servers import Server, free_port

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-quic", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def start_ui(settings, logs: Path, api_url: str) -> tuple[Server, str]:
    port = free_port()
    server = Server(f"streamlit-{port}", [str(Path(sys.executable).parent / "streamlit"), "run",
                                          str(REPO / "ui" / "app.py"), "--server.address", "127.0.0.1",
                                          "--server.port", str(port), "--server.headless", "true",
                                          "--browser.gatherUsageStats", "false"], logs,
                    {"READMIT_HOME": str(settings.home), "READMIT_API_URL": api_url})
    url = f"http://127.0.0.1:{port}"
    server.start(f"{url}/_stcore/health", deadline_seconds=90)
    return server, url


def test_clinician_flow_in_chromium(trained_settings, tmp_path, browser, synthetic_frame, figures_dir):
    api_server, api = start_service(trained_settings, tmp_path)
    ui_server, ui = start_ui(trained_settings, tmp_path, api)
    try:
        version = requests.get(f"{api}/health", timeout=5).json()["model"]["version"]
        page = browser.new_page(viewport={"width": 1400, "height": 1700})
        page.goto(ui)
        expect(page.get_by_role("button", name="Fill with a random synthetic encounter")).to_be_visible(timeout=60_000)
        expect(page.get_by_role("button", name="Deploy")).to_have_count(0)  # toolbarMode viewer (ui/.streamlit)
        page.get_by_role("button", name="Fill with a random synthetic encounter").click()
        page.get_by_role("button", name="Predict readmission risk").click()
        expect(page.get_by_text("Probability of readmission < 30 days")).to_be_visible(timeout=60_000)
        expect(page.get_by_text(f"readmission version {version}")).to_be_visible()
        # The reasons, as a chart (a death or hospice discharge has none: its risk is 0 by rule).
        expect(page.get_by_text("Why this risk").or_(page.get_by_text("Discharged to death or hospice"))).to_be_visible()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(tmp_path / "ui_predict.png"), full_page=True)  # docs/ has a real-data one

        upload = tmp_path / "encounters.csv"
        rows = synthetic_frame.head(3).copy()
        rows.loc[1, "age"] = "ancient"
        rows.to_csv(upload, index=False)
        page.goto(f"{ui}/batch")
        page.locator("input[type=file]").set_input_files(str(upload))
        expect(page.get_by_text("2 rows scored, 1 rejected")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Rejected rows")).to_be_visible()
        expect(page.get_by_role("cell", name="age", exact=True)).to_be_visible()
        expect(page.get_by_text("Input should be '[0-10)'").first).to_be_visible()
        page.wait_for_timeout(1500)  # let the results grid paint before the screenshot
        page.screenshot(path=str(figures_dir / "ui_batch.png"), full_page=True)  # make figures: docs/

        page.goto(f"{ui}/monitoring")  # batch-002 was judged by version 1 before the second retrain
        expect(page.get_by_text("ROC-AUC per batch: estimated at arrival, realised when labels land")).to_be_visible(
            timeout=60_000)
        expect(page.get_by_text("Feature drift (PSI) by batch")).to_be_visible()
        # st.dataframe draws its cells on a canvas: the charts' and the subgroup caption's text show the batch.
        expect(page.get_by_role("img").filter(has_text="batch-002").first).to_be_visible()
        expect(page.get_by_text("Version 1 on batch-002")).to_be_visible()
        page.wait_for_timeout(1500)
        # Published small groups show n as <11 and no figure (the synthetic home has several).
        page.screenshot(path=str(figures_dir / "ui_monitoring.png"), full_page=True)
        page.goto(f"{ui}/models")
        expect(page.get_by_text("show n as").first).to_be_visible(timeout=60_000)
        page.get_by_text("Subgroups (holdout)").scroll_into_view_if_needed()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(figures_dir / "ui_model_card.png"), full_page=True)

        api_server.stop()
        page.goto(ui)
        page.get_by_role("button", name="Predict readmission risk").click()
        expect(page.get_by_text("is not reachable")).to_be_visible(timeout=60_000)
    finally:
        ui_server.stop()
        api_server.stop()
    # Every page a clinician opened rendered without a Streamlit deprecation (logged by the server).
    assert "will be removed" not in ui_server.tail(10_000), ui_server.tail(40)
