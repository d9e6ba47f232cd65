// Builds the native init (crates/subreaper-init, binary `subreaper`) in release mode and puts
// it at packages/subreaper/native/subreaper, where bin/subreaper finds it in a repository build.
//
//   node scripts/build-init.mjs [--target TRIPLE] [--zig] [--out FILE]
//     --target  cross-compile (rustup target add TRIPLE first)
//     --zig     build with cargo-zigbuild (the Linux targets in CI; a .2.17 suffix pins glibc)
//     --out     where to put the binary (default native/subreaper)
import { execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdirSync, renameSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..')
const root = join(pkg, '..', '..')
const argv = process.argv.slice(2)
const valueOf = (name) => {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : undefined
}
const target = valueOf('--target')
const out = resolve(valueOf('--out') ?? join(pkg, 'native', 'subreaper'))

// A glibc build is linked statically when cargo links it (not zig, which pins glibc 2.17 and links
// it dynamically): no dynamic loader and no libgcc_s at start-up, about 0.3 ms less from exec to
// the command's first byte and half the resident memory (bench/README.md, section 8). Only the
// init's own crate gets the flag (`cargo rustc`), so the dependencies' builds are shared.
const zig = argv.includes('--zig')
const gnu = (target ?? `${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-unknown-${process.platform}-gnu`).endsWith('-linux-gnu')
const statically = !zig && gnu
const args = [
  zig ? 'zigbuild' : statically ? 'rustc' : 'build',
  '--release',
  '-p',
  'subreaper-init',
  '--message-format=json-render-diagnostics',
]
if (statically) args.push('--bin', 'subreaper')
if (target) args.push('--target', target)
if (statically) args.push('--', '-C', 'target-feature=+crt-static')
const messages = execFileSync('cargo', args, {
  cwd: root,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
  maxBuffer: 64 * 1024 * 1024,
})
const executable = messages
  .split('\n')
  .filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l))
  .find((m) => m.reason === 'compiler-artifact' && m.target?.name === 'subreaper' && m.executable)?.executable
if (!executable) throw new Error('cargo built no `subreaper` executable')
mkdirSync(dirname(out), { recursive: true })
// Copied beside, then renamed over: a binary still running (a test's init) cannot be written.
copyFileSync(executable, `${out}.tmp`)
chmodSync(`${out}.tmp`, 0o755)
renameSync(`${out}.tmp`, out)
console.log(`subreaper init: ${out}`)
