# Sourced by ./platform and scripts/infra.sh (which define die).
#
# free_port VAR: sets VAR to a free port reserved for this shell's life. Like tests/Platform.Testing/FreePort.cs:
# taken from below the kernel's ephemeral range (which outgoing connections and binds to port 0 use, so a port in
# it can be taken by any client socket at any moment), and locked with flock on a file under
# $TMPDIR/platform-test-ports that this shell (and the servers it starts, which inherit the descriptor) keeps open,
# so no test process takes the same port before or while the server holds it.
free_port() {
  local -n result=$1
  local dir=${TMPDIR:-/tmp}/platform-test-ports low port fd
  mkdir -p "$dir"
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  for port in $(shuf -i "$((low > 22000 ? low - 12000 : 10000))-$((low - 1))"); do
    exec {fd}>>"$dir/$port.lock"
    if flock -n "$fd" && [ -z "$(ss -Hltn "sport = :$port")" ]; then
      result=$port
      return 0
    fi
    exec {fd}>&-
  done
  die "no free port below $low"
}
