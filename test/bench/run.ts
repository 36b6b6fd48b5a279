// `npm run bench`: every benchmark, one markdown table per scenario.
await import('./core.js')
