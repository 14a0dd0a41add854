"""The FiftyOne App on a run's dataset, for ``pipeline inspect``.

The App is a web server (FiftyOne starts it in a subprocess) that listens on
``inspect.address``:``inspect.port``, 127.0.0.1:5151 by default, so only this machine reaches
it; from another machine, forward the port over ssh. ``--remote`` listens on every interface
(0.0.0.0) instead: anyone who can reach the machine then sees the dataset. No browser is opened
(the command usually runs on a machine without one): it prints the URL and serves until Ctrl-C.
"""

from __future__ import annotations

import errno
import logging
import socket
from types import ModuleType

from pipeline.config import InspectConfig
from pipeline.inspection.database import connect
from pipeline.inspection.errors import InspectionError

logger = logging.getLogger(__name__)

ALL_INTERFACES = "0.0.0.0"


def app_address(config: InspectConfig, remote: bool = False,
                port: int | None = None) -> tuple[str, int]:
    """``(address, port)`` the App listens on: the config's, every interface with ``remote``,
    and ``port`` when given."""
    address = ALL_INTERFACES if remote else config.address
    return address, config.port if port is None else port


def instructions(dataset_name: str, address: str, port: int) -> str:
    """What to open, on this machine and from another one."""
    host = socket.gethostname()
    if address == ALL_INTERFACES:
        return (f"FiftyOne App on dataset {dataset_name!r}: http://127.0.0.1:{port}/ here, "
                f"http://{host}:{port}/ from other machines (listening on every interface)\n"
                "Ctrl-C stops it")
    return (f"FiftyOne App on dataset {dataset_name!r}: http://{address}:{port}/\n"
            f"from another machine: run `ssh -N -L {port}:{address}:{port} USER@{host}` there "
            f"and open http://localhost:{port}/\n"
            "Ctrl-C stops it")


def check_port(address: str, port: int) -> None:
    """Raise :class:`InspectionError` when ``address:port`` cannot be listened on (FiftyOne
    itself would wait a minute and then fail with a server traceback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the App's server does: a port a closed App left in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            why = "is in use (another App?)" if exc.errno == errno.EADDRINUSE else \
                f"cannot be used ({exc.strerror})"
            raise InspectionError(f"{address}:{port} {why}; choose another port with --port "
                                  "or inspect.port") from None


def launch(fo: ModuleType, dataset, address: str, port: int):
    """Start the App on ``dataset`` and return its FiftyOne session."""
    check_port(address, port)
    # FiftyOne would print its own banner and remote-session advice; instructions() says it.
    logging.getLogger("fiftyone.core.session.session").setLevel(logging.WARNING)
    # remote=True: never try to open a browser (a text browser may take over the terminal).
    return fo.launch_app(dataset, address=address, port=port, remote=True)


def serve(dataset_name: str, database_dir: str | None, address: str, port: int) -> None:
    """Launch the App on the dataset and serve it until Ctrl-C."""
    fo = connect(database_dir)
    session = launch(fo, fo.load_dataset(dataset_name), address, port)
    print(instructions(dataset_name, address, port), flush=True)
    try:
        session.wait(-1)          # -1: keep serving when the last browser tab closes
    except KeyboardInterrupt:
        logger.info("App stopped")
    finally:
        session.close()
