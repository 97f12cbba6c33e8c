"""facetype: the Streamlit entry point (``streamlit run app/main.py``)."""

import logging
from pathlib import Path

import streamlit as st

from app.core import auth  # the project is installed into the venv (`make venv`): no sys.path edit
from app.core.settings import get_settings
from app.services.bootstrap import ConfigurationError, prepare

ROOT = Path(__file__).resolve().parents[1]

st.set_page_config(page_title="facetype", page_icon=":material/face:", layout="wide")


@st.cache_resource(show_spinner="Preparing the database and the sample project…")
def prepare_once(database_url: str, storage_url: str) -> None:
    prepare()


settings = get_settings()
try:
    prepare_once(settings.resolved_database_url, settings.resolved_storage_url)
except ConfigurationError as error:
    logging.getLogger("facetype").error("facetype cannot start: %s", error)  # the detail: operators only
    st.error(f"**facetype cannot start.** {error.public_message} The server log has the details.",
             icon=":material/error:")
    st.info("Fix the setting named above (environment variable or .streamlit/secrets.toml) and reload.")
    st.stop()

pages_dir = ROOT / "pages"
try_it = st.Page(pages_dir / "try_it.py", title="Try it", icon=":material/photo_camera:", default=True)
privacy = st.Page(pages_dir / "privacy.py", title="Privacy", icon=":material/shield_person:", url_path="privacy")
team = [
    st.Page(pages_dir / "survey.py", title="Survey", icon=":material/bar_chart:", url_path="survey"),
    st.Page(pages_dir / "labeling.py", title="Labeling", icon=":material/crop_free:", url_path="labeling"),
    st.Page(pages_dir / "models.py", title="Models", icon=":material/model_training:", url_path="models"),
]
page = st.navigation({"": [try_it, privacy], "Team": team})

account = st.session_state.get("account")
if page in team and account is None:
    st.title("Sign in")
    st.caption("The team pages are for the people who build facetype. Visitors: use **Try it**.")
    with st.form("sign_in"):
        name = st.text_input("Name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        signed_in = auth.authenticate(auth.load_accounts(), name, password)
        if signed_in is None:
            st.error("Wrong name or password.")
        else:
            st.session_state["account"] = signed_in
            st.session_state["annotator"] = signed_in.name
            st.rerun()
    st.stop()

if account is not None:
    with st.sidebar:
        st.caption(f"Signed in as **{account.name}** ({account.role})")
        if st.button("Sign out"):
            for key in ("account", "annotator"):
                st.session_state.pop(key, None)
            st.rerun()

page.run()
