"""Photos a second and peak memory of ``predict`` in one process against ``batch`` on Ray Data.

On a few hundred photos of ../shared/data/faces (an even spread over its sources, real and fake),
each variant runs in its own fresh process:

  predict    Detector.predict_files over the files in one process, torch on every core
  ray xN     realfake.batch.run_batch on a local Ray with N actors, the cores shared among them

and prints, for each, the photos a second end to end (model loading and Ray's start included) and
once the first tenth of the rows are back (the rate a long run settles at), and the peak memory: the process's
own peak RSS for predict; for Ray, the peak of the sum of the proportional set sizes (PSS: shared
pages counted once) of the driver and every Ray process, and the peak RSS of one actor (what each
more actor costs). It also compares every photo's faces with predict's: how many photos got another
verdict, and the largest difference in P(fake) and in a box coordinate.

    python benchmarks/bench_batch.py [--photos 300] [--actors 1 2] [--faces ../shared/data/faces]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
FACES = REPO.parent / "shared" / "data" / "faces"


def pick_photos(faces: Path, n: int, folder: Path) -> Path:
    """n photos spread evenly over the sources of faces/metadata.csv, linked into folder."""
    with open(faces / "metadata.csv", newline="") as file:
        rows = sorted(csv.DictReader(file), key=lambda row: row["file_name"])
    by_source: dict[str, list[str]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row["file_name"])
    picked: list[str] = []
    while len(picked) < n and any(by_source.values()):
        for names in by_source.values():
            if names and len(picked) < n:
                picked.append(names.pop(len(names) // 2))
    for i, name in enumerate(sorted(picked)):
        (folder / f"{i:05d}-{Path(name).name}").symlink_to((faces / name).resolve())
    return folder


class MemorySampler:
    """The peak of the PSS summed over this process and Ray's, and the peak RSS of one actor."""

    def __init__(self, every: float = 0.5) -> None:
        import psutil

        self.psutil, self.every = psutil, every
        self.total_pss = self.actor_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            total = 0
            for process in self.psutil.process_iter(["pid", "name", "cmdline"]):
                try:
                    title = " ".join(process.info["cmdline"] or [])
                    if process.info["pid"] != me and not _is_ray(process.info["name"] or "", title):
                        continue
                    total += process.memory_full_info().pss
                    if "MapWorker" in title:
                        self.actor_rss = max(self.actor_rss, process.memory_info().rss)
                except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                    continue
            self.total_pss = max(self.total_pss, total)
            self._stop.wait(self.every)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _is_ray(name: str, title: str) -> bool:
    return title.startswith("ray::") or name in ("raylet", "gcs_server") or "ray/_private" in title


def settled_rate(arrivals: list[tuple[float, int]], ended: float, n: int) -> float:
    """Photos a second after the first tenth of them came back: the rate without the start-up."""
    at, done = next((t, k) for t, k in arrivals if k >= n / 10)
    return (n - done) / (ended - at) if ended > at else float("nan")


def run_predict(folder: Path) -> dict:
    """Child process: predict_files over the folder."""
    from realfake.folders import find_images
    from realfake.pipeline import load_detector

    started = time.perf_counter()
    detector = load_detector(device="cpu")
    files = find_images(folder)
    faces, arrivals = {}, []
    for result in detector.predict_files(files):
        faces[Path(result.path).name] = [face.to_dict() for face in result.faces]
        arrivals.append((time.perf_counter(), len(faces)))
    ended = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "seconds": ended - started,
        "settled": settled_rate(arrivals, ended, len(files)),
        "peak": peak,
        "faces": faces,
        "n": len(files),
    }


def run_ray(folder: Path, actors: int) -> dict:
    """Child process: run_batch over the folder on a local Ray with this many actors."""
    from realfake.batch import read_output, run_batch

    cores = os.cpu_count() or 1
    started = time.perf_counter()
    arrivals: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory() as out, MemorySampler() as memory:
        report = run_batch(
            str(folder),
            Path(out) / "run",
            workers=actors,
            cpus_per_worker=max(1, cores // actors),
            shard_rows=1,
            on_shard=lambda path, rows: arrivals.append((time.perf_counter(), rows)),
        )
        ended = time.perf_counter()
        rows = read_output(Path(out) / "run").to_pylist()
    return {
        "seconds": ended - started,
        "settled": settled_rate(arrivals, ended, report.judged),
        "peak": memory.total_pss,
        "actor_rss": memory.actor_rss,
        "faces": {Path(row["path"]).name: row["faces"] for row in rows},
        "n": report.judged,
    }


def child(args: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=REPO, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def agreement(a: dict, b: dict) -> tuple[int, float, float]:
    """Photos whose faces differ in number or verdict, the largest difference in P(fake) and the
    largest in a box coordinate (px), between two runs' faces by photo."""
    differ, score, box = 0, 0.0, 0.0
    for name, faces in a.items():
        other = b.get(name)
        if other is None or len(other) != len(faces):
            differ += 1
            continue
        differ += any(mine["verdict"] != theirs["verdict"] for mine, theirs in zip(faces, other))
        for mine, theirs in zip(faces, other):
            score = max(score, abs(mine["fake_probability"] - theirs["fake_probability"]))
            box = max(box, *(abs(x - y) for x, y in zip(mine["box"], theirs["box"])))
    return differ, score, box


def cpu_name() -> str:
    """The CPU's model name, and whether it has AMX (fast bfloat16 and int8) or only AVX-512 / AVX2."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    name = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?"
    )
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    kind = (
        "AMX"
        if "amx_int8" in flags
        else "AVX-512"
        if "avx512f" in flags
        else "AVX2"
        if "avx2" in flags
        else "no AVX2"
    )
    return f"{name} ({kind})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--faces", type=Path, default=FACES)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, folder, *rest = args.child
        result = run_predict(Path(folder)) if kind == "predict" else run_ray(Path(folder), int(rest[0]))
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = pick_photos(args.faces, args.photos, Path(tmp))
        print(f"{args.photos} photos from {args.faces}; {os.cpu_count()} cores; {cpu_name()}")
        baseline = child(["predict", str(folder)])
        results = {"predict, one process": baseline}
        for actors in args.actors:
            results[f"ray, {actors} actor{'s' * (actors != 1)}"] = child(["ray", str(folder), str(actors)])
        print(
            f"{'variant':<22} {'photos/s':>9} {'settled':>8} {'peak MB':>8} {'per actor':>10} "
            f"{'verdicts differ':>16} {'max |dP|':>9} {'max box px':>11}"
        )
        for name, r in results.items():
            per_actor = f"{r['actor_rss'] / 2**20:.0f}" if "actor_rss" in r else "-"
            differ, score, box = agreement(baseline["faces"], r["faces"])
            print(
                f"{name:<22} {r['n'] / r['seconds']:>9.2f} {r['settled']:>8.2f} {r['peak'] / 2**20:>8.0f} "
                f"{per_actor:>10} {differ:>16} {score:>9.2g} {box:>11.2g}"
            )


if __name__ == "__main__":
    main()
