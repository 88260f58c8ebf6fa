#!/usr/bin/env python3
"""Side-by-side speed of `worker bench` and `scripts/torch_bench.py`, in interleaved rounds so
that a change of load hits every variant alike. Prints a markdown table of medians: training
and evaluation images/s by the wall clock and per CPU-second of the process (the second
falls much less when other work shares the machine), the ratio to PyTorch, and the range of
the rounds' own ratios (this machine kind swings by a third within minutes).

    python3 scripts/speed_vs_torch.py --widths 16 64 --threads 1 2 --rounds 3 [--im2col]

--im2col adds a variant: our engine with every convolution through im2col and GEMM (the path
before the direct convolutions). Each --env VAR=VALUE adds one more: our engine with that
variable set (`--env PRUNESWEEP_EVALUATION_DIRECT=off` gives the evaluation before its direct
routes). Each --also WORKER adds another worker binary (a build from before a change, copied
aside), so a change and its baseline meet the same load. Needs a release build (`swift build
-c release`) and `pip install torch`.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

FIGURES = {
    "train": r"^training \(width.*?([\d.]+) images/s",
    "train/cpu": r"^training per CPU-second of this process\s+([\d.]+)",
    "eval": r"^evaluation(?: \(batch assembly, forward, loss\))?\s+([\d.]+) images/s",
    "eval/cpu": r"^evaluation per CPU-second of this process\s+([\d.]+)",
}


def measure(command, environment):
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout
    figures = {}
    for name, pattern in FIGURES.items():
        match = re.search(pattern, output, re.MULTILINE)
        if match:
            figures[name] = float(match.group(1))
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[16])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--im2col", action="store_true", help="also time our engine without direct convolutions")
    parser.add_argument("--env", action="append", default=[], metavar="VAR=VALUE",
                        help="also time our engine with this environment variable set (repeatable)")
    parser.add_argument("--worker", default=".build/release/worker")
    parser.add_argument("--also", action="append", default=[], metavar="WORKER",
                        help="also time this worker binary, e.g. a build from before a change (repeatable)")
    args = parser.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))

    print(f"load average before: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    rows = []
    for width in args.widths:
        for threads in args.threads:
            variants = {"ours": [args.worker, "bench", "--width", str(width), "--threads", str(threads), "--steps", str(args.steps)]}
            if args.im2col:
                variants["ours, im2col"] = variants["ours"] + ["--im2col"]
            for path in args.also:
                variants[f"ours, {path}"] = [path] + variants["ours"][1:]
            settings = {name: {} for name in variants}
            for setting in args.env:
                variable, _, value = setting.partition("=")
                variants[f"ours, {setting}"] = variants["ours"]
                settings[f"ours, {setting}"] = {variable: value}
            variants["PyTorch"] = [sys.executable, os.path.join(here, "torch_bench.py"), "--width", str(width),
                                   "--threads", str(threads), "--steps", str(args.steps)]
            settings["PyTorch"] = {}
            results = {name: [] for name in variants}
            for round in range(args.rounds):
                for name, command in variants.items():
                    results[name].append(measure(command, {**os.environ, **settings[name]}))
                    print(f"w{width} t{threads} round {round + 1} {name}: {results[name][-1]}", file=sys.stderr)
            medians = {name: {key: statistics.median(r[key] for r in runs) for key in FIGURES} for name, runs in results.items()}
            for name, figures in medians.items():
                ratio = {key: figures[key] / medians["PyTorch"][key] for key in FIGURES}
                cells = []
                for key in FIGURES:
                    cell = f"{figures[key]:.0f} ({ratio[key]:.2f}×"
                    if name != "PyTorch" and args.rounds > 1:
                        # Each round's own ratio: the host's swings between rounds hit both
                        # variants of a round alike, so their spread says how far to trust the median.
                        rounds = [ours[key] / torch[key] for ours, torch in zip(results[name], results["PyTorch"])]
                        cell += f"; rounds {min(rounds):.2f}–{max(rounds):.2f}"
                    cells.append(cell + ")")
                rows.append(f"| {width} | {threads} | {name} | " + " | ".join(cells) + " |")
    print(f"load average after: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    print("| width | threads | engine | " + " | ".join(f"{key} images/s (÷ PyTorch)" for key in FIGURES) + " |")
    print("|---|---|---|" + "---|" * len(FIGURES))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
