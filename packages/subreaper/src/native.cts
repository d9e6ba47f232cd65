// Loads the platform's prebuilt addon, with an error that says what is supported when none fits.
//
// The addon ships in one npm package per platform (`subreaper-linux-x64-gnu`, ...), installed by
// npm as an optional dependency of `subreaper` on the matching os/cpu/libc only. The generated
// loader (../native/binding.cjs) picks it; when it finds none, the error below replaces its
// generic "Cannot find native binding" (the loader's errors stay attached as `cause`).
import type * as Binding from '../native/binding.cjs'

export type NativeBinding = typeof Binding
export type ExitBatch = Binding.ExitBatch
export type NativeSubscription = Binding.NativeSubscription

export const SUPPORTED_PLATFORMS = [
  'linux-x64-gnu',
  'linux-x64-musl',
  'linux-arm64-gnu',
  'linux-arm64-musl',
  'darwin-x64',
  'darwin-arm64',
] as const

/** The platform as the prebuilt packages name it: `linux-x64-gnu`, `linux-arm64-musl`, `darwin-arm64`, `win32-x64`... */
function platformName(): string {
  const base = `${process.platform}-${process.arch}`
  if (process.platform !== 'linux') return base
  let glibc = true
  try {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
    glibc = typeof report?.header?.glibcVersionRuntime === 'string'
  } catch {
    // keep the glibc guess: the name is only used in the error message
  }
  return `${base}-${glibc ? 'gnu' : 'musl'}`
}

function load(): NativeBinding {
  if (process.platform !== 'linux' && process.platform !== 'darwin') {
    throw unsupported(platformName(), undefined)
  }
  try {
    return require('../native/binding.cjs') as NativeBinding
  } catch (cause) {
    throw unsupported(platformName(), cause)
  }
}

function installedPackage(name: string): boolean {
  try {
    require.resolve(`${name}/package.json`)
    return true
  } catch {
    return false
  }
}

function unsupported(platform: string, cause: unknown): Error {
  const supported = `Supported platforms: ${SUPPORTED_PLATFORMS.join(', ')} (Node.js >= 20).`
  const pkg = `subreaper-${platform}`
  let message: string
  if (process.platform !== 'linux' && process.platform !== 'darwin') {
    message = `subreaper does not support this platform (${platform}): reaping child processes needs Linux or macOS. ${supported}`
  } else if (!(SUPPORTED_PLATFORMS as readonly string[]).includes(platform)) {
    message = `subreaper has no prebuilt binary for this platform (${platform}). ${supported}`
  } else if (installedPackage(pkg)) {
    const reason = cause instanceof Error ? firstReason(cause) : String(cause)
    message =
      `subreaper could not load its prebuilt binary for this platform (${platform}) from ${pkg}` +
      (reason ? `: ${reason.replace(/\.?\s*$/, '.')}` : '.') +
      ` ${supported}`
  } else {
    message =
      `subreaper's prebuilt binary for this platform (${platform}) is not installed: the optional ` +
      `dependency ${pkg} is missing. Reinstall without --omit=optional / --no-optional ` +
      `(with npm: remove node_modules and package-lock.json, then npm install). ${supported}`
  }
  const err = new Error(message, { cause })
  ;(err as NodeJS.ErrnoException).code = 'ERR_SUBREAPER_UNSUPPORTED_PLATFORM'
  return err
}

/** The most specific message of the loader's chain (it nests each failed attempt as `cause`). */
function firstReason(err: Error): string {
  const messages: string[] = []
  for (let e: unknown = err; e instanceof Error && messages.length < 32; e = e.cause) messages.push(e.message)
  const specific = messages.find((m) => !/^Cannot find (module|native binding)/.test(m))
  return (specific ?? messages[messages.length - 1] ?? '').split('\n')[0] ?? ''
}

export const native: NativeBinding = load()
