#!/usr/bin/env python3
"""The one table `scripts/gpu-check.sh run` ends with, read from the directory its steps wrote:
steps.tsv (name, exit status, seconds), selftest.json, bench-PRECISION-BATCH.json and torch.jsonl.
Any file may be missing or broken (the step failed): that shows as a gap, never a crash.
Besides the figures it shows where the CUDA libraries were loaded from, whether the benches'
steps ran as CUDA graphs, and whether the self-test and the benches (separate processes) chose
the same cuDNN algorithms for the same configuration.
Exit status 0 only when the self-test ran, every check passed and no configuration's
algorithms differ between processes.

    python3 scripts/gpu_summary.py DIR
"""
import json
import os
import sys

PRECISIONS = ("fp32", "tf32")
BATCHES = (128, 512)


def read_json(path):
    """(object, None) or (None, why it could not be read)."""
    try:
        with open(path) as f:
            return json.load(f), None
    except FileNotFoundError:
        return None, "no " + os.path.basename(path)
    except (OSError, ValueError) as e:
        return None, f"{os.path.basename(path)} unreadable: {e}"


def read_steps(directory):
    rows = []
    try:
        with open(os.path.join(directory, "steps.tsv")) as f:
            for line in f:
                fields = line.rstrip("\n").split("\t")
                if len(fields) == 3:
                    rows.append(fields)
    except FileNotFoundError:
        pass
    return rows


def step_state(rc):
    if rc == "0":
        return "ok"
    if rc in ("124", "137"):
        return "timed out"
    if rc.isdigit():
        return f"failed (exit {rc})"
    return rc  # "skipped" and the like, written as words by gpu-check.sh


def read_torch(directory):
    """PyTorch's rows keyed by (mode, batch): the anchor's NCHW ResNet18 w64 on 3×32×32 only,
    the shape `worker bench` measures; plus its header ({"torch": ...}) if present."""
    rows, header = {}, None
    try:
        with open(os.path.join(directory, "torch.jsonl")) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return rows, header
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # the anchor's plain-text lines
        if not isinstance(row, dict):
            continue
        if "torch" in row:
            header = row
        elif (row.get("w", 64) == 64 and row.get("inch", 3) == 3 and not row.get("channels_last")
              and "mode" in row and "bs" in row):
            rows[(row["mode"], row["bs"])] = row
    return rows, header


def bench_figure(bench, prefix):
    """images/s of the bench line whose name starts with prefix, or None."""
    if not isinstance(bench, dict):
        return None
    for line in bench.get("lines") or []:
        if (isinstance(line, dict) and str(line.get("name", "")).startswith(prefix)
                and line.get("unit") == "images/s" and isinstance(line.get("value"), (int, float))):
            return float(line["value"])
    return None


def number(x):
    if isinstance(x, bool) or x is None:
        return "—" if x is None else str(x)
    if isinstance(x, (int, float)):
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.4g}"
    return str(x)


def ratio(ours, theirs):
    return f"{ours / theirs:.2f}" if ours is not None and theirs else "—"


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    return ["  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows]


def device_line(*documents):
    for doc in documents:
        if isinstance(doc, dict) and isinstance(doc.get("device"), dict) and doc["device"]:
            return ", ".join(f"{k} {v}" for k, v in doc["device"].items() if k != "libraries")
    return "— (no step reported it)"


def library_lines(*documents):
    """The files the CUDA libraries were loaded from (the self-test lists them, a bench joins
    them with commas): where a host keeps cuDNN, cuBLAS and NVRTC (system, wheel, torch/lib)."""
    for doc in documents:
        libraries = doc.get("device", {}).get("libraries") if isinstance(doc, dict) and isinstance(doc.get("device"), dict) else None
        if isinstance(libraries, str):
            libraries = [part.strip() for part in libraries.split(",") if part.strip()]
        if isinstance(libraries, list) and libraries:
            return ["libraries loaded:"] + [f"  {library}" for library in libraries]
    return ["libraries loaded: — (no step reported them)"]


def algorithm_lines(selftest, benches):
    """(lines, consistent): each configuration the self-test and a bench both chose cuDNN
    algorithms for, same or different. Two processes of one build on one host must agree."""
    ours = selftest.get("algorithms") if isinstance(selftest, dict) else None
    ours = ours if isinstance(ours, dict) else {}
    rows, consistent = [], True
    for (p, b), bench in sorted(benches.items()):
        key = f"{p}-{b}"
        theirs = bench.get("algorithms") if isinstance(bench, dict) else None
        theirs = theirs.get(key) if isinstance(theirs, dict) else None
        mine = ours.get(key)
        if not isinstance(mine, list) or not isinstance(theirs, list):
            if mine is not None or theirs is not None:
                rows.append([key, "—", "only one process reported it"])
            continue
        if mine == theirs:
            rows.append([key, len(mine), "same"])
        else:
            consistent = False
            first = next((f"{a!r} vs {c!r}" for a, c in zip(mine, theirs) if a != c), f"{len(mine)} vs {len(theirs)} lines")
            rows.append([key, len(mine), f"DIFFERENT: {first}"])
    if not rows:
        return ["cuDNN algorithms: — (the self-test and the benches reported none to compare)"], True
    return ["cuDNN algorithms, self-test vs bench (two processes):"] + table(["config", "shapes", "choice"], rows), consistent


def graphs(bench):
    used = bench.get("cudaGraphs") if isinstance(bench, dict) else None
    return "—" if used is None else ("yes" if used is True else "NO")


def selftest_lines(selftest, why):
    """(lines, passed)."""
    if selftest is None:
        return [f"self-test: FAILED ({why})"], False
    checks = selftest.get("checks") if isinstance(selftest, dict) else None
    if not isinstance(checks, list) or not checks:
        return ["self-test: FAILED (selftest.json lists no checks)"], False
    rows, passed = [], True
    for c in checks:
        c = c if isinstance(c, dict) else {}
        ok = c.get("passed") is True
        passed &= ok
        rows.append([c.get("name", "?"), number(c.get("value")), number(c.get("limit")), "pass" if ok else "FAIL"])
    lines = [f"self-test: {'passed' if passed else 'FAILED'} ({sum(r[3] == 'pass' for r in rows)}/{len(rows)} checks)"]
    return lines + table(["check", "value", "limit", "result"], rows), passed


def summary(directory):
    """(text lines, self-test passed)."""
    selftest, selftest_why = read_json(os.path.join(directory, "selftest.json"))
    benches = {(p, b): read_json(os.path.join(directory, f"bench-{p}-{b}.json"))[0]
               for p in PRECISIONS for b in BATCHES}
    torch, torch_header = read_torch(directory)

    lines = [f"== GPU check summary ({directory})",
             "device: " + device_line(selftest, *benches.values())]
    lines += library_lines(selftest, *benches.values())
    if torch_header:
        lines.append("pytorch: " + ", ".join(f"{k} {v}" for k, v in torch_header.items()))
    steps = read_steps(directory)
    if steps:
        lines += ["", "steps:"] + table(["step", "state", "seconds"],
                                        [[n, step_state(rc), s] for n, rc, s in steps])

    lines.append("")
    checks, passed = selftest_lines(selftest, selftest_why)
    lines += checks
    chosen, consistent = algorithm_lines(selftest, benches)
    lines += [""] + chosen

    train_rows, eval_rows = [], []
    for (p, b), bench in benches.items():
        theirs = torch.get((p, b), {})
        ours_train, ours_eval = bench_figure(bench, "training"), bench_figure(bench, "evaluation")
        train_rows.append([p, b, number(ours_train), number(theirs.get("train_img_s")),
                           ratio(ours_train, theirs.get("train_img_s")), graphs(bench)])
        eval_rows.append([p, b, number(ours_eval), number(theirs.get("eval_img_s")),
                          ratio(ours_eval, theirs.get("eval_img_s"))])
    lines += ["", "training images/s, ResNet18 w64 3×32×32 NCHW (ratio = ours / PyTorch; tf32 = PyTorch's default):"]
    lines += table(["precision", "batch", "worker", "pytorch", "ratio", "graphs"], train_rows)
    lines += ["", "evaluation images/s (PyTorch evaluates batches of 1000; batch = the training batch of that run):"]
    lines += table(["precision", "batch", "worker", "pytorch", "ratio"], eval_rows)
    verdict = "self-test passed" if passed else "self-test FAILED"
    if not consistent:
        verdict += ", cuDNN algorithms DIFFER between processes"
    lines += ["", "result: " + verdict]
    return lines, passed and consistent


def main(argv):
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        print(f"usage: {argv[0]} DIR  (DIR: the directory `scripts/gpu-check.sh run` wrote; "
              f"{argv[1:] or 'none'} is not one)", file=sys.stderr)
        return 2
    lines, passed = summary(argv[1])
    print("\n".join(lines))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
