#!/bin/sh
# Runs a command inside a Debian root made by scripts/stacks.sh (a chroot):
#
#   scripts/chroot-run.sh ROOT COMMAND [ARGS...]
#
# The command sees the machine's /proc, /sys, /dev (with /dev/shm), /tmp,
# the network namespaces (/run/netns, /run/usb4t: the test hosts) and this
# repository at its own path, so paths given to it (the provider, compiled
# test programs, the launch agent) are the same inside and out.  Folders in
# $USB4_CHROOT_BINDS (colon-separated) are bound too.
#
# The mounts are made in a private mount namespace of the command's own:
# they vanish with it, on success, failure or kill, and nothing is left
# mounted under ROOT.  Run it inside `ip netns exec HOST` to run in a host.
set -eu

if [ $# -lt 2 ]; then
	echo "usage: $0 ROOT COMMAND [ARGS...]" >&2
	exit 2
fi
root=$(cd "$1" && pwd)
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$root/usr/bin/env" ]; then
	echo "chroot-run: $root is not a usable root (no usr/bin/env): run scripts/stacks.sh" >&2
	exit 2
fi

if [ "${USB4_CHROOT_INSIDE:-}" != "$root" ]; then
	# First pass: enter a private mount namespace, then run this script again.
	USB4_CHROOT_INSIDE=$root exec unshare --mount --propagation private -- "$0" "$root" "$@"
fi

bind() {	# bind FOLDER: the machine's FOLDER at the same path under root
	[ -d "$1" ] || return 0
	mkdir -p "$root$1"
	mount --rbind "$1" "$root$1"
}
# The root a mount point of its own: `ip netns exec` inside (the launch
# agent's) remounts / as a slave, which needs one.
mount --bind "$root" "$root"
bind /proc
bind /sys
bind /dev
bind /tmp
bind /run/netns
bind /run/usb4t
bind "$repo"
old_ifs=$IFS
IFS=:
for extra in ${USB4_CHROOT_BINDS:-}; do
	IFS=$old_ifs
	[ -n "$extra" ] && bind "$extra"
done
IFS=$old_ifs
unset USB4_CHROOT_INSIDE
# The root's own programs first; the caller's PATH after (venvs mean nothing here).
exec chroot "$root" /usr/bin/env PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"
