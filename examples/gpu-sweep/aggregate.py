"""Aggregate the sweep: mean accuracy and training time per GPU and epochs over the runs,
as summary.csv and a printed table (the shape of the paper's Table 4)."""

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

runs: dict[tuple[str, int], list[dict[str, float]]] = defaultdict(list)
for path in sorted(Path("results").glob("*.json")):
    r = json.loads(path.read_text())
    runs[r["gpu"], r["epochs"]].append(r)
with open("summary.csv", "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["gpu", "epochs", "runs", "accuracy_mean", "seconds_mean"])
    print(f"{'gpu':6} {'epochs':>6} {'runs':>4} {'accuracy':>9} {'seconds':>8}")
    for (gpu, epochs), rs in sorted(runs.items()):
        acc = statistics.mean(r["accuracy"] for r in rs)
        sec = statistics.mean(r["seconds"] for r in rs)
        out.writerow([gpu, epochs, len(rs), f"{acc:.4f}", f"{sec:.4f}"])
        print(f"{gpu:6} {epochs:6d} {len(rs):4d} {acc:9.3f} {sec:8.3f}")
print(f"{sum(len(rs) for rs in runs.values())} runs aggregated into summary.csv")
