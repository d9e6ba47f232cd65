export * from './init.cjs'
