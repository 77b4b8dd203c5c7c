"""``dea reports``: serve the lake's reports (gate Data Docs, summaries, plots, runs) over http.

Read-only, on 127.0.0.1:4201 by default (``settings.REPORTS_HOST``/``REPORTS_PORT``: where the
flows' artifacts link to, ``settings.reports_url``); until Ctrl-C or SIGTERM. No Prefect needed.
"""

from __future__ import annotations

import argparse
import ipaddress


def register(sub: argparse._SubParsersAction) -> None:
    from flows.settings import REPORTS_HOST, REPORTS_PORT

    p = sub.add_parser("reports", help="serve the lake's reports (Data Docs, gate summaries and plots, runs) "
                                       f"read-only over http (default http://{REPORTS_HOST}:{REPORTS_PORT})")
    p.add_argument("--host", default=REPORTS_HOST, help=f"address to listen on (default: {REPORTS_HOST})")
    p.add_argument("--port", type=int, default=REPORTS_PORT,
                   help=f"port (default: {REPORTS_PORT}; 0: a free one, printed)")
    p.add_argument("--home", default=argparse.SUPPRESS, help="lake root (as `dea --home`; default: $DEA_HOME or ./.dea)")
    p.set_defaults(func=cmd_reports)


def cmd_reports(args) -> int:
    from features.lake import Lake
    from features.storage import is_local
    from flows.report_server import make_server
    from flows.settings import reports_url

    lake = Lake.default(args.home)
    if not is_local(lake.root):
        raise ValueError(f"dea reports serves a local lake; {lake.root} is an object store: copy its reports "
                         f"down first (aws s3 sync {lake.root}/validation ./reports/validation) and serve that "
                         f"folder with `dea reports --home ./reports`")
    try:
        server = make_server(lake.root, args.host, args.port)
    except OSError as e:                       # the port is taken, the address is not ours (one line, exit 2)
        raise PermissionError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}/"
    print(f"dea reports: {url}  (lake {lake.root}: validation/, runs/; Ctrl-C to stop)", flush=True)
    if not ipaddress.ip_address(host).is_loopback:
        print(f"warning: listening on {host}: anyone who reaches this address reads the lake's reports "
              f"(no authentication); keep it on 127.0.0.1 behind a proxy that has some", flush=True)
    linked = reports_url(lake.root, lake.root / "validation").removesuffix("validation")
    if linked != url:
        print(f"note: the flows' links point at {linked}; export DEA_REPORTS_URL={url.rstrip('/')} where the "
              f"flows run for them to reach this server", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):    # Ctrl-C; SIGTERM (the cli turns it into SystemExit): a clean stop
        pass
    finally:
        server.server_close()
    print("dea reports: stopped", flush=True)
    return 0
