"""readmit for clinicians: `streamlit run ui/app.py` (or `make ui`). Pages live in ui/views/.

Who the clinician is: the authenticating front asks in `make up` and k8s (Streamlit has no login of its own);
with an OIDC provider in `.streamlit/secrets.toml` (`[auth]`), Streamlit's `st.login` asks as well, and no page
renders before it has answered."""
import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from ui.views import batch, data, models, monitoring, predict


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except StreamlitSecretNotFoundError:  # no secrets file: the front is the login
        return False


st.set_page_config(page_title="readmit", page_icon="🏥", layout="wide")
if _oidc_configured() and not st.user.get("is_logged_in", False):  # st.user.is_logged_in
    st.title("readmit")
    st.write("Sign in to score encounters and see the models.")
    st.button("Log in", on_click=st.login)
    st.stop()
navigation = st.navigation([
    st.Page(predict.render, title="Predict", url_path="predict", default=True),
    st.Page(batch.render, title="Batch scoring", url_path="batch"),
    st.Page(models.render, title="Models", url_path="models"),
    st.Page(monitoring.render, title="Monitoring", url_path="monitoring"),
    st.Page(data.render, title="Data", url_path="data"),
])
navigation.run()
