"""facetype: the Streamlit script (served with its sign-in routes by ``streamlit run app/web.py``).

Who is signed in comes from the session cookie on every run (``pages.team_account.acting_account``),
never from the Streamlit session alone; the sidebar lists only the pages the visitor's role may open.
"""

import logging
import threading
from html import escape
from pathlib import Path
from urllib.parse import urlencode

import streamlit as st

from app.core import auth  # the project is installed into the venv (`make venv`): no sys.path edit
from app.core.settings import SettingsError, get_settings
from app.services.bootstrap import ConfigurationError, prepare
from app.team_routes import SIGN_IN_PATH, SIGN_OUT_PATH
from models import warmup
from pages.team_account import acting_account

ROOT = Path(__file__).resolve().parents[1]
SIGN_IN_PROBLEMS = {
    "failed": "Wrong name or password.",
    "throttled": "Too many failed sign-ins from this name or this computer. Wait a few minutes and try again.",
}

st.set_page_config(page_title="facetype", page_icon=str(ROOT / "app" / "assets" / "favicon.png"), layout="wide")

#: A file an uploader refuses (over the upload limit, a type it does not take) gets only a red mark on its chip;
#: Streamlit's reason ("File must be 10.0MB or smaller.") is in a hover tooltip and a visually hidden alert,
#: which no phone can hover. This shows that alert as a line under the file's name, on every page.
REFUSED_FILE_STYLE = """<style>
[data-testid="stFileChips"] :has(> [role="alert"]) { flex-wrap: wrap; height: auto; max-width: 100%; }
[data-testid="stFileChips"] [role="alert"] {
  position: static; width: auto; height: auto; margin: 0.2rem 0 0; padding: 0; overflow: visible;
  clip: auto; white-space: normal; flex-basis: 100%; font-size: 0.875rem; line-height: 1.3;
  color: rgb(125, 53, 59);
}
</style>"""
st.html(REFUSED_FILE_STYLE)


@st.cache_resource(show_spinner="Preparing the database and the sample project…")
def prepare_once(database_url: str, storage_url: str) -> None:
    prepare()


try:
    settings = get_settings()
    prepare_once(settings.resolved_database_url, settings.resolved_storage_url)
except (ConfigurationError, SettingsError) as error:
    logging.getLogger("facetype").error("facetype cannot start: %s", error)  # the detail: operators only
    st.error(f"**facetype cannot start.** {error.public_message} The server log has the details.",
             icon=":material/error:")
    st.info("Fix the setting named above (environment variable or .streamlit/secrets.toml) and reload.")
    st.stop()

account = acting_account()
if account is None:
    st.session_state.pop("account", None)
    st.session_state.pop("annotator", None)
else:  # the pages read these; refreshed from the cookie on every run
    st.session_state["account"] = account
    st.session_state["annotator"] = account.name

pages_dir = ROOT / "pages"
try_it = st.Page(pages_dir / "try_it.py", title="Try it", icon=":material/photo_camera:", default=True)
privacy = st.Page(pages_dir / "privacy.py", title="Privacy", icon=":material/shield_person:", url_path="privacy")
explore = st.Page(pages_dir / "explore.py", title="Explore the types", icon=":material/explore:", url_path="explore")
#: Team pages with the least role that sees them; the others stay reachable by address (hidden), where
#: they show the sign-in form or say which role they need.
#: Each address is its script's name: AppTest's switch_page finds a page by that name.
TEAM_PAGES = [  # script, title, icon, address, least role
    ("survey.py", "Survey", ":material/bar_chart:", "survey", "annotator"),
    ("labeling.py", "Labeling", ":material/crop_free:", "labeling", "annotator"),
    ("labeling_import.py", "Import photos", ":material/add_photo_alternate:", "labeling_import", "lead"),
    ("labeling_quality.py", "Labeling quality", ":material/fact_check:", "labeling_quality", "annotator"),
    ("labeling_exchange.py", "Export / import boxes", ":material/swap_horiz:", "labeling_exchange", "annotator"),
    ("labeling_retrain.py", "Retrain", ":material/model_training:", "labeling_retrain", "annotator"),
    ("models.py", "Models", ":material/model_training:", "models", "annotator"),  # training/promoting: lead/admin
]
team = [
    st.Page(pages_dir / script, title=title, icon=icon, url_path=address,
            visibility="visible" if auth.has_role(account, role) else "hidden")
    for script, title, icon, address, role in TEAM_PAGES
]
page = st.navigation({"": [try_it, explore, privacy], "Team": team} if account else [try_it, explore, privacy, *team])


def here() -> str:
    """This page's address, to come back to after signing in or out."""
    query = {k: v for k, v in st.query_params.to_dict().items() if k not in {"sign_in"}}
    path = "/" + (page.url_path or "")
    return path + (f"?{urlencode(query)}" if query else "")


def form_html(action: str, fields: str, button: str) -> str:
    """A plain HTML form posting to one of app.web's routes (only a route can set an HttpOnly cookie)."""
    return (
        f'<form method="post" action="{action}" style="display:flex;flex-direction:column;gap:0.6rem;max-width:22rem">'
        f'<input type="hidden" name="return_to" value="{escape(here())}">{fields}'
        f'<button type="submit" style="padding:0.45rem 1rem;border-radius:0.5rem;border:1px solid #ff4b4b;'
        f'background:#ff4b4b;color:white;font-weight:600;cursor:pointer;align-self:flex-start">{button}</button></form>'
    )


INPUT_STYLE = "padding:0.45rem;border-radius:0.5rem;border:1px solid #ccc;font-size:1rem"
role_needed = {address: role for *_, address, role in TEAM_PAGES}.get(page.url_path)
if role_needed and account is None:
    st.title("Sign in")
    st.caption("The team pages are for the people who build facetype. Visitors: use **Try it**.")
    problem = SIGN_IN_PROBLEMS.get(st.query_params.get("sign_in", ""))
    if problem:
        st.error(problem)
    st.html(form_html(SIGN_IN_PATH, (
        f'<label>Name<br><input name="account" autocomplete="username" required maxlength="64" style="{INPUT_STYLE}"></label>'
        f'<label>Password<br><input name="secret" type="password" autocomplete="current-password" required '
        f'style="{INPUT_STYLE}"></label>'), "Sign in"))
    st.stop()
if role_needed and not auth.has_role(account, role_needed):
    st.title(page.title)
    st.warning(f"This page is for the {role_needed} role and above; {account.name} is {account.role}.")
    st.stop()

if account is not None:
    with st.sidebar:
        st.caption(f"Signed in as **{account.name}** ({account.role})")
        st.html(form_html(SIGN_OUT_PATH, "", "Sign out"))

# Threads, face gate and served model, once per process: loaded beside the pages, not on the first photo;
# the loading begins when the first page is drawn, which then does not share the CPU with torch's import.
page_drawn = threading.Event()
warmup.start(after=page_drawn)
try:
    page.run()
finally:
    page_drawn.set()
