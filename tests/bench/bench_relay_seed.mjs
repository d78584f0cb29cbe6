// Helper for bench_relay.sh: stores the events of a JSONL file in the relay's sqlite database
// through the relay's own repository (@nostr-relay/event-repository-sqlite upsert), without the
// relay's pure-JS signature checks (~250-300 events/s), so 20,000 events load in seconds and the
// file is reused across runs. Prints "seeded N events, M stored".
// usage: node bench_relay_seed.mjs EVENTS.jsonl DB.sqlite
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(path.join(here, '../peers/package.json'))
const { EventRepositorySqlite } = require('@nostr-relay/event-repository-sqlite')
const [file, db] = process.argv.slice(2)
if (!file || !db) { console.error('usage: node bench_relay_seed.mjs EVENTS.jsonl DB.sqlite'); process.exit(2) }
const repo = new EventRepositorySqlite(db)
await repo.init()
repo.getDatabase().pragma('synchronous = OFF')
const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean)
for (const l of lines) await repo.upsert(JSON.parse(l))
const n = repo.getDatabase().prepare('select count(*) as n from events').get().n
console.log(`seeded ${lines.length} events, ${n} stored`)
await repo.destroy()
process.exit(n >= lines.length ? 0 : 1)
