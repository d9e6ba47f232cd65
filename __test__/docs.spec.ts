// The README and docs/*.md say what the package does: every code block marked `<!-- doc-test -->`
// in their source is run against the built package (each `// → text` comment is a line it must
// print, in order), and type-checked, with the strict ESM and CommonJS fixture projects in
// fixtures/types/, as a user's project would check them. A `js` block runs exactly as printed
// (a reader pastes it into a .mjs file); a `ts` block runs as TypeScript compiles it. The
// README's `npm run demo` output is what the demo prints. Marked `sh`
// blocks (docs/cli.md) run with /bin/sh, `subreaper` on PATH being the built native init (each
// `# → text` a line they must print); the Dockerfiles of docs/cli.md name paths an install has.
import test from 'ava'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ts from 'typescript'

import { setSubreaper } from 'subreaper'

import { fixture, root } from './helpers.ts'
import { noLiveChildren, noZombies } from './procs.ts'

const typesDir = fixture('types')
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')

interface Block {
  /** Where it is: `README.md:123`. */
  where: string
  lang: 'js' | 'ts' | 'sh'
  code: string
  /** The lines it must print. */
  prints: string[]
}

const MARKER = '<!-- doc-test -->'

function blocks(file: string): Block[] {
  const lines = readFileSync(join(root, file), 'utf8').split('\n')
  const found: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== MARKER) continue
    const fence = lines[i + 1] ?? ''
    const lang = /^```(js|ts|sh)$/.exec(fence)?.[1] as Block['lang'] | undefined
    if (!lang) throw new Error(`${file}:${i + 1}: ${MARKER} must be followed by a js, ts or sh code fence`)
    const end = lines.indexOf('```', i + 2)
    if (end < 0) throw new Error(`${file}:${i + 2}: unclosed code fence`)
    const code = lines.slice(i + 2, end).join('\n')
    const comment = lang === 'sh' ? /^# → (.*)$/gm : /\/\/ → (.*)$/gm
    const prints = [...code.matchAll(comment)].map((m) => m[1]!)
    found.push({ where: `${file}:${i + 2}`, lang, code, prints })
    i = end
  }
  return found
}

const docs = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
]
const all = docs.flatMap(blocks)
/** The JavaScript and TypeScript blocks: run by Node, type-checked. */
const scripts = all.filter((b) => b.lang !== 'sh')

function run(
  file: string,
  args: string[],
  timeout = 60_000,
  env?: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: root, timeout, killSignal: 'SIGKILL', env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

// A snippet's children outlive it only if it leaves them; they are re-parented here and reaped.
test.before(() => setSubreaper(true))

test.after.always('the snippets left no zombie and no live child', async (t) => {
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
})

test('the README and docs/api.md have runnable examples', (t) => {
  const found = all.map((b) => b.where).join(', ')
  t.true(all.filter((b) => b.where.startsWith('README.md:')).length >= 1, `found: ${found}`)
  t.true(all.filter((b) => b.where.startsWith('docs/api.md:')).length >= 8, `found: ${found}`)
})

test('docs/cli.md has runnable examples', (t) => {
  t.true(
    all.filter((b) => b.where.startsWith('docs/cli.md') && b.lang === 'sh').length >= 4,
    `found: ${all.map((b) => b.where).join(', ')}`,
  )
})

/** A directory holding `subreaper`: the native init `npm run build` made. */
const cliDir = mkdtempSync(join(tmpdir(), 'subreaper-doc-bin-'))
symlinkSync(join(root, 'packages', 'subreaper', 'native', 'subreaper'), join(cliDir, 'subreaper'))
test.after.always(() => rmSync(cliDir, { recursive: true, force: true }))

for (const block of all.filter((b) => b.lang === 'sh')) {
  test(`${block.where} runs and prints what it says`, async (t) => {
    const r = await run('/bin/sh', ['-c', block.code], 60_000, { ...process.env, PATH: `${cliDir}:${process.env.PATH}` })
    t.is(r.code, 0, `exit code ${r.code}; stderr: ${r.stderr}`)
    t.deepEqual(r.stdout.split('\n').slice(0, -1), block.prints, r.stderr)
  })
}

test("docs/cli.md's Dockerfiles run paths an install has: .bin/subreaper, or a platform package's binary", (t) => {
  const text = readFileSync(join(root, 'docs', 'cli.md'), 'utf8')
  const entrypoints = [...text.matchAll(/^ENTRYPOINT \["\/app\/(node_modules\/[^"]+)"/gm)].map((m) => m[1]!)
  t.true(entrypoints.length >= 2, `found: ${entrypoints.join(', ')}`)
  for (const path of entrypoints) {
    if (path === 'node_modules/.bin/subreaper') {
      // The package's bin, which its postinstall makes the native init.
      const pkg = JSON.parse(readFileSync(join(root, 'packages', 'subreaper', 'package.json'), 'utf8')) as {
        bin: Record<string, string>
        scripts: Record<string, string>
      }
      t.is(pkg.bin.subreaper, './bin/subreaper')
      t.is(pkg.scripts.postinstall, 'node scripts/postinstall.mjs')
      continue
    }
    const m = /^node_modules\/(subreaper-[\w-]+)\/subreaper$/.exec(path)
    if (!m) {
      t.fail(`${path}: neither .bin/subreaper nor a platform package's binary`)
      continue
    }
    const name = m[1]!
    const pkg = JSON.parse(readFileSync(join(root, 'npm', name.replace(/^subreaper-/, ''), 'package.json'), 'utf8')) as {
      name: string
      files: string[]
    }
    t.is(pkg.name, name, `npm/${name} is that package`)
    t.true(pkg.files.includes('subreaper'), `${name} ships its native init as subreaper`)
  }
})

for (const block of scripts) {
  test(`${block.where} runs and prints what it says`, async (t) => {
    // A js block as printed; a ts block as a TypeScript user's `tsc` compiles it (target
    // ES2022: `using` becomes try/finally).
    const js =
      block.lang === 'js'
        ? block.code
        : ts.transpileModule(block.code, {
            compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
          }).outputText
    const r = await run(process.execPath, ['--input-type=module', '-e', js])
    t.is(r.code, 0, `exit code ${r.code}; stderr: ${r.stderr}`)
    t.is(r.stderr, '')
    t.deepEqual(r.stdout.split('\n').slice(0, -1), block.prints)
  })
}

test('the README examples type-check in a strict ESM project, and the fixtures in ESM and CommonJS (iterating a callback subscription is an error)', async (t) => {
  const generated = join(typesDir, 'esm', '.generated')
  rmSync(generated, { recursive: true, force: true })
  mkdirSync(generated)
  scripts.forEach((block, n) => writeFileSync(join(generated, `block-${n}.mts`), `// ${block.where}\n${block.code}\n`))
  for (const project of ['esm', 'cjs']) {
    const r = await run(process.execPath, [tsc, '-p', join(typesDir, project)], 120_000)
    t.is(r.code, 0, `${project}: ${r.stdout}${r.stderr}`)
  }
})

test('`using` does not parse on Node 20, as docs/api.md says (compiled by TypeScript, the same block runs: its own test)', async (t) => {
  const block = scripts.find((b) => /^\s*using /m.test(b.code))
  if (!block) return t.fail('the docs have a `using` example')
  const major = Number(process.versions.node.split('.')[0])
  if (major !== 20) return t.pass(`Node ${major}: not the case the README states`)
  const r = await run(process.execPath, ['--input-type=module', '-e', block.code])
  t.not(r.code, 0)
  t.regex(r.stderr, /SyntaxError: Unexpected identifier 'sub'/)
})

// `npm run test:quick` runs a debug build, whose size says nothing of the release's.
const sizeTest = process.env.SUBREAPER_DEBUG_BUILD ? test.skip : test
sizeTest('docs/install.md states the size of the binary it installs, within 5%', (t) => {
  const text = readFileSync(join(root, 'docs', 'install.md'), 'utf8')
  const m = /Linux x64\s+glibc binary is \*\*([\d,]+) bytes/.exec(text)
  if (!m) return t.fail('docs/install.md states the installed size of the Linux x64 glibc binary')
  const stated = Number(m[1]!.replaceAll(',', ''))
  if (process.platform !== 'linux' || process.arch !== 'x64') return t.pass('measured on Linux x64 only')
  // The installed binary is this file, byte for byte (npm run test:install checks that).
  const built = statSync(join(root, 'packages', 'subreaper', 'native', 'subreaper.linux-x64-gnu.node')).size
  t.true(Math.abs(built - stated) / stated <= 0.05, `docs/install.md says ${stated} bytes; the binary is ${built} bytes`)
})

/** A report line with what varies between runs masked: pids, times (ms, s), sizes (K, M), column widths. */
const shape = (line: string) =>
  line
    .replace(/^\d+ /, 'PID ')
    .replace(/\b\d+(\.\d+)?(µs|ms|s|m|K|M|G)(?= |$)/g, 'N')
    .replace(/ +/g, ' ')
    .trim()

test("the README's `npm run demo` output is what the demo prints (pids, times and sizes aside)", async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8').split('\n')
  const at = readme.indexOf('<!-- demo-output -->')
  if (at < 0 || readme[at + 1] !== '```') return t.fail('README.md marks its demo output with <!-- demo-output --> and a code fence')
  const shown = readme.slice(at + 2, readme.indexOf('```', at + 2))
  // What `npm run demo` runs once it has built.
  const demo = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts.demo as string
  t.true(demo.endsWith('packages/subreaper/bin/subreaper --report -- sh examples/tree.sh'), demo)
  const r = await run(join(root, 'packages', 'subreaper', 'bin', 'subreaper'), ['--report', '--', 'sh', 'examples/tree.sh'])
  t.is(r.code, 0, r.stderr)
  const printed = `${r.stdout}${r.stderr}`.trimEnd().split('\n')
  // The rows come in exit order, and two exits of the same moment may swap: rows as a set,
  // the lines around them in order.
  const rows = (lines: string[]) => lines.slice(3, -1).map(shape).sort()
  const frame = (lines: string[]) => [...lines.slice(0, 3), lines.at(-1)!].map(shape)
  t.deepEqual(frame(printed), frame(shown), printed.join('\n'))
  t.deepEqual(rows(printed), rows(shown), printed.join('\n'))
})
