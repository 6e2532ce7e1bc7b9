"""Time to load a checkpoint: ``load_model(path)`` and ``load_model(path, export=True)``.

    python -m benchmarks.load_time                        # paper-preset Reacher `sen`
    python -m benchmarks.load_time --env SEN-Cubes-v0 --preset cpu

Each mode runs in a fresh Python process (the first load pays escnn's import and its
per-process caches), then twice more in the same process.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import json, sys, time
from sen_rl.model import load_model
path, export = sys.argv[1], sys.argv[2] == "1"
times = []
for _ in range(3):
    t = time.perf_counter()
    load_model(path, export=export)
    times.append(time.perf_counter() - t)
print(json.dumps({"loads_s": times}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="SEN-Reacher-v0", help="env id of the model")
    p.add_argument("--variant", default="sen", help="world-model variant")
    p.add_argument("--preset", default="paper", help="network sizes")
    p.add_argument("--checkpoint", help="time this checkpoint instead of a freshly built one")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = args.checkpoint
        if path is None:
            import torch

            from sen_rl.model import build_model

            torch.manual_seed(0)
            path = str(Path(tmp) / "model.pt")
            build_model(args.env, args.variant, args.preset).save(path)
        size = Path(path).stat().st_size / 2**20
        machine = platform.processor() or platform.machine()
        print(f"{args.env} {args.variant} {args.preset}: checkpoint {size:.0f} MiB ({machine})")
        for export in (False, True):
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, path, "1" if export else "0"], capture_output=True, text=True, check=True
            )
            loads = json.loads(out.stdout.strip().splitlines()[-1])["loads_s"]
            name = "load_model(path, export=True)" if export else "load_model(path)"
            print(f"  {name:<32} first {loads[0]:.2f} s, then {loads[1]:.2f} s, {loads[2]:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
