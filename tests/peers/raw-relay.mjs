#!/usr/bin/env node
// A forwarding "relay" that verifies nothing, for the enclave's load test: it accepts every EVENT
// (answering OK true), keeps the last --keep events in memory and sends each one to every open
// subscription whose filter matches (ids, authors, kinds, #x tags, since, until), including events
// whose id or signature is wrong. That is how events with bad signatures reach a client at all: a
// real relay (tests/peers/relay.mjs) refuses them. Never a real relay; binds 127.0.0.1 only.
// stdout: `READY ws://127.0.0.1:PORT` once listening. Exit 0 on SIGTERM/SIGINT.
import { parseArgs } from 'node:util'
import fs from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { WebSocketServer } = require('ws')
const a = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    keep: { type: 'string', default: '10000' },
    'exit-with-pid': { type: 'string' },
  },
}).values
const keep = Number(a.keep)
const store = []
const subs = new Set() // { ws, id, filters }

function match(f, ev) {
  if (!ev || typeof ev !== 'object') return false
  if (f.ids && !f.ids.includes(ev.id)) return false
  if (f.authors && !f.authors.includes(ev.pubkey)) return false
  if (f.kinds && !f.kinds.includes(ev.kind)) return false
  if (f.since !== undefined && !(ev.created_at >= f.since)) return false
  if (f.until !== undefined && !(ev.created_at <= f.until)) return false
  for (const [k, v] of Object.entries(f)) {
    if (k[0] !== '#' || k.length !== 2 || !Array.isArray(v)) continue
    if (!Array.isArray(ev.tags) || !ev.tags.some(t => Array.isArray(t) && t[0] === k[1] && v.includes(t[1]))) return false
  }
  return true
}

const srv = http.createServer((req, res) => { res.writeHead(200); res.end('raw relay\n') })
const wss = new WebSocketServer({ server: srv, maxPayload: 8 << 20 })
wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    let m
    try { m = JSON.parse(String(data)) } catch { return }
    if (!Array.isArray(m)) return
    if (m[0] === 'EVENT' && m[1] && typeof m[1] === 'object') {
      const ev = m[1]
      store.push(ev)
      if (store.length > keep) store.shift()
      ws.send(JSON.stringify(['OK', String(ev.id), true, '']))
      for (const s of subs) if (s.filters.some(f => match(f, ev)) && s.ws.readyState === 1) s.ws.send(JSON.stringify(['EVENT', s.id, ev]))
    } else if (m[0] === 'REQ' && typeof m[1] === 'string') {
      for (const s of subs) if (s.ws === ws && s.id === m[1]) subs.delete(s)
      const s = { ws, id: m[1], filters: m.slice(2).filter(f => f && typeof f === 'object') }
      subs.add(s)
      for (const ev of store) if (s.filters.some(f => match(f, ev))) ws.send(JSON.stringify(['EVENT', s.id, ev]))
      ws.send(JSON.stringify(['EOSE', s.id]))
    } else if (m[0] === 'CLOSE') {
      for (const s of subs) if (s.ws === ws && s.id === m[1]) subs.delete(s)
    }
  })
  ws.on('close', () => { for (const s of subs) if (s.ws === ws) subs.delete(s) })
  ws.on('error', () => {})
})
srv.on('error', (e) => { process.stderr.write(`raw-relay: ${e.message}\n`); process.exit(1) })
srv.listen(Number(a.port), '127.0.0.1', () => process.stdout.write(`READY ws://127.0.0.1:${srv.address().port}\n`))
const stop = () => { for (const c of wss.clients) c.terminate(); srv.close(); process.exit(0) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
if (a['exit-with-pid']) {
  const ppid = Number(a['exit-with-pid'])
  setInterval(() => {
    let gone = false
    try { process.kill(ppid, 0) } catch (e) { gone = e.code === 'ESRCH' }
    try { gone ||= / Z /.test(fs.readFileSync(`/proc/${ppid}/stat`, 'latin1').replace(/^.*\)/, '')) } catch {}
    if (gone) stop()
  }, 500).unref()
}
