#!/usr/bin/env python3
"""PyTorch CPU reference for `worker bench`: the same ResNet18 (kuangliu CIFAR variant, width
multiplier), the same step (cross-entropy, SGD lr 0.01 momentum 0.9 weight decay 5e-4) on the
same kind of input (random 32x32 images, labels i mod 10), timed the same way: one warm-up
step, then `--steps` timed training steps and `--steps` evaluation forwards.

Prints one line per figure in `worker bench`'s wording, so the two outputs can be read side
by side:  python3 scripts/torch_bench.py --threads 2
With --profile, a second pass of the timed training steps runs under torch.profiler and the
operators' own (self) CPU time is summed into kinds of work, as `worker bench` lists its parts:
    python3 scripts/torch_bench.py --width 16 --threads 1 --steps 10 --profile
Needs only `pip install torch`.
"""
import argparse
import resource
import time
from collections import defaultdict

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, width=64, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        in_planes = width
        for stage in range(4):
            planes = width << stage
            blocks = []
            for index in range(2):
                blocks.append(BasicBlock(in_planes, planes, 2 if index == 0 and stage > 0 else 1))
                in_planes = planes
            # kuangliu's names (layer1 ... layer4), so state_dict names are the Swift network's.
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(in_planes, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        for stage in range(4):
            out = getattr(self, f"layer{stage + 1}")(out)
        out = F.avg_pool2d(out, 4).flatten(1)
        return self.linear(out)


# Operator name fragments -> kind of work, first match wins. PyTorch runs BatchNorm and ReLU as
# separate operators where PruneSweep fuses them, so those are listed apart.
PARTS = [
    ("convolution_backward", "convolution backward (both gradients)"),
    ("convolution", "convolution forward"),
    ("batch_norm_backward", "BatchNorm backward"),
    ("batch_norm", "BatchNorm forward"),
    ("threshold_backward", "ReLU backward"),
    ("relu", "ReLU forward"),
    ("clamp_min", "ReLU forward"),
    ("_foreach", "SGD (and zero_grad)"),
    ("Optimizer", "SGD (and zero_grad)"),
    ("zero_", "SGD (and zero_grad)"),
    ("softmax", "loss"),
    ("nll_loss", "loss"),
    ("cross_entropy", "loss"),
    ("avg_pool2d", "pooling and classifier, both directions"),
    ("addmm", "pooling and classifier, both directions"),
    ("aten::mm", "pooling and classifier, both directions"),
    ("aten::sum", "pooling and classifier, both directions"),
    ("aten::add", "residual add and gradient sums"),
]


def part_of(name):
    for fragment, part in PARTS:
        if fragment in name:
            return part
    return "other (autograd, views, copies)"


def profile_training(train_step, steps):
    """Self CPU time per kind of work, in ms per step, over `steps` profiled training steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            train_step()
        wall = time.perf_counter() - start
    totals = defaultdict(float)
    for event in prof.key_averages():
        totals[part_of(event.key)] += event.self_cpu_time_total / 1000
    return {part: ms / steps for part, ms in totals.items()}, 1000 * wall / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--profile", action="store_true", help="also profile the training step by kind of work")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = ResNet18(args.width)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(args.batch_size, 3, 32, 32) * 2 - 1
    y = torch.arange(args.batch_size) % 10

    def train_step():
        optimiser.zero_grad(set_to_none=False)
        F.cross_entropy(model(x), y).backward()
        optimiser.step()

    def timed(step):
        """Images/s over `--steps` calls, by the wall clock and per CPU-second of this process."""
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.steps):
            step()
        images = args.steps * args.batch_size
        return images / (time.perf_counter() - start), images / (time.process_time() - cpu)

    model.train()
    train_step()
    train_rate, train_cpu_rate = timed(train_step)

    model.eval()
    with torch.no_grad():
        model(x)
        eval_rate, eval_cpu_rate = timed(lambda: model(x))

    print(f"torch {torch.__version__}, {args.threads} thread(s), mkldnn {torch.backends.mkldnn.is_available()}")
    print(f"training (width {args.width}, batch {args.batch_size})  {train_rate:.1f} images/s")
    print(f"training per CPU-second of this process  {train_cpu_rate:.1f} images/s")
    print(f"evaluation  {eval_rate:.1f} images/s")
    print(f"evaluation per CPU-second of this process  {eval_cpu_rate:.1f} images/s")
    print(f"peak resident memory  {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    if args.profile:
        model.train()
        parts, step_ms = profile_training(train_step, args.steps)
        print(f"training step by part (self CPU ms per step, share of the profiled step of {step_ms:.1f} ms):")
        for part, ms in sorted(parts.items(), key=lambda item: -item[1]):
            print(f"  {part:42s} {ms:8.2f} ms  {100 * ms / step_ms:5.1f}%")
        outside = sum(ms for part, ms in parts.items() if not part.startswith("convolution"))
        print(f"share of the step outside convolutions  {100 * outside / step_ms:.1f}%")


if __name__ == "__main__":
    main()
