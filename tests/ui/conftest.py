"""Streamlit deprecations are errors in the UI tests: a deprecated call fails here, not for a user later.

Streamlit reports them through the `streamlit.deprecation_util` logger (and only in the browser when error
details are on), not as Python warnings, so the fixture listens to that logger; Python deprecation warnings
raised from streamlit itself are errors too (pyproject's filterwarnings is overridden here)."""
import logging
import warnings

import pytest


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(autouse=True)
def streamlit_deprecations_fail():
    handler = _Collect()
    logger = logging.getLogger("streamlit.deprecation_util")
    logger.addHandler(handler)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=DeprecationWarning, module=r"streamlit(\.|$)")
        warnings.filterwarnings("error", category=FutureWarning, module=r"streamlit(\.|$)")
        yield handler
    logger.removeHandler(handler)
    assert not handler.messages, f"Streamlit deprecations: {handler.messages}"
