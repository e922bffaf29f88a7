#!/bin/sh
# Fetch the data: here, write some numbers next to the workflow.
echo "# cloudmesh status=running progress=1 pid=$$"
mkdir -p data
i=1
while [ "$i" -le 5 ]; do
    echo "$((i * i))" >> data/numbers.tmp
    echo "# cloudmesh status=running progress=$((i * 20)) pid=$$"
    sleep 0.3
    i=$((i + 1))
done
mv data/numbers.tmp data/numbers.txt
echo "# cloudmesh status=done progress=100 pid=$$"
