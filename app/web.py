"""The web server: Streamlit's ASGI app for ``app/main.py`` plus the team sign-in routes
(``app.team_routes``), releasing visitors' photos from the ``/media`` URLs when their visit ends
(``app.media_release``). Serve it with ``streamlit run app/web.py``."""

from pathlib import Path

import streamlit as st

from app.media_release import release_visitor_media
from app.team_routes import ROUTES

app = st.App(Path(__file__).with_name("main.py"), routes=ROUTES, lifespan=release_visitor_media)
