"""How long the viewer takes to open a study of ~3000 trials (issue 5: under two seconds).

Times, side by side and as medians of several runs, on the same study in SQLite and in a journal
file: loading the study into the data model, and opening the viewer headlessly up to its first
full screen (construct the app, load, mount, fill the table, render). Run:

    python benchmarks/bench_viewer.py [--trials 3000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", help="keep the generated studies here and reuse them on the next run")
    args = parser.parse_args()

    from test_tui_model import write_study

    from explorer.search.results import StudySource

    tmp = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="normx-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    urls = {"sqlite": f"sqlite:///{tmp / 'study.db'}", "journal": f"journal:{tmp / 'study.log'}"}
    for kind, url in urls.items():
        if (tmp / ("study.db" if kind == "sqlite" else "study.log")).exists():
            continue
        started = time.perf_counter()
        write_study(url, n=args.trials, running=4)
        print(f"wrote {args.trials + 4} trials to {kind} in {time.perf_counter() - started:.1f} s", flush=True)

    async def open_viewer(url: str) -> tuple[float, float]:
        """(seconds to the first full screen, seconds until every row is in the table)."""
        from explorer.tui.app import StudyApp

        started = time.perf_counter()
        app = StudyApp(StudySource(url, "demo"), refresh_s=None)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            first = app.first_paint_at - started
            assert app.table.row_count > 20
            while app.table.filling:
                await pilot.pause(0.01)
            assert app.table.row_count == args.trials + 4
            filled = time.perf_counter() - started
        return first, filled

    print(f"\nmedian of {args.repeats} runs (min), seconds")
    print(f"{'storage':<8} {'load model':>15} {'viewer: first screen':>22} {'all rows in table':>20}")
    for kind, url in urls.items():
        loads, firsts, fills = [], [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            data = StudySource(url, "demo").load()
            loads.append(time.perf_counter() - started)
            assert len(data.rows) == args.trials + 4
            first, filled = asyncio.run(open_viewer(url))
            firsts.append(first)
            fills.append(filled)

        def cell(values: list[float], width: int) -> str:
            return f"{statistics.median(values):.3f} ({min(values):.3f})".rjust(width)

        print(f"{kind:<8} {cell(loads, 15)} {cell(firsts, 22)} {cell(fills, 20)}")


if __name__ == "__main__":
    main()
