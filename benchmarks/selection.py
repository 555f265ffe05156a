"""What choosing a pool member costs: `router.balance.order` per request, per strategy.

    .venv/bin/python benchmarks/selection.py [--members 10] [--rounds 20000]

Prints microseconds per call (the best of five timings, which is the least disturbed
by the machine's other work). The engine calls it once per pool entry of a request.
"""

from __future__ import annotations

import argparse
import random
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from router.balance import Load, order
from router.policy import BALANCES, Target
from router.table import Entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    rng = random.Random(1)
    members = tuple(Target(f"p{i}", "m") for i in range(args.members))
    loads = {}
    for t in members:
        load = loads[t.name] = Load()
        load.in_flight, load.ttft_s = rng.randrange(5), rng.uniform(0.1, 2.0)
    costs = {t.name: rng.uniform(0.1, 20.0) for t in members}
    print(f"| balance | µs per request ({args.members} members) |\n|---|---|")
    for balance in BALANCES:
        weights = (
            tuple(float(i + 1) for i in range(args.members)) if balance == "weighted" else None
        )
        entry = Entry("r#0", members, balance, weights)
        best = min(
            timeit.repeat(
                lambda entry=entry: order(entry, loads, costs, rng.random, 7),
                number=args.rounds,
                repeat=5,
            )
        )
        print(f"| {balance} | {best / args.rounds * 1e6:.1f} |")


if __name__ == "__main__":
    main()
