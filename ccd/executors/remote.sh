# ccd's remote helpers (POSIX sh, builtins only but `wc` and `ps`): sent ahead of every poll
# and cancel command by ccd/executors/ssh.py, which then calls one of them.
#
# ccd_poll TOKEN...   one line per token, in order: "STATE PID EXIT MORE", then a line ".",
#                     then `wc -c` of the logs that exist, then "=". A token is a job
#                     directory, relative to the current one, with ":PID" of the wrapper
#                     ccd started if it has not seen the job's status file yet. STATE is
#                     n (no status file; d if that wrapper is gone too), s (starting),
#                     r (running), e (ended, EXIT known) or l (lost: gone without EXIT).
#                     MORE: for e, the status file's trace (`trace=` and the line after);
#                     for r with CCD_SAMPLE set, the largest VmHWM (kB) in its process tree.
# ccd_kill SIG DIR    signal the process group of the job in DIR.
#
# With CCD_NOPID set (batch jobs: the wrapper runs on another node, its pid means nothing
# here), a status file with a pid and no exit is r, never l: the queue tells the rest.

ccd_status() {
    p=- e=- x=
    while IFS= read -r l; do
        case $l in
            pid=*) p=${l#pid=} ;;
            exit=*) e=${l#exit=} ;;
            trace=*) IFS= read -r x; x="${l#trace=} $x" ;;
        esac
    done < "$1/status"
}

# The largest VmHWM (kB) of process $1 and its descendants, in m (0: none seen). Linux.
ccd_hwm() {
    m=0 hq=$1
    # shellcheck disable=SC2086
    while set -- $hq && [ $# -gt 0 ]; do
        hp=$1
        shift
        hq=$* hk=
        { while IFS= read -r hl; do
              case $hl in VmHWM:*) set -- $hl; [ "$2" -gt "$m" ] && m=$2; break ;; esac
          done < "/proc/$hp/status"
          read -r hk < "/proc/$hp/task/$hp/children"
        } 2>/dev/null
        hq="$hq $hk"
    done
}

ccd_poll() {
    for t do
        d=${t%%:*} w=${t#"$d"}
        w=${w#:} s=n p=- e=- x=
        if [ -e "$d/status" ]; then
            s=s
            ccd_status "$d" 2>/dev/null
            if [ "$e" != - ]; then
                s=e
            elif [ "$p" != - ]; then
                if [ -n "$CCD_NOPID" ] || kill -0 "$p" 2>/dev/null; then
                    s=r
                else  # gone: an exit line written before it went is complete now
                    ccd_status "$d" 2>/dev/null
                    if [ "$e" != - ]; then s=e; else s=l; fi
                fi
            fi
        elif [ -n "$w" ] && ! kill -0 "$w" 2>/dev/null; then
            s=d
        fi
        if [ "$s" = r ] && [ -n "$CCD_SAMPLE" ] && [ -z "$CCD_NOPID" ]; then
            ccd_hwm "$p"
            x=$m
        elif [ "$s" != e ]; then
            x=
        fi
        printf '%s %s %s %s\n' "$s" "$p" "$e" "$x"
    done
    echo .
    for t do
        shift
        d=${t%%:*}
        if [ -f "$d/log" ]; then set -- "$@" "$d/log"; fi
    done
    if [ $# -gt 0 ]; then LC_ALL=C wc -c -- "$@" 2>/dev/null; fi
    echo =
}

ccd_kill() {
    [ -e "$2/status" ] || return 0
    ccd_status "$2" 2>/dev/null
    [ "$p" != - ] && [ "$e" = - ] || return 0
    # The wrapper shares the process group of the session sshd made for its start.
    # shellcheck disable=SC2046
    set -- "$1" $(ps -o pgid= -p "$p" 2>/dev/null)
    if [ -n "$2" ] && [ "$2" -gt 1 ]; then
        kill -s "$1" -- "-$2" 2>/dev/null
    else
        kill -s "$1" "$p" 2>/dev/null
    fi
    return 0
}
