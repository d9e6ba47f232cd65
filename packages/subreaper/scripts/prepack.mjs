// Runs before `npm pack` / `npm publish` of this package (never on install): the README users
// read on the registry is the repository's README, copied here (the copy is git-ignored).
// LICENSE is committed beside package.json.
import { copyFileSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..')
const root = join(pkg, '..', '..')

if (existsSync(join(root, 'README.md'))) {
  copyFileSync(join(root, 'README.md'), join(pkg, 'README.md'))
} else {
  console.error('prepack: warning: no README.md at the repository root, the package will have no README')
}

for (const file of ['dist/index.cjs', 'dist/index.mjs', 'native/binding.cjs', 'native/binding.d.cts', 'LICENSE']) {
  if (!existsSync(join(pkg, file))) {
    console.error(`prepack: ${file} is missing; run \`npm run build\` at the repository root first`)
    process.exit(1)
  }
}
