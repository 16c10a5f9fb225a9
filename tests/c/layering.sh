#!/bin/sh
# layering.sh OBJECT... - the core's files call each other in layers, read
# from the compiled objects (nm): which file defines each lb_/lb__ symbol
# another one uses. Lower files never use higher ones:
#   hostcall, reap, rtstate, tmpfile, exepath, background  leaves: nothing else of the core
#   log                 messages: runs the host's sink through hostcall
#   sched               tasks: knows no processes, no loop, no lifecycle
#   proc                children: tasks and the leaves, not the loop or runtime
#   loop                loop modes: tasks and processes
#   modules             what a state can require: the bindings' luaopen_*
#                       (not layered here), nothing else of these
#   runtime             lifecycle: all of them
# Prints one line per rule and "N passed, N failed".
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for o in "$@"; do
  f=$(basename "$o" .o); f=${f%.c}
  nm --defined-only "$o" | awk '$2 ~ /^[TDBR]$/ && $3 ~ /^lb_/ {print $3}' >"$tmp/$f.def"
  nm -u "$o" | awk '$2 ~ /^lb_/ {print $2}' >"$tmp/$f.use"
done
# uses FILE: the core files whose symbols FILE uses
uses() {
  for d in "$tmp"/*.def; do
    g=$(basename "$d" .def)
    [ "$g" = "$1" ] && continue
    if grep -qxFf "$d" "$tmp/$1.use" 2>/dev/null; then echo "$g"; fi
  done
}
pass=0; fail=0
for f in hostcall log reap rtstate tmpfile exepath background sched proc loop modules runtime; do   # no object, no claim
  [ -s "$tmp/$f.def" ] || { echo "FAIL no object defines the symbols of $f.c"; fail=$((fail + 1)); }
done
rule() {   # rule FILE ALLOWED...: FILE uses only ALLOWED among the layered files
  file=$1; shift
  bad=""
  for g in $(uses "$file"); do
    case " hostcall log reap rtstate tmpfile exepath background sched proc loop modules runtime " in *" $g "*) ;; *) continue ;; esac
    case " $* " in *" $g "*) ;; *) bad="$bad $g" ;; esac
  done
  if [ -z "$bad" ]; then pass=$((pass + 1)); echo "ok   $file uses only: ${*:-nothing}"
  else fail=$((fail + 1)); echo "FAIL $file uses$bad"; fi
}
rule hostcall
rule log hostcall
rule reap
rule rtstate
rule tmpfile
rule exepath
rule background
rule sched hostcall log rtstate
rule proc hostcall log reap rtstate sched background
rule loop hostcall log rtstate sched proc
rule modules
rule runtime hostcall log reap rtstate tmpfile exepath background sched proc loop modules
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
