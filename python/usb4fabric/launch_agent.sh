#!/bin/sh
# Plays ssh for Open MPI's rsh launcher (--mca plm_rsh_agent <this file>)
# between the namespace hosts of usb4fabric/nshosts.py.
#
#   launch_agent.sh [ssh options] <host> <command words...>
#
# <host> is an address (or a hostname) of a host; the command words are
# joined, like ssh does, into one shell command line that runs inside the
# namespace owning that address (network + UTS namespace, /sys remounted by
# `ip netns exec`).  Only namespaces of one cluster are searched: the one in
# $USB4T_CLUSTER (e.g. usb4t-1234), else the cluster of the namespace this
# agent itself runs in (mpirun runs inside the first host), since parallel
# clusters reuse the same addresses.
set -u

# ssh options that Open MPI may put before the host (-x, -o opt, -p port...).
while [ $# -gt 0 ]; do
    case "$1" in
        -[46AaCfGgKkMNnqsTtVvXxYy]*) shift ;;
        -[BbcDEeFIiJLlmOoPpQRSWw]) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
if [ $# -lt 2 ]; then
    echo "launch_agent: usage: $0 <host> <command...>" >&2
    exit 255
fi
target=$1
shift

cluster=${USB4T_CLUSTER:-}
if [ -z "$cluster" ]; then
    # The cluster of the namespace we run in: compare inodes with /run/netns.
    self_ino=$(stat -L -c %i /proc/self/ns/net)
    for f in /run/netns/usb4t-*; do
        [ -e "$f" ] || continue
        if [ "$(stat -L -c %i "$f")" = "$self_ino" ]; then
            cluster=$(basename "$f" | sed 's/-h[0-9]*$//')
            break
        fi
    done
fi
if [ -z "$cluster" ]; then
    echo "launch_agent: no cluster: set USB4T_CLUSTER or run inside a usb4t host" >&2
    exit 255
fi

ns=
for f in /run/netns/"$cluster"-h*; do
    [ -e "$f" ] || continue
    name=$(basename "$f")
    if [ "$name" = "$target" ] ||
       ip -n "$name" -o -4 addr show | grep -q " inet $target/"; then
        ns=$name
        break
    fi
done
if [ -z "$ns" ]; then
    echo "launch_agent: no host of $cluster owns address $target" >&2
    exit 255
fi

exec ip netns exec "$ns" nsenter --uts=/run/usb4t/"$ns".uts -- /bin/sh -c "$*"
