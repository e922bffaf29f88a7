"""Compute: sum the fetched numbers, reporting progress with ccd's helper."""

import time
from pathlib import Path

from ccd.progress import progress

progress(1)
numbers = [int(x) for x in Path("data/numbers.txt").read_text().split()]
total = 0
for i, n in enumerate(numbers, 1):
    total += n
    time.sleep(0.2)
    progress(100 * i // len(numbers))
Path("data/total.txt").write_text(f"{total}\n")
print("total", total)
