"""One rank of the training-step workload (bench/train_step.py starts two).

Run by the collective library's venv python (torch, numpy, libccl.so.2), one
rank per host.  It trains a seeded MLP on synthetic data, data-parallel:
every step each rank computes gradients on its own batch, the gradients are
flattened into one float32 buffer, summed across the ranks by the chosen
backend and halved, and SGD steps on the average.

backend ccl
    oneCCL through usb4fabric.ccl (ctypes); the libfabric provider comes from
    the environment (FI_PROVIDER=usb4 or tcp, see ccl.rank_env).  Rank 0
    makes the unique id and publishes it as a file in --rundir (the hosts
    share the filesystem); rank 1 waits for it.
backend gloo
    torch.distributed's gloo, initialised over TCP at --master (host 0's
    cable address), over the interface GLOO_SOCKET_IFNAME names.

With ``--backends ccl,gloo`` both are opened and the steps alternate
between them (even steps oneCCL, odd steps gloo): on a shared machine the
two then run under the same load, so their ratio holds where absolute
times drift.  At the end the last gradients are allreduced through each
backend once more and the sums compared bit for bit.

The task is learnable on purpose (a Gaussian mixture, one centre per
class), so a falling loss shows the averaged gradients are right.  The
loss is measured on one held-out batch, the same on both ranks, before and
after training.  At the end the rank prints one line, ``TRAIN_RESULT {json}``:
per backend and measured step its time and its allreduce time, the
losses, whether the backends' sums agree, and a SHA-256 of every
parameter's bytes (identical on both ranks, or the ranks drifted apart).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from usb4fabric import ccl  # noqa: E402

WORLD = 2
UNIQUE_ID_FILE = "ccl.uid"
CLASSES = 16
RESULT_PREFIX = "TRAIN_RESULT "


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rank", type=int, required=True)
    ap.add_argument("--backends", required=True, type=lambda text: text.split(","),
                    help="ccl, gloo or ccl,gloo (steps alternate between them)")
    ap.add_argument("--rundir", type=Path, required=True, help="shared by both ranks")
    ap.add_argument("--master", help="gloo: host 0's address:port")
    ap.add_argument("--steps", type=int, default=20, help="measured steps")
    ap.add_argument("--warmup", type=int, default=3, help="steps before measuring")
    ap.add_argument("--inputs", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=1536)
    ap.add_argument("--layers", type=int, default=3, help="hidden layers")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args(argv)
    if not args.backends or set(args.backends) - {"ccl", "gloo"} \
            or len(set(args.backends)) != len(args.backends):
        ap.error("--backends: ccl, gloo or ccl,gloo")
    if "gloo" in args.backends and not args.master:
        ap.error("gloo needs --master")
    return args


def build_model(args) -> nn.Module:
    torch.manual_seed(args.seed)  # same initial weights on every rank
    widths = [args.inputs] + [args.hidden] * args.layers
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], CLASSES))
    return nn.Sequential(*layers)


class Data:
    """Synthetic batches from a Gaussian mixture: label y uniform, x = centre[y]
    + N(0, 1) noise, the centres fixed by the seed (learnable in a few steps)."""

    def __init__(self, args, rank: int):
        shared = torch.Generator().manual_seed(args.seed + 1)
        self.centres = 0.5 * torch.randn(CLASSES, args.inputs, generator=shared)
        self.held_out = self._make(shared, 4 * args.batch)
        self.gen = torch.Generator().manual_seed(args.seed * 1000 + rank + 2)  # per rank
        self.batch = args.batch

    def _make(self, gen, n):
        y = torch.randint(CLASSES, (n,), generator=gen)
        return self.centres[y] + torch.randn(n, self.centres.shape[1], generator=gen), y

    def next(self):
        return self._make(self.gen, self.batch)


class CclAllreduce:
    def __init__(self, args):
        uid_path = args.rundir / UNIQUE_ID_FILE
        if args.rank == 0:
            uid = ccl.unique_id()
            ccl.write_unique_id(uid_path, uid)
        else:
            uid = ccl.read_unique_id(uid_path)
        self.comm = ccl.Communicator(WORLD, uid, args.rank)

    def __call__(self, flat: torch.Tensor) -> None:
        self.comm.allreduce(flat, ccl.SUM)

    def close(self) -> None:
        self.comm.destroy()


class GlooAllreduce:
    def __init__(self, args):
        import torch.distributed as dist

        self.dist = dist
        dist.init_process_group("gloo", init_method="tcp://" + args.master,
                                rank=args.rank, world_size=WORLD)

    def __call__(self, flat: torch.Tensor) -> None:
        self.dist.all_reduce(flat, op=self.dist.ReduceOp.SUM)

    def close(self) -> None:
        self.dist.destroy_process_group()


OPENERS = {"ccl": CclAllreduce, "gloo": GlooAllreduce}


def weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def held_out_loss(model, data, loss_fn) -> float:
    with torch.no_grad():
        x, y = data.held_out
        return float(loss_fn(model(x), y))


def train_step(model, params, flat, data, loss_fn, opt, allreduce) -> tuple[float, float, float]:
    """One data-parallel step: (seconds, seconds in allreduce, training loss)."""
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=False)
    x, y = data.next()
    loss = loss_fn(model(x), y)
    loss.backward()
    torch.cat([p.grad.view(-1) for p in params], out=flat)
    t1 = time.perf_counter()
    allreduce(flat)
    t2 = time.perf_counter()
    flat.mul_(1.0 / WORLD)  # exact for 2 ranks: both hold the same average
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
        offset += p.numel()
    opt.step()
    return time.perf_counter() - t0, t2 - t1, loss.item()


def backends_agree(allreduces: dict, flat: torch.Tensor) -> bool:
    """Allreduces the last gradients through every backend: bit-identical sums?"""
    sums = []
    for allreduce in allreduces.values():
        buf = flat.clone()
        allreduce(buf)
        sums.append(buf)
    return all(torch.equal(sums[0], other) for other in sums[1:])


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    model = build_model(args)
    params = [p for p in model.parameters()]
    for p in params:
        p.grad = torch.zeros_like(p)
    flat = torch.zeros(sum(p.numel() for p in params))
    data = Data(args, args.rank)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9)
    allreduces = {name: OPENERS[name](args) for name in args.backends}
    names = list(allreduces)
    loss_before = held_out_loss(model, data, loss_fn)
    timed = {name: {"step_s": [], "allreduce_s": []} for name in names}
    losses = []
    for i in range(len(names) * (args.warmup + args.steps)):
        name = names[i % len(names)]  # step by step, so every backend sees the same load
        step_s, reduce_s, loss = train_step(model, params, flat, data, loss_fn, opt,
                                            allreduces[name])
        losses.append(loss)
        if i >= len(names) * args.warmup:
            timed[name]["step_s"].append(step_s)
            timed[name]["allreduce_s"].append(reduce_s)
    result = {
        "rank": args.rank, "backends": timed, "params": flat.numel(),
        "allreduce_bytes": flat.numel() * flat.element_size(), "train_loss": losses,
        "loss_before": loss_before, "loss_after": held_out_loss(model, data, loss_fn),
        "weights_sha256": weights_digest(model),
        "backends_agree": backends_agree(allreduces, flat),
    }
    for allreduce in allreduces.values():
        allreduce.close()
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
