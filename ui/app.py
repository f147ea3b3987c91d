"""readmit for clinicians: `streamlit run ui/app.py` (or `make ui`). Pages live in ui/views/."""
import streamlit as st

from ui.views import batch, data, models, monitoring, predict

st.set_page_config(page_title="readmit", page_icon="🏥", layout="wide")
navigation = st.navigation([
    st.Page(predict.render, title="Predict", url_path="predict", default=True),
    st.Page(batch.render, title="Batch scoring", url_path="batch"),
    st.Page(models.render, title="Models", url_path="models"),
    st.Page(monitoring.render, title="Monitoring", url_path="monitoring"),
    st.Page(data.render, title="Data", url_path="data"),
])
navigation.run()
