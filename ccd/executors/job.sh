# ccd job wrapper (POSIX sh). Runs one job at most once and records how it ended.
# usage: sh job.sh JOBDIR CWD VENV COMMAND
#
# JOBDIR/status is created exclusively (noclobber: O_EXCL) when the job starts, then gets
# `pid=N`; a second wrapper for the same job finds the file and exits 75 without running
# anything. When the job ends, a `trace=` record (what it used; two lines) and one `exit=N`
# line are appended. Readers act only on complete lines, so a half-written status is never
# taken for a result. Only shell builtins run here besides the job itself: every fork
# counts when a workflow has thousands of jobs.
#
# A full disk is not the job's failure: with no room to create the status file, or to write
# its pid into the one just created (which is then removed: nobody else could have claimed
# it), the wrapper exits 73 having run nothing, and ccd starts the job again when there is
# room. The final `exit=` line is retried until it is written, or until the wrapper is
# signalled, so a job's end is not lost while the disk is full.
d=$1
set -C
# printf, not `:`: a failed redirection of a special builtin would end the shell (exit 2).
if ! { printf '' > "$d/status"; } 2>/dev/null; then
    [ -e "$d/status" ] && exit 75
    exit 73
fi
set +C
if ! { printf 'pid=%s\n' "$$" >> "$d/status"; } 2>/dev/null; then
    rm -f "$d/status"
    exit 73
fi
export CCD_JOB_DIR="$d"
# A cancel signals the whole process group; let the job end first, then record it.
trap 'signalled=1' TERM INT HUP
if ! cd "$2" 2>/dev/null; then
    printf 'ccd: cannot change to directory %s\n' "$2" > "$d/log"
    rc=126
elif [ -n "$3" ] && [ ! -f "$3/bin/activate" ]; then
    printf 'ccd: no virtualenv at %s (no bin/activate)\n' "$3" > "$d/log"
    rc=127
else
    if [ -n "$3" ]; then
        # shellcheck disable=SC1090,SC1091
        . "$3/bin/activate"
    fi
    ( eval "$4" ) > "$d/log" 2>&1 < /dev/null
    rc=$?
fi
# What it used, as the kernel counts it (ccd/executors/trace.py), with builtins only: the
# bytes this shell and the processes it waited for read and wrote (Linux), then `times`,
# whose second line (the children's CPU time) continues this one; `exit=` follows it.
{ read -r _ ccd_r; read -r _ ccd_w; } < "/proc/$$/io" 2>/dev/null
{ printf 'trace=%s %s ' "${ccd_r:--}" "${ccd_w:--}"; times; } >> "$d/status" 2>/dev/null
until { printf 'exit=%s\n' "$rc" >> "$d/status"; } 2>/dev/null; do
    [ -n "$signalled" ] && break
    sleep 1
done
exit "$rc"
