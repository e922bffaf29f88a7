#!/bin/sh
echo "# cloudmesh status=running progress=10 pid=$$"
total=$(cat data/total.txt)
sleep 0.5
echo "the total is $total"
echo "# cloudmesh status=running progress=50 pid=$$"
mkdir -p results
echo "the sum of the squares of 1 to 5 is $total" > results/answer.txt
rm -r data
echo "# cloudmesh status=done progress=100 pid=$$"
