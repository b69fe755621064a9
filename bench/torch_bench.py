"""PyTorch CPU reference for `npm run bench` (bench/bench.ts runs it and reads its JSON line).

The paper's MNIST network, as bnx builds it: 784-100-100-100-10, sigmoid hidden units, softmax
cross-entropy, plain SGD on mini-batches of 60. With batch norm, each hidden Linear drops its bias
and is followed by BatchNorm1d(momentum=0.01, eps=1e-3) before the sigmoid: bnx's defaults
(Keras convention running = 0.99 running + 0.01 batch is PyTorch's momentum=0.01).

Inputs are random MNIST-shaped batches (pixels in [0, 1), labels 0-9): speed does not depend on the
values. Every step reads its loss back (loss.item()), as bnx reads each step's loss and correct count.

Prints one JSON line: steps/s of a single run per norm (best of --rounds), and model-steps/s of a
learning-rate sweep run one model after another (all points' steps / total time). With --paper, the
seconds of each run of the paper spec in full instead (--steps 50000: `bnx run
experiments/paper-mnist.yaml`'s work, its test-set evaluations included).
"""

import argparse
import json
import time

import torch
from torch import nn

FEATURES, CLASSES, HIDDEN, BATCH = 784, 10, (100, 100, 100), 60
POOL = 10_000  # examples of random data the batches are cut from
# After training, a bnx run evaluates 1,000 validation examples (the bench's eval_limit) and the
# 10,000 test examples in inference mode: so does every run here, in chunks of 1,000.
EVAL_EXAMPLES, EVAL_CHUNK = 11_000, 1_000


def build(norm: str) -> nn.Module:
    layers: list[nn.Module] = []
    fan_in = FEATURES
    for units in HIDDEN:
        if norm == "batch":
            layers += [nn.Linear(fan_in, units, bias=False), nn.BatchNorm1d(units, momentum=0.01, eps=1e-3), nn.Sigmoid()]
        else:
            layers += [nn.Linear(fan_in, units), nn.Sigmoid()]
        fan_in = units
    layers.append(nn.Linear(fan_in, CLASSES))
    return nn.Sequential(*layers)


def evaluate(model: nn.Module, loss_fn: nn.Module, examples: int, x: torch.Tensor, y: torch.Tensor) -> None:
    """Inference-mode loss and accuracy on `examples` examples, in chunks, read back as bnx reads them."""
    model.eval()
    with torch.no_grad():
        for k in range(examples // EVAL_CHUNK):
            i = (k * EVAL_CHUNK) % POOL
            logits = model(x[i : i + EVAL_CHUNK])
            loss_fn(logits, y[i : i + EVAL_CHUNK]).item()
            (logits.argmax(1) == y[i : i + EVAL_CHUNK]).sum().item()
    model.train()


def train(norm: str, lr: float, steps: int, x: torch.Tensor, y: torch.Tensor, eval_every: int = 0, eval_examples: int = EVAL_EXAMPLES) -> float:
    """Builds a fresh model, trains it `steps` SGD steps, evaluating `eval_examples` examples every
    `eval_every` steps (0: never) and once more at the end; returns the seconds taken."""
    start = time.perf_counter()
    model = build(norm)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    batches = POOL // BATCH
    for step in range(steps):
        i = (step % batches) * BATCH
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[i : i + BATCH]), y[i : i + BATCH])
        loss.backward()
        optimizer.step()
        loss.item()
        if eval_every and (step + 1) % eval_every == 0:
            evaluate(model, loss_fn, eval_examples, x, y)
    evaluate(model, loss_fn, eval_examples, x, y)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, required=True, help="steps of a single run")
    parser.add_argument("--sweep-steps", type=int, help="steps of each sweep point (not with --paper)")
    parser.add_argument("--lrs", help="comma-separated learning rates of the sweep (not with --paper)")
    parser.add_argument("--rounds", type=int, default=2, help="single runs: best of this many")
    parser.add_argument("--lr", type=float, default=0.5, help="learning rate of the single runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--paper", action="store_true", help="instead: the paper spec in full (both runs, 50,000 steps, 10,000 test examples evaluated every 500 steps), one after the other")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(POOL, FEATURES)
    y = torch.randint(0, CLASSES, (POOL,))
    norms = ["none", "batch"]
    if args.paper:
        seconds = {norm: train(norm, args.lr, args.steps, x, y, eval_every=500, eval_examples=10_000) for norm in norms}
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "paper": seconds}))
        return
    if args.sweep_steps is None or args.lrs is None:
        parser.error("--sweep-steps and --lrs are required (unless --paper)")
    lrs = [float(v) for v in args.lrs.split(",")]

    for norm in norms:  # warm-up: allocator, kernels
        train(norm, args.lr, min(200, args.steps), x, y)
    single = {norm: [] for norm in norms}
    for _ in range(args.rounds):  # interleaved: both norms see the same machine load
        for norm in norms:
            single[norm].append(args.steps / train(norm, args.lr, args.steps, x, y))
    sweep = {}
    for norm in norms:
        seconds = sum(train(norm, lr, args.sweep_steps, x, y) for lr in lrs)
        sweep[norm] = len(lrs) * args.sweep_steps / seconds
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "single": {norm: max(v) for norm, v in single.items()},
        "sweep": sweep,
    }))


if __name__ == "__main__":
    main()
