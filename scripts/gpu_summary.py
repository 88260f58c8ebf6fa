#!/usr/bin/env python3
"""The one table `scripts/gpu-check.sh run` ends with, read from the directory its steps wrote:
steps.tsv (name, exit status, seconds), selftest.json, bench-PRECISION-BATCH.json and torch.jsonl.
Any file may be missing or broken (the step failed): that shows as a gap, never a crash.
Exit status 0 only when the self-test ran and every check passed.

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
            return ", ".join(f"{k} {v}" for k, v in doc["device"].items())
    return "— (no step reported it)"


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
    if torch_header:
        lines.append("pytorch: " + ", ".join(f"{k} {v}" for k, v in torch_header.items()))
    steps = read_steps(directory)
    if steps:
        lines += ["", "steps:"] + table(["step", "state", "seconds"],
                                        [[n, step_state(rc), s] for n, rc, s in steps])

    lines.append("")
    checks, passed = selftest_lines(selftest, selftest_why)
    lines += checks

    train_rows, eval_rows = [], []
    for (p, b), bench in benches.items():
        theirs = torch.get((p, b), {})
        ours_train, ours_eval = bench_figure(bench, "training"), bench_figure(bench, "evaluation")
        train_rows.append([p, b, number(ours_train), number(theirs.get("train_img_s")),
                           ratio(ours_train, theirs.get("train_img_s"))])
        eval_rows.append([p, b, number(ours_eval), number(theirs.get("eval_img_s")),
                          ratio(ours_eval, theirs.get("eval_img_s"))])
    lines += ["", "training images/s, ResNet18 w64 3×32×32 NCHW (ratio = ours / PyTorch; tf32 = PyTorch's default):"]
    lines += table(["precision", "batch", "worker", "pytorch", "ratio"], train_rows)
    lines += ["", "evaluation images/s (PyTorch evaluates batches of 1000; batch = the training batch of that run):"]
    lines += table(["precision", "batch", "worker", "pytorch", "ratio"], eval_rows)
    lines += ["", "result: " + ("self-test passed" if passed else "self-test FAILED")]
    return lines, passed


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
