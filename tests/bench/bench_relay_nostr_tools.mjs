// Baseline for bench_relay.sh: nostr-tools' SimplePool (2.25, default verifyEvent = pure JS,
// deduplication by id) subscribes to one relay with FILTER_JSON and counts the events until EOSE.
// Prints "nostr_tools events N cpu_receive_us U cpu_process_us P wall_ms W" where cpu_receive
// covers subscribe..EOSE and cpu_process the whole process (startup included).
// usage: node bench_relay_nostr_tools.mjs URL FILTER_JSON EXPECTED
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(path.join(here, '../peers/package.json'))
const WebSocket = require('ws')
const { SimplePool, useWebSocketImplementation } = require('nostr-tools/pool')
useWebSocketImplementation(WebSocket)
const [url, filterJson, expected] = process.argv.slice(2)
const pool = new SimplePool()
let n = 0
const c0 = process.cpuUsage()
const t0 = process.hrtime.bigint()
const done = () => {
  const c = process.cpuUsage(c0)
  const all = process.cpuUsage()
  const wall = Number(process.hrtime.bigint() - t0) / 1e6
  console.log(`nostr_tools events ${n} cpu_receive_us ${c.user + c.system} cpu_process_us ${all.user + all.system} wall_ms ${wall.toFixed(0)}`)
  process.exit(n === Number(expected) ? 0 : 1)
}
setTimeout(() => { console.error(`timeout after ${n} events`); done() }, 600000).unref()
// maxWait: SimplePool otherwise declares EOSE by itself after 4.4 s while it is still verifying
pool.subscribeMany([url], JSON.parse(filterJson), {
  maxWait: 600000,
  onevent() { n++ },
  oneose() { done() },
})
