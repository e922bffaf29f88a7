"""Make the benchmark's data: noisy 8x8 images of the digits 0-9 drawn from fixed
templates, seeded so every run sees the same data."""

import json
import random
from pathlib import Path

rng = random.Random(7)
templates = [[rng.random() < 0.45 for _ in range(64)] for _ in range(10)]
images = []
for i in range(600):
    digit = i % 10
    images.append({"digit": digit, "pixels": [
        round(min(1.0, max(0.0, (0.8 if on else 0.1) + rng.gauss(0, 0.2))), 3)
        for on in templates[digit]]})
Path("data").mkdir(exist_ok=True)
Path("data/digits.json").write_text(json.dumps(images))
print("# progress=100")
print(f"{len(images)} images in data/digits.json")
