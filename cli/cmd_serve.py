"""``mr-engine serve``: run the delivery agent (LMTP, HTTP) until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse

from mr_engine.delivery import workers
from mr_engine.delivery.listeners import ListenError
from mr_engine.logs import setup_logging

from .common import add_config_flags, announce_new_store, fail, settings_from


def add_parser(sub) -> None:
    parser = sub.add_parser("serve", help="run the LMTP delivery agent")
    add_config_flags(parser)
    parser.add_argument("--lmtp-listen", metavar="ADDR[,ADDR]",
                        help="host:port or unix:/path addresses (MR_ENGINE_LMTP_LISTEN)")
    parser.add_argument("--http-listen", metavar="ADDR[,ADDR]",
                        help="host:port or unix:/path addresses for HTTP, empty for none "
                             "(MR_ENGINE_HTTP_LISTEN)")
    parser.add_argument("--workers", metavar="N",
                        help="server processes, or auto for one per CPU (MR_ENGINE_WORKERS)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # First thing: from here on SIGTERM/SIGINT wait for serve's handlers instead of ending
    # it half-started by the signal (see delivery.workers).
    workers.hold_stop_signals()
    settings = settings_from(args, lmtp_listen=args.lmtp_listen, http_listen=args.http_listen,
                             workers=args.workers)
    setup_logging(settings.log_level, settings.log_format, settings.log_target)
    announce_new_store(settings)
    try:
        return workers.serve(settings)
    except ListenError as exc:
        return fail(f"cannot listen on {exc.strerror}")
