"""The frozen app's entry point: the `npu-studio` command, plus the job worker.

A one-folder build has no ``python`` to run ``python -m studio.core.jobs.worker`` with, so the
studio's job client starts the app's own executable with ``WORKER_FLAG`` instead
(``studio.core.jobs.client.worker_command``); this script routes that to the worker's ``main``.
"""

from __future__ import annotations

import sys


def main() -> int:
    from studio.core.jobs.client import WORKER_FLAG

    if len(sys.argv) > 1 and sys.argv[1] == WORKER_FLAG:
        from studio.core.jobs.worker import main as worker_main

        del sys.argv[1]
        return worker_main()
    from studio.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
