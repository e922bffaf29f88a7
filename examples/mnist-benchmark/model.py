"""Train and test one stand-in model on one device (CCD_PARAM_MODEL, CCD_PARAM_DEVICE) and
write times/<device>-<model>.json with its accuracy and time. The models differ in how
they see an image: mlp (all pixels), cnn (2x2 pooled features), lstm and rnn (the image
row by row, with a running state)."""

import json
import os
import time
from pathlib import Path

device, name = os.environ["CCD_PARAM_DEVICE"], os.environ["CCD_PARAM_MODEL"]
images = json.loads(Path("data/digits.json").read_text())


def features(pixels: list[float]) -> list[float]:
    if name == "mlp":
        return pixels
    if name == "cnn":
        return [sum(pixels[r * 8 + c] for r in (i, i + 1) for c in (j, j + 1)) / 4
                for i in range(0, 8, 2) for j in range(0, 8, 2)]
    state, out = [0.0] * 8, []
    for row in range(8):  # lstm keeps more of its past than rnn
        keep = 0.7 if name == "lstm" else 0.3
        row_pixels = pixels[row * 8:row * 8 + 8]
        state = [keep * s + (1 - keep) * p for s, p in zip(state, row_pixels, strict=True)]
        out += state
    return out


started = time.perf_counter()
train, test = images[:500], images[500:]
centroids: dict[int, list[float]] = {}
for epoch in range(5):
    sums: dict[int, list[float]] = {}
    counts: dict[int, int] = {}
    for image in train:
        f = features(image["pixels"])
        acc = sums.setdefault(image["digit"], [0.0] * len(f))
        for k, v in enumerate(f):
            acc[k] += v
        counts[image["digit"]] = counts.get(image["digit"], 0) + 1
    centroids = {d: [v / counts[d] for v in s] for d, s in sums.items()}
    print(f"# progress={(epoch + 1) * 20}", flush=True)


def predict(f: list[float]) -> int:
    def distance(d: int) -> float:
        return sum((a - b) ** 2 for a, b in zip(f, centroids[d], strict=True))
    return min(centroids, key=distance)


right = sum(predict(features(i["pixels"])) == i["digit"] for i in test)
seconds = time.perf_counter() - started
Path("times").mkdir(exist_ok=True)
result = {"device": device, "model": name, "accuracy": right / len(test), "seconds": seconds}
Path(f"times/{device}-{name}.json").write_text(json.dumps(result) + "\n")
print(json.dumps(result))
