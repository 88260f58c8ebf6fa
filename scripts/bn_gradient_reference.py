#!/usr/bin/env python3
"""Float64 reference for the first step's BatchNorm parameter gradients of ResNet18 (width 64).

Builds the network PruneSweep builds from `ResNet18.initialise(seed:)` (the same xoshiro256**
stream, the same U(+-1/sqrt(fan_in)) draws, bit for bit), feeds it the first B images of the
synthetic stream `worker bench` uses (uniform in [-1, 1), labels i mod 10), and computes one
training step's gradients in PyTorch float64 and float32. It stores, per batch size:

  b{B}.grad.{bn}.weight / .bias   float64 gradients of every BatchNorm parameter
  b{B}.grad_sample.{conv}.weight  every k-th element of each convolution's weight gradient
                                  (k = numel // 512), float64
  b{B}.torch_f32.median / .worst  PyTorch float32's relative error against them, ||a-b||/||b||
                                  per tensor, median and worst over the 40 BN tensors
  b{B}.torch_f32.conv_median / .conv_worst  the same over the 21 sampled convolution gradients
  b{B}.loss, b{B}.logits          float64 loss and logits
  b{B}.relu_flips                 ReLU inputs whose sign differs between float32 and float64
  init.checksum, input.checksum   sums of the initial parameters and of the input, so a test
                                  knows it rebuilt the same network before it compares

The weights are regenerated rather than stored: 11M parameters would be 45 MB, the gradients
are 230 kB. Regenerate (about a minute and a half on 2 cores; needs only `pip install torch`):

  python3 scripts/bn_gradient_reference.py --out Tests/ModelTests/Fixtures/resnet18_w64_bn_gradients.safetensors
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_bench import ResNet18  # noqa: E402  (kuangliu's layout, PruneSweep's names)

MASK = (1 << 64) - 1
STREAM_INITIALISATION, STREAM_SYNTHETIC = 1, 5


class RandomStream:
    """PruneSweep's RandomStream: xoshiro256** seeded by splitmix64 from seed ^ stream * golden."""

    def __init__(self, seed, stream):
        mixer = (seed ^ (stream * 0x9E3779B97F4A7C15)) & MASK
        self.state = []
        for _ in range(4):
            mixer = (mixer + 0x9E3779B97F4A7C15) & MASK
            z = mixer
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            self.state.append(z ^ (z >> 31))

    def top24(self, count):
        """`count` draws' top 24 bits (what nextUnitFloat keeps), as a uint32 array."""
        s0, s1, s2, s3 = self.state
        out = np.empty(count, dtype=np.uint32)
        for i in range(count):
            r = (s1 * 5) & MASK
            r = (((r << 7) | (r >> 57)) & MASK) * 9 & MASK
            out[i] = r >> 40
            t = (s1 << 17) & MASK
            s2 ^= s0
            s3 ^= s1
            s1 ^= s2
            s0 ^= s3
            s2 ^= t
            s3 = ((s3 << 45) | (s3 >> 19)) & MASK
        self.state = [s0, s1, s2, s3]
        return out

    def symmetric(self, count, bound):
        """nextSymmetric(bound) `count` times, in float32 exactly as Swift rounds it."""
        unit = self.top24(count).astype(np.float32) * np.float32(1.0 / 16_777_216.0)
        return (unit * np.float32(2) - np.float32(1)) * np.float32(bound)


def initialise(model, seed):
    """ResNet18.initialise(seed:): BN gamma 1, beta 0; every other tensor U(+-1/sqrt(fan_in))."""
    random = RandomStream(seed, STREAM_INITIALISATION)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if is_batch_norm(name, parameter):
                parameter.fill_(1.0 if name.endswith("weight") else 0.0)
                continue
            fan_in = model.linear.in_features if name == "linear.bias" else int(np.prod(parameter.shape[1:]))
            bound = np.float32(1) / np.sqrt(np.float32(fan_in))
            parameter.copy_(torch.from_numpy(random.symmetric(parameter.numel(), bound).reshape(parameter.shape)))


def is_batch_norm(name, parameter):
    return parameter.dim() == 1 and name != "linear.bias"


def batch_norm_parameters(model):
    return [(name, p) for name, p in model.named_parameters() if is_batch_norm(name, p)]


def relative_error(a, b):
    return float((a - b).norm() / b.norm())


def first_step(model, images, labels):
    """Train-mode forward, mean cross-entropy, backward; the logits, loss, BN gradients and ReLU inputs."""
    relu_inputs = []
    original_relu = F.relu

    def recording_relu(x, *args, **kwargs):
        relu_inputs.append(x.detach().clone())
        return original_relu(x, *args, **kwargs)

    model.train()
    model.zero_grad(set_to_none=False)
    F.relu = recording_relu
    try:
        logits = model(images)
    finally:
        F.relu = original_relu
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    gradients = {name: p.grad.detach().clone() for name, p in batch_norm_parameters(model)}
    samples = {name: p.grad.detach().flatten()[::sample_stride(p)].clone()
               for name, p in model.named_parameters() if p.dim() == 4}
    return logits.detach(), loss.detach(), gradients, samples, relu_inputs


def sample_stride(parameter):
    """Every k-th element of a convolution's weight gradient, about 512 of them: enough to
    estimate its relative error at a 200th of the fixture size the whole tensors would take."""
    return max(1, parameter.numel() // 512)


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array, dtype=np.float64)
        data = array.tobytes()
        header[name] = {"dtype": "F64", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="ResNet18.initialise(seed:) and the synthetic stream's seed")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 64, 128])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model32 = ResNet18(args.width)
    initialise(model32, args.seed)
    model64 = ResNet18(args.width).double()
    model64.load_state_dict(model32.state_dict())
    largest = max(args.batches)
    pixels = RandomStream(args.seed, STREAM_SYNTHETIC).symmetric(largest * 3 * 32 * 32, 1.0).reshape(largest, 3, 32, 32)
    tensors = {
        "init.checksum": np.array([sum(p.double().sum().item() for p in model32.parameters())]),
        "input.checksum": np.array([pixels.astype(np.float64).sum()]),
    }
    for batch in args.batches:
        images = torch.from_numpy(pixels[:batch].copy())
        labels = torch.arange(batch) % 10
        logits64, loss64, grads64, samples64, relus64 = first_step(model64, images.double(), labels)
        logits32, loss32, grads32, samples32, relus32 = first_step(model32, images, labels)
        errors = [relative_error(grads32[name].double(), grads64[name]) for name in grads64]
        weight_errors = [relative_error(samples32[name].double(), samples64[name]) for name in samples64]
        flips = sum(int(((a > 0) != (b > 0)).sum()) for a, b in zip(relus32, relus64))
        total = sum(a.numel() for a in relus64)
        for name, gradient in grads64.items():
            tensors[f"b{batch}.grad.{name}"] = gradient.numpy()
        for name, sample in samples64.items():
            tensors[f"b{batch}.grad_sample.{name}"] = sample.numpy()
        tensors[f"b{batch}.torch_f32.conv_median"] = np.array([np.median(weight_errors)])
        tensors[f"b{batch}.torch_f32.conv_worst"] = np.array([max(weight_errors)])
        tensors[f"b{batch}.torch_f32.median"] = np.array([np.median(errors)])
        tensors[f"b{batch}.torch_f32.worst"] = np.array([max(errors)])
        tensors[f"b{batch}.loss"] = np.array([loss64.item()])
        tensors[f"b{batch}.logits"] = logits64.numpy()
        tensors[f"b{batch}.relu_flips"] = np.array([float(flips)])
        print(f"batch {batch}: loss {loss64.item():.6f}, PyTorch float32 vs float64 over {len(errors)} BN gradients: "
              f"median {np.median(errors):.2e}, worst {max(errors):.2e}; conv weight gradients (sampled) median "
              f"{np.median(weight_errors):.2e}, worst {max(weight_errors):.2e}; logits {relative_error(logits32.double(), logits64):.2e}; "
              f"ReLU flips {flips} of {total}")
    metadata = {"width": str(args.width), "seed": str(args.seed), "torch": torch.__version__,
                "made_by": "scripts/bn_gradient_reference.py"}
    write_safetensors(args.out, tensors, metadata)
    print(f"wrote {args.out} ({os.path.getsize(args.out) // 1024} KiB)")


if __name__ == "__main__":
    main()
