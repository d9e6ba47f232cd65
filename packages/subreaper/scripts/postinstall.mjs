// The subreaper package's only install script (`postinstall`): makes bin/subreaper, which
// node_modules/.bin/subreaper links to, the native init itself, so that running it execs no
// shell first (the launcher's /bin/sh costs start-up time, and a shell changes the environment
// it passes on). It replaces bin/subreaper with the binary of the platform package npm installed
// beside it: a hard link, else a copy with the same mode, put in place by a rename.
//
// Plain Node, no network, nothing built. It never fails the install: when there is nothing to do
// (no platform binary, an install from the repository, any error), the sh launcher stays, and it
// finds the same binary at every run. With --ignore-scripts it does not run at all: the same.
import { chmodSync, copyFileSync, linkSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..')
const launcher = join(pkgDir, 'bin', 'subreaper')

/** The native init of this platform, from the optional platform package npm installed. */
function platformBinary() {
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
  const require = createRequire(join(pkgDir, 'package.json'))
  for (const name of Object.keys(pkg.optionalDependencies ?? {})) {
    let dir
    try {
      dir = dirname(require.resolve(`${name}/package.json`))
    } catch {
      continue // not installed: another platform's
    }
    const file = join(dir, 'subreaper')
    try {
      if (statSync(file).isFile() && (statSync(file).mode & 0o111) !== 0) return file
    } catch {
      // no binary in it
    }
  }
  return null
}

function install() {
  // In the repository (a workspace), bin/subreaper is a tracked file: left alone.
  if (!pkgDir.split(sep).includes('node_modules')) return 'left the sh launcher: not an installed copy'
  const binary = platformBinary()
  if (binary === null) return 'left the sh launcher: no platform package with a native init is installed'
  const temp = `${launcher}.${process.pid}.tmp`
  rmSync(temp, { force: true })
  let how = 'hard link'
  try {
    linkSync(binary, temp)
  } catch {
    how = 'copy'
    copyFileSync(binary, temp)
    chmodSync(temp, statSync(binary).mode & 0o7777)
  }
  try {
    renameSync(temp, launcher)
  } catch (err) {
    rmSync(temp, { force: true })
    throw err
  }
  return `bin/subreaper is now the native init (${how} of ${binary})`
}

let message
try {
  message = install()
} catch (err) {
  message = `left the sh launcher: ${err instanceof Error ? err.message : String(err)}`
}
console.log(`subreaper postinstall: ${message}`)
