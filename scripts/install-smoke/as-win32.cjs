// Preload for unsupported.cjs: makes this Node process report itself as Windows.
'use strict'
Object.defineProperty(process, 'platform', { value: 'win32' })
