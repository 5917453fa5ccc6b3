"""`watchcentre whatif` and `watchcentre eval`: try candidate rules on history and on labelled truth
before they go live (docs/configuration.md). Registered in cli.py with `register(sub)`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from watchcentre.settings import Settings

CORPUS_FILES = "classification_*.jsonl"
"""Every batch of the labelled corpus: a name with `holdout` is held out (tests/unit/test_corpus.py)."""
_HELD_OUT = frozenset({"holdout", "held-out", "heldout", "held_out", "test"})


def _when(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (Z or +01:00): {text!r}")
    return at


def _candidate(directory: str) -> Any:
    """The rules built from `directory`, validated first: every problem listed, exit 2."""
    from watchcentre.adapters.config_files import ConfigError, load_config
    from watchcentre.bootstrap import build_classifier, build_rules
    from watchcentre.core.senders import SenderPolicy

    try:
        config = load_config(directory)
        return build_rules(config, build_classifier(config), SenderPolicy())
    except ConfigError as exc:
        print(f"{directory}: {exc}", file=sys.stderr)
    except ValueError as exc:
        print(f"{directory}: invalid configuration:\n  - {exc}", file=sys.stderr)
    raise SystemExit(2)


def _corpus_paths(given: list[str] | None) -> list[Path]:
    if given:
        return [Path(p) for p in given]
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        found = sorted((root / "tests" / "data").glob(CORPUS_FILES))
        if found:
            return found
    return []


def corpus_sets(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """The labelled texts by set: `holdout` (a held-out file, or `"split"` saying so), else `corpus`."""
    sets: dict[str, list[dict[str, Any]]] = {"corpus": [], "holdout": []}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            item = orjson.loads(line)
            split = str(item.get("split") or "").lower()
            held = split in _HELD_OUT if split else "holdout" in path.name
            sets["holdout" if held else "corpus"].append(item)
    return sets


async def _labels(settings: Settings) -> list[Any] | None:
    from watchcentre.bootstrap import open_store
    from watchcentre.core.ports import TransientError

    try:
        store = await open_store(settings)
    except (TransientError, OSError) as exc:
        print(f"operators' corrections not read: the store is unreachable ({exc})", file=sys.stderr)
        return None
    try:
        return await store.labels()
    finally:
        await store.close()


def quality(rules: Any, corpus: list[str] | None, labels: list[Any] | None) -> dict[str, Any]:
    from watchcentre.service.whatif import evaluate_labels, evaluate_on

    out: dict[str, Any] = {}
    for name, items in corpus_sets(_corpus_paths(corpus)).items():
        if items:
            out[name] = evaluate_on(items, rules)
    if labels is not None:
        out["operators"] = evaluate_labels(labels, rules)
    return out


def _quality_lines(results: dict[str, Any]) -> Iterator[str]:
    from watchcentre.core.evaluation import summary_line

    names = {
        "corpus": "corpus (tuned on)",
        "holdout": "corpus, held out",
        "operators": "operators' corrections",
    }
    for name, ev in results.items():
        yield (
            summary_line(names.get(name, name), ev)
            if ev.items
            else f"{names.get(name, name):<22}      0  (none yet)"
        )


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    rules = _candidate(args.config or settings.config_dir)
    results = quality(rules, args.corpus, asyncio.run(_labels(settings)))
    if args.json:
        data = {"config": rules.digest, **{name: ev.as_dict() for name, ev in results.items()}}
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(f"configuration {rules.digest[:12]} ({args.config or settings.config_dir})")
    for line in _quality_lines(results):
        print(line)
    for name, ev in results.items():
        print(f"\n{name}: per crime type (precision / recall / support)")
        for code, f in ev.as_dict()["per_crime_type"].items():
            print(f"  {code:<28} {f['precision']:.2f} / {f['recall']:.2f} / {f['support']}")
    return 0


def _progress(total: int) -> Any:
    """A progress bar on standard error (rich, which the project already uses)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("replay", total=total)
    return progress, lambda n: progress.advance(task, n)


async def _whatif(settings: Settings, args: argparse.Namespace, rules: Any) -> Any:
    from watchcentre.bootstrap import open_store
    from watchcentre.service.whatif import what_if

    store = await open_store(settings)
    try:
        total = await store.count_decided(args.since, args.until)
        progress, advance = _progress(total)
        with progress:
            report = await what_if(store, rules, args.since, args.until, progress=advance)
        labels = await store.labels()
    finally:
        await store.close()
    return report, labels


def cmd_whatif(settings: Settings, args: argparse.Namespace) -> int:
    rules = _candidate(args.config)
    report, labels = asyncio.run(_whatif(settings, args, rules))
    results = quality(rules, None, labels)
    out = sys.stderr if args.json else sys.stdout
    if args.json:
        sys.stdout.write(orjson.dumps(report.contract()).decode() + "\n")
    else:
        for c in report.changes:
            print(f"{c.sender}/{c.message_id}: {', '.join(c.before)} -> {', '.join(c.after)}")
            for line in c.why:
                print(f"    {line}")
    skipped = {k: v for k, v in report.outcomes.items() if k not in ("same", "changed")}
    print(
        f"{report.messages} message(s), {report.changed} would change"
        + (f"; not replayed: {', '.join(f'{v} {k}' for k, v in sorted(skipped.items()))}" if skipped else "")
        + f" ({report.seconds:.1f} s, {report.messages / max(report.seconds, 1e-9):,.0f} messages/s)",
        file=out,
    )
    print(f"candidate {rules.digest[:12]} ({args.config}), labelling quality:", file=out)
    for line in _quality_lines(results):
        print(f"  {line}", file=out)
    return 0


def register(sub: Any) -> None:
    w = sub.add_parser(
        "whatif", help="replay stored messages through a candidate config/ and list what would change"
    )
    w.add_argument("--config", required=True, metavar="DIR", help="the candidate configuration directory")
    w.add_argument("--since", type=_when, help="from this time (RFC 3339), received_at included")
    w.add_argument("--until", type=_when, help="to this time (RFC 3339), excluded")
    w.add_argument("--json", action="store_true", help='{"messages", "changed", "changes": [...]} on stdout')
    w.set_defaults(fn=cmd_whatif)
    e = sub.add_parser(
        "eval", help="precision/recall of a config/ against the corpus and operators' corrections"
    )
    e.add_argument(
        "--config", metavar="DIR", help="the configuration to measure (default: the running one's)"
    )
    e.add_argument("--corpus", action="append", metavar="JSONL", help="labelled texts (default: tests/data/)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(fn=cmd_eval)
