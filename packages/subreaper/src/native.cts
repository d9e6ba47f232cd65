// Loads the platform's prebuilt addon, with an error that says what is supported when none fits.
import type * as Binding from '../native/binding.cjs'

export type NativeBinding = typeof Binding
export type ExitRecord = Binding.ExitRecord
export type NativeSubscription = Binding.NativeSubscription

export const SUPPORTED_PLATFORMS = [
  'linux-x64-gnu',
  'linux-x64-musl',
  'linux-arm64-gnu',
  'linux-arm64-musl',
  'darwin-x64',
  'darwin-arm64',
] as const

function load(): NativeBinding {
  const platform = `${process.platform}-${process.arch}`
  if (process.platform !== 'linux' && process.platform !== 'darwin') {
    throw unsupported(platform, undefined)
  }
  try {
    return require('../native/binding.cjs') as NativeBinding
  } catch (cause) {
    throw unsupported(platform, cause)
  }
}

function unsupported(platform: string, cause: unknown): Error {
  const err = new Error(
    `subreaper has no prebuilt binary for this platform (${platform}). ` +
      `Supported: ${SUPPORTED_PLATFORMS.join(', ')}; Node.js >= 20. ` +
      (process.platform === 'linux' || process.platform === 'darwin'
        ? 'Check that the optional dependency for your platform was installed (npm install --include=optional).'
        : 'Reaping child processes needs a POSIX kernel: Windows is not supported.'),
    { cause },
  )
  ;(err as NodeJS.ErrnoException).code = 'ERR_SUBREAPER_UNSUPPORTED_PLATFORM'
  return err
}

export const native: NativeBinding = load()
