"""The web server: Streamlit's ASGI app for ``app/main.py`` plus the team sign-in routes
(``app.team_routes``), releasing visitors' photos from the ``/media`` URLs when their visit ends
(``app.media_release``), and getting the first page ready while the first browser loads it.
Serve it with ``streamlit run app/web.py``."""

import contextlib
import importlib
import logging
import threading
from pathlib import Path

import streamlit as st
from streamlit import config

from app.core.settings import get_settings
from app.media_release import release_visitor_media
from app.team_routes import ROUTES
from models.warmup import freeze_loaded_objects


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


def serve_the_upload_limit() -> None:
    """Streamlit's server refuses any upload over its own ``server.maxUploadSize`` (MB, from
    .streamlit/config.toml or a ``--server.maxUploadSize`` flag), whatever an uploader allows. The app's
    limit, ``max_upload_mb`` (FACETYPE_MAX_UPLOAD_MB), sets it here, wherever the server is started
    (``make run``, the tests, the benches), so that the limit the pages say is the one the server keeps."""
    config.set_option("server.maxUploadSize", get_settings().max_upload_mb,
                      where_defined="FACETYPE_MAX_UPLOAD_MB (app.core.settings.max_upload_mb)")


serve_the_upload_limit()


import_ahead = threading.Thread(target=import_first_page_modules, name="facetype-import-ahead", daemon=True)
import_ahead.start()


def prepare_ahead() -> None:
    """As the server starts, once the imports above are done: the project's preparation (the
    database's migrations, the store: app.services.bootstrap), which the first script run does too
    (app/main.py: it says what fails) and then finds done: about a second less before the first page.
    Then what is loaded is frozen, so that the first page's post-run collection skips it."""
    import_ahead.join()
    try:
        from app.services.bootstrap import prepare

        prepare()
    except Exception as error:  # the first page prepares again and says what is wrong
        logging.getLogger(__name__).info("not prepared ahead: %s", error)
    freeze_loaded_objects()


@contextlib.asynccontextmanager
async def lifespan(asgi_app):
    """The server's start: get the first page ready on a thread; release visitors' media until it stops."""
    threading.Thread(target=prepare_ahead, name="facetype-prepare-ahead", daemon=True).start()
    async with release_visitor_media(asgi_app):
        yield


app = st.App(Path(__file__).with_name("main.py"), routes=ROUTES, lifespan=lifespan)
