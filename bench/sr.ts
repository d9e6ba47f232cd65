// The package under test: `subreaper` from this workspace, or another build of it named by
// SUBREAPER_BENCH_PACKAGE (a path to its dist/index.mjs; `npm run bench -- --package=DIR`), to
// compare two builds on the same machine.
type Subreaper = typeof import('subreaper')

const mod: Subreaper = (await import(process.env.SUBREAPER_BENCH_PACKAGE || 'subreaper')) as Subreaper

export const { monitor, setSubreaper, reaperStats } = mod
export type { Exit } from 'subreaper'
