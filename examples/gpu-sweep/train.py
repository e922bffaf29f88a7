"""Train the stand-in cloud-mask model for one sweep instance (gpu, run, epochs from
CCD_PARAM_*): logistic regression by gradient descent, seeded by the run; writes
results/<gpu>-<run>-<epochs>.json with its accuracy and training time."""

import csv
import json
import math
import os
import random
import time
from pathlib import Path

gpu, run = os.environ["CCD_PARAM_GPU"], int(os.environ["CCD_PARAM_RUN"])
epochs = int(os.environ["CCD_PARAM_EPOCHS"])
with open("data/pixels.csv") as f:
    rows = [(float(r["brightness"]), float(r["temperature"]), int(r["cloud"]))
            for r in csv.DictReader(f)]
rng = random.Random(run)
rng.shuffle(rows)
split = len(rows) * 4 // 5
train, test = rows[:split], rows[split:]
w = [rng.uniform(-0.1, 0.1) for _ in range(3)]
started = time.perf_counter()
for epoch in range(epochs):
    for b, t, y in train[: 400]:  # a minibatch an epoch: quick, and it still learns
        p = 1 / (1 + math.exp(-(w[0] + w[1] * b + w[2] * t)))
        g = p - y
        w = [w[0] - 0.5 * g, w[1] - 0.5 * g * b, w[2] - 0.5 * g * t]
    print(f"# progress={(epoch + 1) * 100 // epochs}", flush=True)
seconds = time.perf_counter() - started
right = sum((w[0] + w[1] * b + w[2] * t > 0) == bool(y) for b, t, y in test)
result = {"gpu": gpu, "run": run, "epochs": epochs, "accuracy": right / len(test),
          "seconds": seconds}
Path("results").mkdir(exist_ok=True)
Path(f"results/{gpu}-{run}-{epochs}.json").write_text(json.dumps(result) + "\n")
print(json.dumps(result))
