"""The paper's Table 4: the time of every model per device (Name, Time), with each
model's own time, as table.csv and a printed table."""

import csv
import json
from pathlib import Path

times: dict[str, dict[str, float]] = {}
for path in sorted(Path("times").glob("*.json")):
    r = json.loads(path.read_text())
    times.setdefault(r["device"], {})[r["model"]] = r["seconds"]
models = sorted({m for per in times.values() for m in per})
with open("table.csv", "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["name", "time", *models])
    print(f"{'Name':10} {'Time':>8}  " + " ".join(f"{m:>7}" for m in models))
    for device, per in sorted(times.items(), key=lambda kv: sum(kv[1].values())):
        total = sum(per.values())
        out.writerow([device, f"{total:.3f}", *(f"{per.get(m, 0):.3f}" for m in models)])
        print(f"{device:10} {total:8.3f}  " + " ".join(f"{per.get(m, 0):7.3f}" for m in models))
