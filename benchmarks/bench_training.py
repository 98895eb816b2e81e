"""The training harness against a plain torchvision DataLoader loop, and screening against training.

Same model, data size, batch size and steps, side by side in one run; medians of several runs
and their ratio. CPU always; CUDA too when available.

    python benchmarks/bench_training.py [--steps 50] [--repeats 3] [--model 'plaincnn(depth=4, width=16)']
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def plain_loop(model_name: str, spec: str, data, steps: int, batch_size: int, device: str) -> float:
    """The usual way: a TensorDataset in host memory, a DataLoader, torchvision's flip per sample."""
    from torch.utils.data import DataLoader, Dataset
    from torchvision.transforms import v2

    from explorer.models import create_model

    flip = v2.RandomHorizontalFlip()

    class Images(Dataset):
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            return flip(data.x[i]), data.y[i]

    torch.manual_seed(0)
    model = create_model(model_name, spec, num_classes=data.num_classes, in_channels=3).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1 * batch_size / 256, momentum=0.9, weight_decay=1e-4)
    loader = DataLoader(Images(), batch_size=batch_size, shuffle=True, drop_last=True)
    start = time.perf_counter()
    step = 0
    while step < steps:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                break
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def harness(model_name: str, spec: str, data, steps: int, batch_size: int, device: str) -> float:
    from explorer.models import create_model
    from explorer.training import TrainConfig, train

    torch.manual_seed(0)
    model = create_model(model_name, spec, num_classes=data.num_classes, in_channels=3)
    result = train(model, data, None, TrainConfig(steps=steps, batch_size=batch_size, device=device))
    return result.wall_time_s


def screening(model_name: str, spec: str, data, batch_size: int, batches: int, device: str) -> float:
    from explorer import score
    from explorer.data import iter_batches

    start = time.perf_counter()
    score(spec, model=model_name, inputs=list(iter_batches(data, batch_size, batches)), device=device,
          num_classes=data.num_classes)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="plaincnn(depth=4, width=16)")
    parser.add_argument("--spec", default="bn")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from explorer.data import load_dataset

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"model {args.model}, spec {args.spec}, {args.samples} samples, batch {args.batch_size}, "
          f"{args.steps} steps, median of {args.repeats}; torch threads {torch.get_num_threads()}")
    for device in devices:
        data = load_dataset("synthetic", "train", limit=args.samples, seed=0)
        rows = {}
        for name, fn in (("plain DataLoader loop", lambda: plain_loop(args.model, args.spec, data, args.steps, args.batch_size, device)),
                         ("normx harness", lambda: harness(args.model, args.spec, data, args.steps, args.batch_size, device)),
                         ("screening (2 batches)", lambda: screening(args.model, args.spec, data, args.batch_size, 2, device))):
            fn()  # warm-up
            rows[name] = statistics.median(fn() for _ in range(args.repeats))
        print(f"[{device}]")
        for name, seconds in rows.items():
            print(f"  {name:<24} {seconds:8.3f} s")
        print(f"  harness speed-up over the plain loop: {rows['plain DataLoader loop'] / rows['normx harness']:.2f}x")
        print(f"  training {args.steps} steps costs {rows['normx harness'] / rows['screening (2 batches)']:.1f}x one screening")


if __name__ == "__main__":
    main()
