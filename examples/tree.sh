#!/bin/sh
# A small process tree for `subreaper --report`. Each worker is started by a shell that exits
# at once, so the worker is orphaned and adopted by subreaper, which reaps it and reports it:
# workers that finish with different codes, one killed by a signal, and a daemon left behind.
echo "tree: starting 3 workers, a crashing one and a daemon"
for i in 1 2 3; do
  sh -c "sh -c 'sleep 0.$i; exit $i' &"
done
sh -c "sh -c 'sleep 0.2; kill -KILL \$\$' &"
# A daemon: still running when this script exits, so subreaper terminates it.
sh -c "sleep 300 &"
sleep 0.6
echo "tree: done, leaving the daemon behind"
exit 0
