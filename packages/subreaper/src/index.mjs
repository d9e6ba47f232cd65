// ESM entry: the same module instance as require('subreaper'), so one process never holds two
// copies of the hooks or of the monitor.
import cjs from './index.cjs'

export const {
  monitor,
  Monitor,
  Subscription,
  IterableSubscription,
  setSubreaper,
  isSubreaper,
  isInit,
  reaperStats,
  describeChild,
  declareChild,
  configureReaping,
  signalName,
  AbortError,
  DuplicateError,
  MonitorClosedError,
  NativeError,
  NotAChildError,
  OsError,
  SubscriptionLaggedError,
  UnsupportedError,
  WaitTimeoutError,
  SUPPORTED_PLATFORMS,
} = cjs
export default cjs
