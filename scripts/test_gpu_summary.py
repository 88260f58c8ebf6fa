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


def bench(train, evaluation):
    return {"device": DEVICE, "lines": [
        {"name": "sgemm 1024", "value": 50000, "unit": "GFLOP/s"},
        {"name": "training (ResNet18 w64)", "value": train, "unit": "images/s"},
        {"name": "evaluation", "value": evaluation, "unit": "images/s"}]}


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
            "selftest.json": {"device": DEVICE, "checks": [
                {"name": "loss vs CPU", "value": 1.2e-6, "limit": 1e-4, "passed": True}]},
            "bench-fp32-128.json": bench(4000, 15000),
            "bench-tf32-128.json": bench(12000, 60000),
            "bench-fp32-512.json": bench(5000, 15000),
            "torch.jsonl": TORCH,
        })
        self.assertTrue(passed)
        self.assertIn("device: name NVIDIA H200", text)
        self.assertIn("self-test: passed (1/1 checks)", text)
        rows = [line.split() for line in text.splitlines()]
        self.assertIn(["fp32", "128", "4,000", "8,000", "0.50"], rows)    # training
        self.assertIn(["tf32", "128", "12,000", "16,000", "0.75"], rows)  # NCHW, not channels-last
        self.assertIn(["fp32", "512", "5,000", "10,000", "0.50"], rows)
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

    def test_empty_check_list_is_not_a_pass(self):
        _, passed = self.run_dir({"selftest.json": {"device": DEVICE, "checks": []}})
        self.assertFalse(passed)


if __name__ == "__main__":
    unittest.main()
