// ESM entry of `subreaper/init` (`node --import subreaper/init app.js`): the CommonJS module,
// loaded once.
import cjs from './init.cjs'

export const { role, DEFAULT_ACTION_SIGNALS } = cjs
export default cjs
