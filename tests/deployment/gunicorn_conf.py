"""gunicorn settings for the deployment test: tell the test, on stdout, when it may start."""

import sys


def when_ready(server: object) -> None:
    # The one line the test waits for; gunicorn's own log goes to stderr.
    sys.stdout.write("ETCHER-WEB-READY\n")
    sys.stdout.flush()
