// The addon's error codes, each arriving in JavaScript as its class: the list of codes comes from
// the Rust code (the generated `ErrorCode`), every one of them is mapped, and each that a real
// process can meet is provoked for real.
import test from 'ava'
import { execFile, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import * as subreaper from 'subreaper'
import { monitor, NativeError, NotAChildError, OsError, UnsupportedError } from 'subreaper'

import { fromNative, nativeErrors } from '../packages/subreaper/dist/errors.cjs'

import { binding, fixture, root } from './helpers.ts'
import { noLiveChildren, noZombies } from './procs.ts'
import { copyPackage } from './fixtures/reliability-lib.ts'

// The package's own copy of the addon (requiring it again returns the same module). The spec
// reads `ErrorCode` at run time, as the addon registers it: its typings declare a const enum,
// which TypeScript cannot iterate.
const native = binding<{
  ErrorCode: Record<string, string>
  report(pid: number): void
  wait(pid: unknown, onExit: () => void): unknown
}>()
const run = promisify(execFile)

test.after.always('nothing left behind', async (t) => {
  t.deepEqual(await noZombies(), [])
  t.deepEqual(await noLiveChildren(), [])
})

test('every code the addon can throw is mapped to an exported class that carries it', (t) => {
  const codes = Object.values(native.ErrorCode)
  t.true(codes.length > 0)
  t.deepEqual(Object.keys(nativeErrors).sort(), [...codes].sort(), 'one entry per code, none stale')
  for (const code of codes) {
    const err = fromNative(Object.assign(new Error('the reason'), { code }), 7) as Error & { code: string }
    t.is(err.code, code)
    t.true(err instanceof Error)
    t.regex(err.name, /Error$/)
    t.is((subreaper as Record<string, unknown>)[err.name], err.constructor, `${err.name} is exported by the package`)
  }
})

test('wait() of a live process that is not a child: NotAChildError, from the addon', async (t) => {
  // The test runner that started this worker: alive, and not a child of this process.
  const pid = process.ppid
  const err = await t.throwsAsync(monitor.wait(pid), { instanceOf: NotAChildError, code: 'ERR_SUBREAPER_NOT_A_CHILD' })
  t.is(err.pid, pid)
  t.is(err.name, 'NotAChildError')
})

test('a second copy of the package in one process: DuplicateError, from its copy of the addon', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'subreaper-duplicate-'))
  try {
    const copy = join(dir, 'subreaper')
    copyPackage(copy)
    const script = `
      const first = require('subreaper')
      let err
      try { require(${JSON.stringify(copy)}) } catch (e) { err = e }
      const { DuplicateError } = require(${JSON.stringify(join(copy, 'dist', 'errors.cjs'))})
      console.log(JSON.stringify({
        name: err?.name, code: err?.code, message: err?.message,
        ofItsClass: err instanceof DuplicateError, firstLoaded: typeof first.monitor.wait === 'function',
      }))`
    const { stdout } = await run(process.execPath, ['-e', script], {
      cwd: root,
      timeout: 60_000,
      env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: '' },
    })
    const r = JSON.parse(stdout) as Record<string, unknown>
    t.like(r, { name: 'DuplicateError', code: 'ERR_SUBREAPER_DUPLICATE', ofItsClass: true, firstLoaded: true })
    t.regex(
      String(r.message),
      /another copy of the subreaper addon already runs the reaper in this process .*deduplicate it in node_modules/,
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('setSubreaper(true) where the kernel refuses it (a seccomp filter): OsError', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'subreaper-refuse-'))
  try {
    const refuse = join(dir, 'refuse-subreaper')
    execFileSync('cc', ['-O2', '-Wall', '-o', refuse, fixture('refuse-subreaper.c')], { stdio: ['ignore', 'ignore', 'inherit'] })
    const script = `
      const s = require('subreaper')
      let err
      try { s.setSubreaper(true) } catch (e) { err = e }
      console.log(JSON.stringify({
        name: err?.name, code: err?.code, message: err?.message, ofItsClass: err instanceof s.OsError, subreaper: s.isSubreaper(),
      }))`
    const refused = JSON.parse((await run(refuse, [process.execPath, '-e', script], { cwd: root, timeout: 60_000 })).stdout) as Record<
      string,
      unknown
    >
    t.like(refused, {
      name: 'OsError',
      code: 'ERR_SUBREAPER_OS',
      message: 'prctl(PR_SET_CHILD_SUBREAPER) failed: Operation not permitted (os error 1)',
      ofItsClass: true,
      subreaper: false,
    })
    // The same script without the filter: the refusal was the kernel's, not the script's.
    const allowed = JSON.parse((await run(process.execPath, ['-e', script], { cwd: root, timeout: 60_000 })).stdout) as Record<
      string,
      unknown
    >
    t.like(allowed, { name: undefined, subreaper: true })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the addon called against its contract (never through the package): NativeError, with what was wrong', (t) => {
  const contract = t.throws(() => native.report(process.pid), { code: 'ERR_SUBREAPER_NATIVE' })
  const mapped = fromNative(contract)
  t.true(mapped instanceof NativeError)
  t.like(mapped, {
    code: 'ERR_SUBREAPER_NATIVE',
    message: 'the subreaper addon failed: report needs an exit code or a signal number. This is a bug in subreaper: please report it',
  })
  // An argument napi-rs itself could not convert has napi-rs's own code: a NativeError too.
  const conversion = t.throws(() => native.wait('12', () => {})) as Error & { code: string }
  const converted = fromNative(conversion)
  t.true(converted instanceof NativeError)
  t.is((converted as NativeError).cause, conversion)
  t.true((converted as NativeError).message.includes(`(${conversion.code})`))
})

test('UnsupportedError is thrown only off Linux: mapped here from the code the addon gives it there', (t) => {
  const unsupported = Object.assign(new Error('subreaper mode is not supported on macos: only Linux has PR_SET_CHILD_SUBREAPER'), {
    code: 'ERR_SUBREAPER_UNSUPPORTED',
  })
  const mapped = fromNative(unsupported)
  t.true(mapped instanceof UnsupportedError)
  t.like(mapped, { code: 'ERR_SUBREAPER_UNSUPPORTED', message: unsupported.message })
})

test('what the addon did not throw passes through as it is', (t) => {
  const plain = new Error('no code')
  t.is(fromNative(plain), plain)
  t.is(fromNative('a string'), 'a string')
  t.is(fromNative(undefined), undefined)
  t.false(new OsError('x') instanceof NativeError, 'each class its own')
})
