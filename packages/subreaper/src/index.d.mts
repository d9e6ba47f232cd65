// Types of the ESM entry: the named exports of require('subreaper'), and the same module as the
// default export (`import subreaper from 'subreaper'`).
import * as subreaper from './index.cjs'

export * from './index.cjs'
export default subreaper
