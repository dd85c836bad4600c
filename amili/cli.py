"""``amili``: the project's command line.

Each subcommand is a thin wrapper: parsing arguments here, the work in the module it names,
so everything is reachable from Python and from tests without a shell.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import date

from amili.sandbox.settings import SandboxSettings
from amili.settings import SettingsError, load


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from amili.sandbox.server import serve

    overrides: dict[str, object] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.db is not None:
        overrides["db_path"] = args.db
    if args.ack_only:
        overrides["ack_only"] = True
    if args.fault:
        overrides["faults"] = [json.loads(rule) for rule in args.fault]
    serve(load(SandboxSettings, **overrides))
    return 0


def _cmd_sandbox_token(args: argparse.Namespace) -> int:
    from amili.sandbox.tokens import issue_token

    print(issue_token(load(SandboxSettings), subject=args.subject, ttl_seconds=args.ttl))
    return 0


def _cmd_ping(args: argparse.Namespace) -> int:
    from amili.client import AmiliClient

    with AmiliClient.from_env() as client:
        print(json.dumps(client.ping(), default=str))
    return 0


def _cmd_api_demo(args: argparse.Namespace) -> int:
    from amili.api_demo import run_api_demo

    run_api_demo(out=sys.stdout)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    # The one command of this package that drives Dagster; imported only when asked for.
    from orchestration.daily_demo import DemoError, run_pipeline_demo

    try:
        return 0 if run_pipeline_demo(out=sys.stdout, day=args.day,
                                      ephemeral=args.ephemeral) else 1
    except DemoError as exc:
        print(f"amili demo: {exc}", file=sys.stderr)
        return 2
    except SettingsError:
        raise
    except Exception as exc:
        if args.verbose:
            raise
        # what failed outside the Dagster run (the warehouse, the sandbox, dbt's parse...):
        # its message, not a traceback (--verbose shows it)
        print(f"amili demo: failed: {type(exc).__name__}: {exc} (run with -v for the "
              "traceback)", file=sys.stderr)
        return 1


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from amili.reporting.dashboard import serve

    return serve(port=args.port, reporting_db=args.snapshot)


def _cmd_demo_warehouse(args: argparse.Namespace) -> int:
    from amili.pipeline.postgres_source import is_database_url, mask_url
    from amili.settings import PipelineSettings
    from amili.warehouse import export_parquet, generate_demo_warehouse

    path = args.path or load(PipelineSettings).warehouse
    if is_database_url(path):  # AMILI_WAREHOUSE names the server: build the file beside
        path = "data/warehouse.duckdb"
    summary = generate_demo_warehouse(
        path if not args.parquet else f"{path.rstrip('/')}.duckdb",
        days=args.days,
        invoices_per_day=args.invoices_per_day,
        bad_share=args.bad_share,
        seed=args.seed,
    )
    print(summary.render())
    if args.parquet:
        files = export_parquet(summary.path, path)
        print(f"Parquet folder {path}: {', '.join(f.name for f in files)}")
    if args.postgres:
        from amili.warehouse.postgres import load_into_postgres

        counts = load_into_postgres(summary.path, args.postgres)
        print(f"Loaded into {mask_url(args.postgres)}: "
              + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amili",
        description="Hand overdue receivables to Amili AutoCollect (Batch API).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sandbox = commands.add_parser(
        "sandbox", help="serve the local sandbox of the Amili Batch API until stopped"
    )
    sandbox.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
    sandbox.add_argument("--db", help="SQLite file for received batches (default: in memory)")
    sandbox.add_argument(
        "--ack-only", action="store_true",
        help="lean mode for benchmarks: acknowledge every batch without validating or storing",
    )
    sandbox.add_argument(
        "--fault", action="append", metavar="JSON",
        help='inject a fault, e.g. \'{"kind": "status", "status": 503, "times": 2}\' '
        "(repeatable; see docs/sandbox-assumptions.md)",
    )
    sandbox.set_defaults(handler=_cmd_sandbox)

    token = commands.add_parser(
        "sandbox-token", help="print a bearer token the local sandbox accepts"
    )
    token.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")
    token.add_argument("--subject", default="sandbox-client", help="the token's subject")
    token.set_defaults(handler=_cmd_sandbox_token)

    ping = commands.add_parser("ping", help="call GET /webapi/api/Ping with the AMILI_* settings")
    ping.set_defaults(handler=_cmd_ping)

    warehouse = commands.add_parser(
        "demo-warehouse", help="write a demo accounts-receivable warehouse (DuckDB file)"
    )
    warehouse.add_argument("--days", type=int, default=30, help="collection days (default 30)")
    warehouse.add_argument(
        "--invoices-per-day", type=int, default=200,
        help="invoices that become eligible for collection each day (default 200)",
    )
    warehouse.add_argument(
        "--bad-share", type=float, default=0.05,
        help="share of eligible invoices with one deliberate defect (default 0.05)",
    )
    warehouse.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    warehouse.add_argument(
        "--path", help="where to write it (default: AMILI_WAREHOUSE or data/warehouse.duckdb)"
    )
    warehouse.add_argument(
        "--parquet", action="store_true",
        help="also export a folder of <table>.parquet files at --path (the DuckDB file is "
        "written beside it as <path>.duckdb)",
    )
    warehouse.add_argument(
        "--postgres", metavar="URL",
        help="also load it into this PostgreSQL database, e.g. "
        "postgresql://user@host/db?schema=erp (password from the URL or PGPASSWORD)",
    )
    warehouse.set_defaults(handler=_cmd_demo_warehouse)

    demo = commands.add_parser(
        "demo",
        help="run the whole daily chain for one day on the embedded defaults (demo warehouse, "
        "local sandbox) and print the reconciliation",
    )
    demo.add_argument(
        "--day", type=date.fromisoformat, default=None,
        help="the partition, YYYY-MM-DD (default: yesterday in Europe/Oslo)",
    )
    demo.add_argument(
        "--ephemeral", action="store_true",
        help="run in a throwaway Dagster instance, forgotten when the demo ends (default: "
        "$DAGSTER_HOME, or the project's dagster_home/, so the Dagster UI shows the run)",
    )
    demo.set_defaults(handler=_cmd_demo)

    dashboard = commands.add_parser(
        "dashboard",
        help="serve the analysts' reconciliation dashboard (marimo) on 127.0.0.1; it reads "
        "only the reporting snapshot, never the pipeline's database",
    )
    dashboard.add_argument("--port", type=int, default=2718, help="port (default 2718)")
    dashboard.add_argument(
        "--snapshot", default=None,
        help="the reporting snapshot to read (default: AMILI_REPORTING_DB or "
        "data/reporting.duckdb beside the pipeline database)",
    )
    dashboard.set_defaults(handler=_cmd_dashboard)

    api_demo = commands.add_parser(
        "api-demo", help="start a sandbox, post a small valid batch, print what came back"
    )
    api_demo.set_defaults(handler=_cmd_api_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    try:
        return int(args.handler(args) or 0)
    except SettingsError as exc:
        print(f"amili: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
