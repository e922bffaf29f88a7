# ccd job wrapper (POSIX sh). Runs one job at most once and records how it ended.
# usage: sh job.sh JOBDIR CWD VENV COMMAND [local|parked]
# How and why: the notes at the end of this file, after the last command (the shell never
# reads that far: 2 KB of comments parsed cost every job ~15 us).
case $1 in /*) ccd_d=$1 ;; *) ccd_d=$PWD/$1 ;; esac  # the job may cd
ccd_how=$5  # how ccd started it (the trap's function has no $5)
# Once for the whole wrapper, not per command (a redirection of a builtin saves, opens and
# restores descriptors: ~8 system calls each): the job reads nothing, and what the shell
# says about a file it cannot open is not the job's (ccd writes its own words in the log).
# ccd's local executor (`local`, `parked`) starts it so already.
case $5 in
    local) ;;
    parked)  # see the notes: wait for ccd's `go`; the pipe's end without it: not to start
        IFS= read -r ccd_go && [ "$ccd_go" = go ] || exit 0
        exec </dev/null ;;
    *) exec </dev/null 2>/dev/null ;;
esac
set -C
# printf, not `:`: a failed redirection of a special builtin would end the shell (exit 2).
if ! { printf '' > "$ccd_d/status"; }; then
    [ -e "$ccd_d/status" ] && exit 75
    exit 73
fi
set +C
if ! { printf 'pid=%s\n' "$$" >> "$ccd_d/status"; }; then
    rm -f "$ccd_d/status"
    exit 73
fi
export CCD_JOB_DIR="$ccd_d"
ccd_end() {
    trap 'ccd_sig=1' TERM INT HUP  # from here a signal only stops the retries below
    set +eux
    # What it used, as the kernel counts it (ccd/executors/trace.py), with builtins only:
    # the bytes this shell and the processes it waited for read and wrote (Linux), then
    # `times`, whose second line (the children's CPU time) continues this one; `exit=`
    # follows it.
    # ccd, our parent when it started us `local` or `parked`, reads them itself while alive.
    case $ccd_how in local|parked) kill -0 "$PPID" ;; *) false ;; esac ||
        { read -r _ ccd_r; read -r _ ccd_w; } < "/proc/$$/io"
    # One append for both (the exit line last); should it fail (a full disk), the exit line
    # alone is retried.
    { printf 'trace=%s %s ' "${ccd_r:--}" "${ccd_w:--}"; times
      printf 'exit=%s\n' "$ccd_rc"; } >> "$ccd_d/status" ||
    until { printf 'exit=%s\n' "$ccd_rc" >> "$ccd_d/status"; }; do
        [ -n "$ccd_sig" ] && break
        sleep 1
    done
    exit "$ccd_rc"
}
trap 'ccd_rc=$?; ccd_end' EXIT
trap 'ccd_sig=1' TERM INT HUP
if ! cd "$2"; then
    printf 'ccd: cannot change to directory %s\n' "$2" > "$ccd_d/log"
    exit 126
elif [ -n "$3" ] && [ ! -f "$3/bin/activate" ]; then
    printf 'ccd: no virtualenv at %s (no bin/activate)\n' "$3" > "$ccd_d/log"
    exit 127
fi
if [ -n "$3" ]; then
    # shellcheck disable=SC1090,SC1091
    . "$3/bin/activate"
fi
case $4 in
    *exec*|*trap*|*set*|*alias*|*unset*|*readonly*|*". "*|*source*|*"()"*|*ccd_*)
        ( eval "$4" ) > "$ccd_d/log" 2>&1 ;;
    *)
        trap 'ccd_sig=1; exit 143' TERM
        trap 'ccd_sig=1; exit 130' INT
        trap 'ccd_sig=1; exit 129' HUP
        { eval "$4"; } > "$ccd_d/log" 2>&1 ;;
esac
exit

# -- notes -------------------------------------------------------------------------------
#
# JOBDIR/status is created exclusively (noclobber: O_EXCL) when the job starts, then gets
# `pid=N`; a second wrapper for the same job finds the file and exits 75 without running
# anything. When the job ends, a `trace=` record (what it used; two lines) and one `exit=N`
# line are appended. Readers act only on complete lines, so a half-written status is never
# taken for a result. Only shell builtins run here besides the job itself: every fork
# counts when a workflow has thousands of jobs.
#
# So the job runs in this shell, not in a subshell (a fork, an exit and page faults:
# 0.2-0.35 ms a job), and its end is recorded by the EXIT trap, whichever way it comes: the
# last command, `exit N` (N is recorded), `set -e`, an error that ends the shell, or a
# signal. A command that could undo that runs in a subshell as before: `exec` would replace
# this shell, `trap` its traps; `set`, `alias`, `unset`, `readonly`, `.`/`source`, a
# function definition or a `ccd_` name could change what the trap runs. The screen is by
# text, so it errs towards the subshell (`dataset.py` takes it too).
#
# A cancel signals the whole process group. In a subshell the job ends as it chooses (it
# may ignore SIGTERM) and its status is recorded. Run here, SIGTERM (INT, HUP) ends the
# job's running command, and the wrapper records exit=143 (130, 129), as when a killed
# subshell ended, once that command has ended (one that handles the signal is let finish
# first), without running the rest of the job. A job made only of builtins (`while :; do :;
# done`) stops at its next command: the shell runs the trap between commands. SIGKILL ends
# the wrapper too, and no exit line is written.
#
# A full disk is not the job's failure: with no room to create the status file, or to write
# its pid into the one just created (which is then removed: nobody else could have claimed
# it), the wrapper exits 73 having run nothing, and ccd starts the job again when there is
# room. The final `exit=` line is retried until it is written, or until the wrapper is
# signalled, so a job's end is not lost while the disk is full.
#
# Started by ccd's local executor (`local`, `parked` after COMMAND), the wrapper is ccd's
# child and the bytes it and the job read and wrote are read by ccd from its remains (a
# zombie's /proc/PID/io, before it is reaped), as its CPU and memory come from wait4: the
# wrapper skips its own read (dash reads it a byte per system call: ~20-35 us a job) while
# its parent is alive. When it is not (ccd was stopped or killed meanwhile), the wrapper
# reads them itself, for the ccd that re-attaches. (A ccd that dies between that check and
# reaping the wrapper loses the job's byte counts; nothing else.)
#
# Parked (`parked`): started ahead by ccd while the job's parent runs (parking.py), it
# waits for ccd's `go` on its stdin (a pipe) before it does anything. The pipe's end
# without `go` (ccd dropped it, or ccd is gone) means the job is not to start here: it
# exits having made nothing.
