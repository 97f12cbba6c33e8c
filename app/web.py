"""The web server: Streamlit's ASGI app for ``app/main.py`` plus the team sign-in routes
(``app.team_routes``). Serve it with ``streamlit run app/web.py``."""

from pathlib import Path

import streamlit as st

from app.team_routes import ROUTES

app = st.App(Path(__file__).with_name("main.py"), routes=ROUTES)
