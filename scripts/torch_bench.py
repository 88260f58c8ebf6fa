#!/usr/bin/env python3
"""PyTorch CPU reference for `worker bench`: the same ResNet18 (kuangliu CIFAR variant, width
multiplier), the same step (cross-entropy, SGD lr 0.01 momentum 0.9 weight decay 5e-4) on the
same kind of input (random 32x32 images, labels i mod 10), timed the same way: one warm-up
step, then `--steps` timed training steps and `--steps` evaluation forwards.

Prints one line per figure in `worker bench`'s wording, so the two outputs can be read side
by side:  python3 scripts/torch_bench.py --threads 2
Needs only `pip install torch`.
"""
import argparse
import resource
import time

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
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

    model.train()
    train_step()
    start = time.perf_counter()
    for _ in range(args.steps):
        train_step()
    train_rate = args.steps * args.batch_size / (time.perf_counter() - start)

    model.eval()
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(args.steps):
            model(x)
        eval_rate = args.steps * args.batch_size / (time.perf_counter() - start)

    print(f"torch {torch.__version__}, {args.threads} thread(s), mkldnn {torch.backends.mkldnn.is_available()}")
    print(f"training (width {args.width}, batch {args.batch_size})  {train_rate:.3g} images/s")
    print(f"evaluation  {eval_rate:.3g} images/s")
    print(f"peak resident memory  {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
