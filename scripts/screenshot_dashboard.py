"""Take the README's screenshot of the dashboard on the demo data (``scripts/screenshot``).

Uses the same tooling as the browser tests: Playwright driving Debian's Chromium against the
dashboard served by ``marimo run`` over the reporting snapshot. Runs ``amili demo`` first
for the last ``--days`` days (default 3) when there is no snapshot yet: it creates the demo
warehouse and runs each day against the local sandbox; each run publishes the snapshot.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages
from amili.reporting.dashboard import REPO_ROOT, DashboardServer
from amili.settings import PipelineSettings, load, reporting_paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "dashboard.png")
    parser.add_argument("--snapshot", type=Path, default=None,
                        help="the reporting snapshot (default: data/reporting.duckdb)")
    parser.add_argument("--days", type=int, default=3,
                        help="days of demo data to run when there is no snapshot (default 3)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2200)
    args = parser.parse_args()

    snapshot = (args.snapshot or reporting_paths().reporting_db).resolve()
    if not snapshot.exists():
        last = datetime.now(ZoneInfo("Europe/Oslo")).date() - timedelta(days=1)
        if not (REPO_ROOT / load(PipelineSettings).warehouse).exists():  # ends at `last`
            subprocess.run([sys.executable, "-m", "amili.cli", "demo-warehouse"], check=True,
                           cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
        for back in range(args.days - 1, -1, -1):
            day = (last - timedelta(days=back)).isoformat()
            print(f"No snapshot at {snapshot}: running `amili demo --day {day}`...", flush=True)
            subprocess.run([sys.executable, "-m", "amili.cli", "demo", "--day", day],
                           check=True, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("No chromium: install Debian's (apt-get install chromium).", file=sys.stderr)
        return 1

    with DashboardServer(snapshot) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(server.url)
        page.locator('[data-figure="eligible_count"]').first.wait_for(timeout=120_000)
        page.wait_for_timeout(3000)  # the first outputs settle before a choice is made
        # open the drill-down of the most frequent reason (tick its row)
        reasons = page.get_by_role("table").filter(has_text="example_message")
        if reasons.count():
            reasons.first.get_by_role("row").nth(1).get_by_role(
                "checkbox", name="Select row").click()
            page.get_by_role("heading", name="object(s):").first.wait_for(timeout=30_000)
        page.get_by_role("heading", name="Amili reconciliation").scroll_into_view_if_needed()
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1500)  # let the last outputs paint
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        browser.close()
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
