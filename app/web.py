"""The web server: Streamlit's ASGI app for ``app/main.py`` plus the team sign-in routes
(``app.team_routes``), releasing visitors' photos from the ``/media`` URLs when their visit ends
(``app.media_release``). Serve it with ``streamlit run app/web.py``."""

import importlib
import logging
import threading
from pathlib import Path

import streamlit as st

from app.media_release import release_visitor_media
from app.team_routes import ROUTES
from models.warmup import freeze_loaded_objects

app = st.App(Path(__file__).with_name("main.py"), routes=ROUTES, lifespan=release_visitor_media)

#: What app/main.py and the Try it page import (not torch: see models.warmup). Imported on a thread as
#: the server starts, while the first browser loads the page and connects, so that its first script
#: run finds them imported. Not streamlit_webrtc: its component must be declared inside a script run
#: (imported on this thread, its camera never showed).
FIRST_PAGE_MODULES = ("app.services.bootstrap", "app.services.analysis", "app.services.cards",
                      "app.services.framing", "app.services.gallery", "app.services.submissions", "pandas")


def import_first_page_modules() -> None:
    for name in FIRST_PAGE_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as error:  # the page says what is missing, where it imports it
            logging.getLogger(__name__).warning("not imported ahead: %s (%s)", name, error)
    freeze_loaded_objects()  # the first page's post-run collection then skips these modules


threading.Thread(target=import_first_page_modules, name="facetype-import-ahead", daemon=True).start()
