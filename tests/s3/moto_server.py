#!/usr/bin/env python3
"""Run moto's S3 server on 127.0.0.1 for pail's tests.

Usage: moto_server.py --port N   (N = 0 picks a free port)

Prints exactly one line, ``PORT=<n>``, to stdout once the socket is
listening; everything else (werkzeug request log, moto messages) goes to
stderr.

The server is single-threaded on purpose: moto checks If-Match /
If-None-Match and then stores the object in two separate steps, so only one
request at a time makes those conditional writes atomic. Single-threaded
werkzeug also answers with HTTP/1.0 and closes each connection, so an idle
keep-alive client can't block everyone else.
"""

import argparse
import os
import signal
import sys

# Keep the real stdout for the single PORT= line; send any other print()
# (moto prints some diagnostics to stdout) to stderr.
_real_stdout = sys.stdout
sys.stdout = sys.stderr

from werkzeug.serving import make_server  # noqa: E402

from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    args = parser.parse_args()

    # moto 5.2's DomainDispatcherApplication takes no `service` argument: it
    # picks the backend per request from the SigV4 credential scope
    # (".../us-east-1/s3/aws4_request") and falls back to S3 for unsigned
    # requests, so a plain curl PUT also reaches S3.
    app = DomainDispatcherApplication(create_backend_app)

    # make_server is what werkzeug.serving.run_simple(host, port, app,
    # threaded=False) calls internally (minus the banner and reloader). Calling
    # it directly lets werkzeug bind port 0 itself and tell us the real port,
    # with no window for another process to take it. MotoRequestHandler keeps
    # header names with underscores (S3 user metadata), as `moto_server` does.
    server = make_server(
        "127.0.0.1", args.port, app, threaded=False, request_handler=MotoRequestHandler
    )
    port = server.server_port
    os.environ["MOTO_PORT"] = str(port)  # moto builds self-referencing URLs from it

    # Exit cleanly on SIGTERM (stop.sh) as well as SIGINT.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    # The socket is already listening (make_server binds and listens), so
    # clients may connect as soon as they read this line.
    _real_stdout.write(f"PORT={port}\n")
    _real_stdout.flush()

    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
