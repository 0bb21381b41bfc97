"""Load test of the app: N concurrent gradio_client users, a bounded number of requests.

Starts ``app.py`` on a free localhost port (or uses --url), lets --users clients each send
--requests predictions of a photo back to back, and prints throughput, median and p95 latency and
the errors. Run it for a few concurrency settings to choose the app's queue limits:

    python benchmarks/load_test.py --users 4 --requests 10 [--concurrency 2 --queue 20] [--photo P]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.local_app import start_app  # noqa: E402


def user(url: str, photo: str, requests: int) -> list[tuple[float, str | None]]:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False)
    results = []
    for _ in range(requests):
        began = time.perf_counter()
        try:
            client.predict(handle_file(photo), api_name="/predict")
            results.append((time.perf_counter() - began, None))
        except Exception as error:  # what a user would see, counted by kind
            results.append((time.perf_counter() - began, type(error).__name__ + ": " + str(error)[:60]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="an app already running (default: start app.py here)")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--requests", type=int, default=10, help="per user")
    parser.add_argument("--concurrency", type=int, default=2, help="REALFAKE_CONCURRENCY for the started app")
    parser.add_argument("--queue", type=int, default=20, help="REALFAKE_QUEUE_SIZE for the started app")
    parser.add_argument("--photo", default=str(REPO / "examples" / "group.jpg"))
    args = parser.parse_args()

    if args.url:
        server, url = None, args.url
    else:
        server, url = start_app(
            Path(tempfile.gettempdir()) / "realfake-load-test-app.log",
            REALFAKE_CONCURRENCY=str(args.concurrency),
            REALFAKE_QUEUE_SIZE=str(args.queue),
        )
    try:
        user(url, args.photo, 2)  # warm-up
        start = time.perf_counter()
        with ThreadPoolExecutor(args.users) as pool:
            runs = list(pool.map(lambda _: user(url, args.photo, args.requests), range(args.users)))
        wall = time.perf_counter() - start
    finally:
        if server:
            server.terminate()
            server.wait(timeout=30)
    results = [r for run in runs for r in run]
    ok = [t for t, error in results if error is None]
    errors = Counter(error for _, error in results if error)
    print(
        f"{args.users} users x {args.requests} requests of {Path(args.photo).name}; "
        f"concurrency {args.concurrency}, queue {args.queue}"
    )
    print(f"throughput {len(ok) / wall:.2f} predictions/s over {wall:.1f} s")
    if ok:
        print(
            f"latency median {1000 * statistics.median(ok):.0f} ms, p95 {1000 * float(np.percentile(ok, 95)):.0f} ms"
        )
    print(
        f"errors {sum(errors.values())} of {len(results)}"
        + "".join(f"\n  {n} x {e}" for e, n in errors.items())
    )


if __name__ == "__main__":
    main()
