#!/usr/bin/env python3
"""Float64 reference for one masked training step of ResNet18 (width 64) with a SynFlow-like mask.

Builds PruneSweep's seed-0 network bit for bit (scripts/bn_gradient_reference.py), runs
iterative SynFlow in PyTorch float64 (|weights|, all-ones input, BN in eval mode, global
threshold, exponential schedule) to --density, and keeps SynFlow's per-layer densities: early
layers keep far more than the 512-channel ones. Within each layer the kept weights are then
drawn by a hash both languages compute exactly (`hash_keep`), so the test rebuilds the mask
from 21 numbers instead of storing 11M flags. On the masked network it computes one
train-mode step on the first B synthetic images (labels i mod 10) in float64 and float32.

Stored (all F64):
  density.{name}            each prunable tensor's density (the hash keeps weight i iff
                            top24(splitmix64(layer << 32 | i)) < int(density * 2**24))
  logits, loss              float64 logits [B, 10] and mean cross-entropy
  grad_sample.{name}        every k-th kept weight's float64 gradient (k = max(1, kept // 256)),
                            in flat index order
  torch_f32.grad_worst      PyTorch float32's worst relative error over those samples
  torch_f32.logits          PyTorch float32's logits relative error
  near_zero.relu, near_zero.index, near_zero.value
                            every ReLU input within --near-zero of zero in float64: which
                            ReLU (0 the stem's, then each block's first and last, in forward
                            order), the position (flat NCHW) and the value. A float32 engine
                            may round such a value to the other side of zero; the test then
                            sets that gate as float64 has it (PyTorch float32 here too), and
                            holds every gradient to float64 to 1e-5
  init.checksum, input.checksum  as in bn_gradient_reference.py

Regenerate (a few minutes on 2 cores; needs only `pip install torch`):

  python3 scripts/sparse_step_reference.py --out Tests/ModelTests/Fixtures/resnet18_w64_sparse_step.safetensors
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bn_gradient_reference import (  # noqa: E402
    MASK, STREAM_SYNTHETIC, RandomStream, initialise, relative_error, write_safetensors)
from torch_bench import ResNet18  # noqa: E402


def splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def hash_keep(layer, count, density):
    """Flags of the weights kept in tensor number `layer` (state_dict order among prunable ones)."""
    index = np.arange(count, dtype=np.uint64) | np.uint64(layer << 32)
    with np.errstate(over="ignore"):
        z = index + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    assert int(z[0]) == splitmix64(layer << 32)
    return (z >> np.uint64(40)) < np.uint64(int(density * 16_777_216))


def prunable(model):
    return [(name, p) for name, p in model.named_parameters() if p.dim() > 1]


def synflow_densities(model32, width, density, rounds):
    """Per-layer densities of iterative SynFlow to `density`."""
    model = ResNet18(width).double()
    model.load_state_dict(model32.state_dict())
    model.eval()
    layers = prunable(model)
    masks = [torch.ones_like(p) for _, p in layers]
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.abs_()
    originals = [p.detach().clone() for _, p in layers]
    ones = torch.ones(1, 3, 32, 32, dtype=torch.float64)
    for k in range(1, rounds + 1):
        with torch.no_grad():
            for (_, p), original, mask in zip(layers, originals, masks):
                p.copy_(original * mask)
        model.zero_grad()
        model(ones).sum().backward()
        scores = [(p.grad * p).detach().abs() * mask for (_, p), mask in zip(layers, masks)]
        everything = torch.cat([s.flatten() for s in scores])
        keep = int(round(density ** (k / rounds) * everything.numel()))
        threshold = torch.topk(everything, keep, sorted=True).values[-1]
        masks = [((s >= threshold) & (m > 0)).double() for s, m in zip(scores, masks)]
    return {name: float(m.mean()) for (name, _), m in zip(layers, masks)}


def relu_forward(model, x, relu):
    """The model's forward pass with `relu(z, k)` as its k-th ReLU."""
    out = relu(model.bn1(model.conv1(x)), 0)
    k = 1
    for stage in range(4):
        for block in getattr(model, f"layer{stage + 1}"):
            hidden = relu(block.bn1(block.conv1(out)), k)
            out = relu(block.bn2(block.conv2(hidden)) + block.shortcut(out), k + 1)
            k += 2
    return model.linear(F.avg_pool2d(out, 4).flatten(1))


def step(model, images, labels, relu):
    model.train()
    model.zero_grad(set_to_none=False)
    logits = relu_forward(model, images, relu)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    return logits.detach(), loss.detach(), {name: p.grad.detach().clone() for name, p in prunable(model)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--near-zero", type=float, default=1e-4)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    model32 = ResNet18(args.width)
    initialise(model32, 0)
    tensors = {"init.checksum": np.array([sum(p.double().sum().item() for p in model32.parameters())])}
    densities = synflow_densities(model32, args.width, args.density, args.rounds)
    with torch.no_grad():
        for layer, (name, p) in enumerate(prunable(model32)):
            densities[name] = round(densities[name], 6)
            keep = torch.from_numpy(hash_keep(layer, p.numel(), densities[name]).reshape(p.shape))
            p.mul_(keep.float())
            tensors[f"density.{name}"] = np.array([densities[name]])
    model64 = ResNet18(args.width).double()
    model64.load_state_dict(model32.state_dict())

    pixels = RandomStream(0, STREAM_SYNTHETIC).symmetric(args.batch * 3 * 32 * 32, 1.0).reshape(args.batch, 3, 32, 32)
    tensors["input.checksum"] = np.array([pixels.astype(np.float64).sum()])
    images = torch.from_numpy(pixels.copy())
    labels = torch.arange(args.batch) % 10
    near = []  # (relu, flat NCHW index, float64 value)

    def recording_relu(z, k):
        for i in torch.nonzero(z.detach().flatten().abs() < args.near_zero).flatten().tolist():
            near.append((k, i, z.detach().flatten()[i].item()))
        return F.relu(z)

    def reference_gated_relu(z, k):
        gate = (z > 0).flatten().clone()
        for relu, i, value in near:
            if relu == k:
                gate[i] = value > 0
        return z * gate.view_as(z).to(z.dtype)

    logits64, loss64, grads64 = step(model64, images.double(), labels, recording_relu)
    logits32, _, grads32 = step(model32, images, labels, reference_gated_relu)
    tensors["near_zero.relu"] = np.array([float(k) for k, _, _ in near])
    tensors["near_zero.index"] = np.array([float(i) for _, i, _ in near])
    tensors["near_zero.value"] = np.array([v for _, _, v in near])
    worst = 0.0
    for layer, (name, p) in enumerate(prunable(model64)):
        kept = np.flatnonzero(hash_keep(layer, p.numel(), densities[name]))
        sample = kept[::max(1, len(kept) // 256)]
        tensors[f"grad_sample.{name}"] = grads64[name].flatten()[sample].numpy()
        worst = max(worst, relative_error(grads32[name].flatten()[sample].double(), grads64[name].flatten()[sample]))
    tensors["logits"] = logits64.numpy()
    tensors["loss"] = np.array([loss64.item()])
    tensors["torch_f32.grad_worst"] = np.array([worst])
    tensors["torch_f32.logits"] = np.array([relative_error(logits32.double(), logits64)])
    kept = sum(int(hash_keep(i, p.numel(), densities[n]).sum()) for i, (n, p) in enumerate(prunable(model32)))
    total = sum(p.numel() for _, p in prunable(model32))
    print(f"density {kept / total:.4f} ({kept} of {total}); loss {loss64.item():.6f}; PyTorch float32: worst sampled "
          f"gradient error {worst:.2e}, logits {tensors['torch_f32.logits'][0]:.2e}; {len(near)} ReLU inputs within "
          f"{args.near_zero:g} of zero, the nearest {min(abs(v) for _, _, v in near):.1e}")
    print("per-layer densities: " + ", ".join(f"{n} {d:.3f}" for n, d in densities.items()))
    write_safetensors(args.out, tensors, {"width": str(args.width), "density": str(args.density), "rounds": str(args.rounds),
                                          "batch": str(args.batch), "near_zero": str(args.near_zero), "torch": torch.__version__,
                                          "made_by": "scripts/sparse_step_reference.py"})
    print(f"wrote {args.out} ({os.path.getsize(args.out) // 1024} KiB)")


if __name__ == "__main__":
    main()
