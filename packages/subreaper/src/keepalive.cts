// Holds the event loop open while something waits for an exit (a pending wait, an iterator
// read). The addon's callbacks are weak on purpose, so an idle reaper never keeps a process
// alive; this is the one place that does, and only while a caller is waiting.

let holders = 0
let timer: NodeJS.Timeout | undefined

export function hold(): () => void {
  holders++
  if (timer === undefined) timer = setInterval(() => {}, 2 ** 31 - 1)
  let released = false
  return () => {
    if (released) return
    released = true
    holders--
    if (holders === 0 && timer !== undefined) {
      clearInterval(timer)
      timer = undefined
    }
  }
}
