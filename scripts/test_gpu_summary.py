#!/usr/bin/env python3
"""The GPU check's summary on hand-made step files, so that on a GPU host only the GPU calls are new.
    python3 -m unittest discover -s scripts -p 'test_*.py'
"""
import json
import os
import tempfile
import unittest

import gpu_summary

DEVICE = {"name": "NVIDIA H200", "driver": "580.65", "cc": "9.0"}
# The anchor's full-run output shape: a text header, then one JSON object per configuration.
TORCH = """torch 2.11.0 cudnn 91900 NVIDIA H200
{"w": 64, "bs": 128, "mode": "fp32", "channels_last": false, "inch": 3, "hw": 32, "train_img_s": 8000, "eval_img_s": 30000}
{"w": 64, "bs": 128, "mode": "tf32", "channels_last": false, "inch": 3, "hw": 32, "train_img_s": 16000, "eval_img_s": 80000}
{"w": 64, "bs": 128, "mode": "tf32", "channels_last": true, "inch": 3, "hw": 32, "train_img_s": 99999, "eval_img_s": 99999}
{"w": 16, "bs": 128, "mode": "tf32", "channels_last": false, "inch": 1, "hw": 28, "train_img_s": 77777, "eval_img_s": 77777}
{"w": 64, "bs": 512, "mode": "fp32", "channels_last": false, "inch": 3, "hw": 32, "train_img_s": 10000, "eval_img_s": 30000}
{"concurrent": 4, "config": {"mode": "tf32"}, "total_img_s": 30143}
"""


ALGORITHMS = ["3×3 conv 3→64 stride 1 on 32×32 at batch 128, fp32: forward 1 (math 3, 0 KiB), backward-data 1 (math 3, 0 KiB), backward-filter 1 (math 3, 12 KiB)",
              "3×3 conv 64→64 stride 1 on 32×32 at batch 128, fp32: forward 6 (math 3, 1024 KiB), backward-data 1 (math 3, 0 KiB), backward-filter 0 (math 3, 0 KiB)"]


def bench(train, evaluation, key=None, algorithms=None, graphs=None):
    doc = {"device": DEVICE, "lines": [
        {"name": "sgemm 1024", "value": 50000, "unit": "GFLOP/s"},
        {"name": "training (ResNet18 w64)", "value": train, "unit": "images/s"},
        {"name": "evaluation", "value": evaluation, "unit": "images/s"}]}
    if key:
        doc["algorithms"] = {key: algorithms}
    if graphs is not None:
        doc["cudaGraphs"] = graphs
    return doc


class SummaryTests(unittest.TestCase):
    def run_dir(self, files):
        directory = self.enterContext(tempfile.TemporaryDirectory())
        for name, content in files.items():
            with open(os.path.join(directory, name), "w") as f:
                f.write(content if isinstance(content, str) else json.dumps(content))
        lines, passed = gpu_summary.summary(directory)
        return "\n".join(lines), passed

    def test_passing_run_gives_ratios_against_the_matching_pytorch_row(self):
        text, passed = self.run_dir({
            "steps.tsv": "nvidia-smi\t0\t1\nselftest\t0\t40\nbench-fp32-128\t0\t12\n",
            "selftest.json": {"device": dict(DEVICE, libraries=["libcuda.so.1", "/venv/site-packages/nvidia/cudnn/lib/libcudnn.so.9"]),
                              "checks": [{"name": "loss vs CPU", "value": 1.2e-6, "limit": 1e-4, "passed": True}],
                              "algorithms": {"fp32-128": ALGORITHMS}},
            "bench-fp32-128.json": bench(4000, 15000, "fp32-128", ALGORITHMS, graphs=True),
            "bench-tf32-128.json": bench(12000, 60000),
            "bench-fp32-512.json": bench(5000, 15000),
            "torch.jsonl": TORCH,
        })
        self.assertTrue(passed)
        self.assertIn("device: name NVIDIA H200", text)
        self.assertIn("self-test: passed (1/1 checks)", text)
        self.assertNotIn("libraries [", text)  # listed on their own lines, not in the device line
        self.assertIn("  /venv/site-packages/nvidia/cudnn/lib/libcudnn.so.9", text.splitlines())
        rows = [line.split() for line in text.splitlines()]
        self.assertIn(["fp32-128", "2", "same"], rows)
        self.assertIn(["fp32", "128", "4,000", "8,000", "0.50", "yes"], rows)  # training, steps as graphs
        self.assertIn(["tf32", "128", "12,000", "16,000", "0.75", "—"], rows)  # NCHW, not channels-last
        self.assertIn(["fp32", "512", "5,000", "10,000", "0.50", "—"], rows)
        self.assertIn(["tf32", "128", "60,000", "80,000", "0.75"], rows)  # evaluation
        self.assertIn(["tf32", "512", "—", "—", "—"], rows)               # neither side ran
        self.assertTrue(text.endswith("result: self-test passed"))

    def test_a_failed_check_fails_the_run(self):
        text, passed = self.run_dir({"selftest.json": {"device": DEVICE, "checks": [
            {"name": "loss vs CPU", "value": 1e-6, "limit": 1e-4, "passed": True},
            {"name": "accuracy", "value": 0.42, "limit": 0.8, "passed": False}]}})
        self.assertFalse(passed)
        self.assertIn("self-test: FAILED (1/2 checks)", text)
        self.assertIn(["accuracy", "0.42", "0.8", "FAIL"], [line.split() for line in text.splitlines()])

    def test_failed_and_timed_out_steps_leave_gaps_not_a_crash(self):
        text, passed = self.run_dir({
            "steps.tsv": "selftest\t64\t0\nbench-fp32-128\t124\t45\npytorch\tskipped (out of time)\t0\n",
            "bench-tf32-128.json": "{not json",
        })
        self.assertFalse(passed)
        self.assertIn("self-test: FAILED (no selftest.json)", text)
        self.assertIn("failed (exit 64)", text)
        self.assertIn("timed out", text)
        self.assertIn("skipped (out of time)", text)
        self.assertIn("device: — (no step reported it)", text)

    def test_algorithms_that_differ_between_processes_fail_the_run(self):
        other = [ALGORITHMS[0], ALGORITHMS[1].replace("forward 6", "forward 1")]
        text, passed = self.run_dir({
            "selftest.json": {"device": DEVICE, "checks": [{"name": "c", "value": 0, "limit": 1, "passed": True}],
                              "algorithms": {"fp32-128": ALGORITHMS, "tf32-128": ALGORITHMS}},
            "bench-fp32-128.json": bench(4000, 15000, "fp32-128", other, graphs=False),
        })
        self.assertFalse(passed)
        self.assertIn("fp32-128  2       DIFFERENT: ", text)
        self.assertIn("result: self-test passed, cuDNN algorithms DIFFER between processes", text)
        self.assertIn(["fp32", "128", "4,000", "—", "—", "NO"], [line.split() for line in text.splitlines()])
        self.assertIn("tf32-128  —       only one process reported it", text)  # its bench did not run

    def test_library_list_from_a_bench_when_the_self_test_failed(self):
        doc = bench(1, 1)
        doc["device"] = dict(DEVICE, libraries="libcuda.so.1, /usr/lib/python3/dist-packages/torch/lib/libcudnn.so.9")
        text, _ = self.run_dir({"bench-tf32-512.json": doc})
        self.assertIn("  /usr/lib/python3/dist-packages/torch/lib/libcudnn.so.9", text.splitlines())
        self.assertIn("cuDNN algorithms: — (the self-test and the benches reported none to compare)", text)

    def test_empty_check_list_is_not_a_pass(self):
        _, passed = self.run_dir({"selftest.json": {"device": DEVICE, "checks": []}})
        self.assertFalse(passed)


if __name__ == "__main__":
    unittest.main()
