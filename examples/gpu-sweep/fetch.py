"""Make the benchmark's data: synthetic pixels (brightness, temperature) labelled cloud (1)
or clear (0), seeded so every run sees the same data."""

import csv
import random
from pathlib import Path

rng = random.Random(42)
Path("data").mkdir(exist_ok=True)
with open("data/pixels.csv", "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["brightness", "temperature", "cloud"])
    for i in range(2000):
        cloud = rng.random() < 0.4
        brightness = rng.gauss(0.7 if cloud else 0.35, 0.12)
        temperature = rng.gauss(0.3 if cloud else 0.6, 0.15)
        out.writerow([f"{brightness:.4f}", f"{temperature:.4f}", int(cloud)])
        if i % 500 == 499:
            print(f"# progress={(i + 1) * 100 // 2000}", flush=True)
print("2000 pixels in data/pixels.csv")
