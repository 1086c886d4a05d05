# The flags every podman build and run of socklb's needs on machines like CI's: tools/image.sh
# sources this file (podman_flags); the image test runs it, and it prints one flag a line.
# - runc, not crun: crun refuses a hybrid cgroup layout (cgroup v1 controllers plus a cgroup2
#   mount with a controller on it), which this machine has; runc runs on v1, hybrid and v2.
# - The caller's own hard limits for open files and processes: without --ulimit podman asks for
#   1048576 of each, which a host whose root lacks CAP_SYS_RESOURCE cannot grant; podman itself
#   caps its processes at 32768.
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ] && nofile=1048576
[ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
podman_flags=(--runtime=runc "--ulimit=nofile=$nofile:$nofile" "--ulimit=nproc=$nproc:$nproc")
# Run rather than sourced (the image test does): one flag a line.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then printf '%s\n' "${podman_flags[@]}"; fi
