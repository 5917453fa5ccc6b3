"""Scenario `classify`: the real classifier, in this process, pinned to one CPU; texts per second of
that thread's CPU time (what one core does, whatever else the machine runs) and of wall time. Also a
cProfile of the same work, top 25 by cumulative time, in results/classify_profile.txt."""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import time
from pathlib import Path
from typing import Any

from benchmarks import corpus
from benchmarks.common import CONFIG_DIR, RESULTS_DIR, Figure, err

TARGET = 20_000.0
PROFILE_FILE = RESULTS_DIR / "classify_profile.txt"


def run(
    n_texts: int = 2000, min_seconds: float = 5.0, profile_file: Path = PROFILE_FILE
) -> tuple[list[Figure], dict[str, Any]]:
    from watchcentre.adapters.config_files import load_config
    from watchcentre.bootstrap import build_classifier

    classifier = build_classifier(load_config(CONFIG_DIR))
    texts = corpus.texts(n_texts)
    mean_bytes = sum(len(s.encode()) + len(b.encode()) for s, b in texts) / len(texts)
    cpus = os.sched_getaffinity(0)
    cpu = max(cpus)
    os.sched_setaffinity(0, {cpu})
    try:
        for subject, body in texts:  # warm-up: one pass
            classifier.classify(subject, body)
        done, start, cpu_start = 0, time.perf_counter(), time.thread_time()
        while (elapsed := time.perf_counter() - start) < min_seconds:
            for subject, body in texts:
                classifier.classify(subject, body)
            done += len(texts)
        cpu_seconds = time.thread_time() - cpu_start
        rate, wall_rate = done / cpu_seconds, done / elapsed

        profiler = cProfile.Profile()
        profiler.enable()
        for subject, body in texts:
            classifier.classify(subject, body)
        profiler.disable()
    finally:
        os.sched_setaffinity(0, cpus)

    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.strip_dirs().sort_stats(pstats.SortKey.CUMULATIVE).print_stats(25)
    profile_file.parent.mkdir(parents=True, exist_ok=True)
    profile_file.write_text(
        f"cProfile of {len(texts)} classifier.classify(subject, body) calls, top 25 by cumulative time\n"
        + stream.getvalue(),
        encoding="utf-8",
    )
    err.print(
        f"classify: {done} texts in {elapsed:.2f} s wall, {cpu_seconds:.2f} s CPU, on CPU {cpu};"
        f" profile in {profile_file}"
    )
    figures = [
        Figure(
            "classify",
            "texts per CPU-second, 1 core",
            rate,
            "texts/s",
            target=f"≥ {TARGET:,.0f}/s",
            passed=rate >= TARGET,
        ),
        Figure("classify", "texts per wall second, 1 core (shared machine)", wall_rate, "texts/s"),
    ]
    details = {
        "texts": len(texts),
        "mean_bytes": round(mean_bytes),
        "classified": done,
        "seconds": elapsed,
        "cpu_seconds": cpu_seconds,
        "cpu": cpu,
    }
    return figures, details
