#!/usr/bin/env node
// A deliberately misbehaving Nostr relay for the relay-client's integration tests (never a real
// relay: use relay.mjs for that). Binds 127.0.0.1 only.
//
// stdout: exactly one line `READY ws://127.0.0.1:PORT` (or `READY tcp://127.0.0.1:PORT` for
// --mode silent) once listening, then, with --log-json, one JSON line per message received.
// stderr: logs. Exit 0 on SIGTERM/SIGINT.
//
// Modes:
//   garbage   answers every REQ with the sequence described at garbageFrames() (malformed messages
//             of every class, invalid/unmatched/duplicate/unknown-subscription events, a binary
//             frame, an over-cap message, a fragmented valid event), then EOSE, then one live event.
//   publish   answers EVENT messages following --ok-script, a comma-separated list used in turn
//             per event id (the last entry repeats): ok | dup | rate | invalid | none (no answer).
//   silent    a TCP server that accepts connections and never says anything (a relay that hangs).
//   reject    answers the websocket upgrade with HTTP 503.
import { parseArgs } from 'node:util'
import fs from 'node:fs'
import net from 'node:net'
import http from 'node:http'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { WebSocketServer } = require('ws')
const { generateSecretKey, finalizeEvent } = require('nostr-tools/pure')

let args
try {
  args = parseArgs({
    options: {
      mode: { type: 'string', default: 'garbage' },
      port: { type: 'string', default: '0' },
      'ok-script': { type: 'string', default: 'ok' },
      'oversize-bytes': { type: 'string', default: String(200 * 1024) },
      'log-json': { type: 'boolean', default: false },
      'exit-with-pid': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }).values
} catch (e) {
  process.stderr.write(`bad-relay: ${e.message}\n`)
  process.exit(2)
}
if (args.help) {
  process.stdout.write('usage: node bad-relay.mjs [--mode garbage|publish|silent|reject] [--port N] [--ok-script LIST]\n' +
    '                        [--oversize-bytes N] [--log-json] [--exit-with-pid PID]\n')
  process.exit(0)
}
const log = (...a) => console.error(new Date().toISOString(), ...a)
const sk = generateSecretKey()
const now = () => Math.floor(Date.now() / 1000)
const sign = (kind, content, tags = []) => finalizeEvent({ kind, created_at: now(), tags, content }, sk)

// The malformed-message table. Each entry: [label, frame, options]. The C client must drop each one
// with the counter named in the label (relay_status.malformed_by / events_* / binary / oversize).
function garbageFrames(subid) {
  const valid = sign(1, 'valid event A')
  const fragmented = sign(1, 'valid event C, sent in three websocket frames')
  const unmatched = sign(2, 'kind 2 does not match the subscription')
  const badSig = sign(1, 'bad signature')
  badSig.sig = badSig.sig.slice(0, 10) + (badSig.sig[10] === '0' ? '1' : '0') + badSig.sig.slice(11)
  const badId = sign(1, 'tampered after signing')
  badId.content = 'tampered'
  const wrongShape = { id: 'xyz', kind: 'one' }
  const big = JSON.stringify(['NOTICE', 'x'.repeat(Number(args['oversize-bytes']))])
  const deep = '['.repeat(100) + ']'.repeat(100)
  return {
    frames: [
      ['notjson: plain text', 'this is not json'],
      ['notjson: truncated', `["EVENT","${subid}",{"id":`],
      ['notjson: invalid utf-8', Buffer.from([0x5b, 0x22, 0xff, 0xfe, 0x22, 0x5d]), { binary: false }],
      ['notjson: too deep', deep],
      ['notarray: object', '{"EVENT":1}'],
      ['notarray: empty array', '[]'],
      ['type: number', '[1,2]'],
      ['unknown: FOO', '["FOO","x"]'],
      ['arity: EOSE without subid', '["EOSE"]'],
      ['arity: EVENT without event', `["EVENT","${subid}"]`],
      ['arity: OK with 5 elements', `["OK","${'a'.repeat(64)}",true,"",1]`],
      ['field: OK id is a number', '["OK",1,true,""]'],
      ['field: OK flag is a string', `["OK","${'a'.repeat(64)}","true",""]`],
      ['subid: 65 characters', `["EOSE","${'s'.repeat(65)}"]`],
      ['text: AUTH challenge over cap', JSON.stringify(['AUTH', 'c'.repeat(2000)])],
      ['event: wrong shape', JSON.stringify(['EVENT', subid, wrongShape])],
      ['binary frame', Buffer.from(JSON.stringify(['EVENT', subid, valid])), { binary: true }],
      ['toobig: over max_message', big],
      ['events_invalid: bad signature', JSON.stringify(['EVENT', subid, badSig])],
      ['events_invalid: id does not match', JSON.stringify(['EVENT', subid, badId])],
      ['events_unknown_sub: other subid', JSON.stringify(['EVENT', 'nosuchsub', valid])],
      ['events_unmatched: kind 2', JSON.stringify(['EVENT', subid, unmatched])],
      ['delivered: valid event A', JSON.stringify(['EVENT', subid, valid])],
      ['events_duplicate: A again', JSON.stringify(['EVENT', subid, valid])],
      ['notices: NOTICE', JSON.stringify(['NOTICE', 'hello \u0001 from the bad relay'])],
      ['unknown_sub_msgs: EOSE for another sub', '["EOSE","nosuchsub"]'],
    ],
    fragmented,
    ids: { valid: valid.id, fragmented: fragmented.id },
  }
}

function wsServer(onConnection) {
  const srv = http.createServer((req, res) => { res.writeHead(200); res.end('bad relay\n') })
  const wss = new WebSocketServer({ server: srv, maxPayload: 64 * 1024 * 1024, perMessageDeflate: false })
  wss.on('connection', onConnection)
  wss.on('error', () => {})
  return srv
}

let server
const mode = args.mode
if (mode === 'garbage') {
  server = wsServer((ws) => {
    log('connection')
    ws.on('message', (data, isBinary) => {
      let msg
      try { msg = JSON.parse(String(data)) } catch { return }
      if (args['log-json']) process.stdout.write(JSON.stringify(msg) + '\n')
      if (!Array.isArray(msg) || msg[0] !== 'REQ') return
      const subid = msg[1]
      const g = garbageFrames(subid)
      for (const [label, frame, opts] of g.frames) {
        log('send', label)
        ws.send(frame, opts || {})
      }
      // a valid event split over three frames (a fragmented websocket message)
      const text = JSON.stringify(['EVENT', subid, g.fragmented])
      const a = Math.floor(text.length / 3), b = Math.floor(2 * text.length / 3)
      ws.send(text.slice(0, a), { fin: false })
      ws.send(text.slice(a, b), { fin: false })
      ws.send(text.slice(b), { fin: true })
      ws.send(JSON.stringify(['EOSE', subid]))
      setTimeout(() => {
        const live = sign(1, 'valid live event D')
        ws.send(JSON.stringify(['EVENT', subid, live]))
        log('sent live event', live.id)
      }, 200)
    })
  })
} else if (mode === 'publish') {
  const script = args['ok-script'].split(',').map(s => s.trim()).filter(Boolean)
  const seen = new Map()
  server = wsServer((ws) => {
    log('connection')
    ws.on('message', (data) => {
      let msg
      try { msg = JSON.parse(String(data)) } catch { return }
      if (args['log-json']) process.stdout.write(JSON.stringify(msg) + '\n')
      if (!Array.isArray(msg) || msg[0] !== 'EVENT' || typeof msg[1] !== 'object') return
      const id = msg[1].id
      const n = seen.get(id) || 0
      seen.set(id, n + 1)
      const step = script[Math.min(n, script.length - 1)]
      log('EVENT', id.slice(0, 16), 'attempt', n + 1, '->', step)
      if (step === 'ok') ws.send(JSON.stringify(['OK', id, true, '']))
      else if (step === 'dup') ws.send(JSON.stringify(['OK', id, true, 'duplicate: already have this event']))
      else if (step === 'rate') ws.send(JSON.stringify(['OK', id, false, 'rate-limited: slow down']))
      else if (step === 'invalid') ws.send(JSON.stringify(['OK', id, false, 'invalid: rejected by bad-relay']))
      // none: no answer
    })
  })
} else if (mode === 'silent') {
  const socks = new Set()
  server = net.createServer((s) => { socks.add(s); s.on('close', () => socks.delete(s)); s.on('error', () => {}); log('silent connection') })
  server.closeAll = () => { for (const s of socks) s.destroy() }
} else if (mode === 'reject') {
  server = http.createServer((req, res) => { res.writeHead(503, { 'Content-Type': 'text/plain' }); res.end('no\n') })
  server.on('upgrade', (req, sock) => { sock.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n') })
} else {
  process.stderr.write(`bad-relay: unknown --mode ${mode}\n`)
  process.exit(2)
}

server.on('error', (e) => { process.stderr.write(`bad-relay: ${e.message}\n`); process.exit(1) })
server.listen(Number(args.port), '127.0.0.1', () => {
  const { port } = server.address()
  process.stdout.write(`READY ${mode === 'silent' ? 'tcp' : 'ws'}://127.0.0.1:${port}\n`)
})

function stop() {
  if (server.closeAll) server.closeAll()
  server.close()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
if (args['exit-with-pid']) {
  const ppid = Number(args['exit-with-pid'])
  setInterval(() => {
    let gone = false
    try { process.kill(ppid, 0) } catch (e) { gone = e.code === 'ESRCH' }
    try { gone ||= / Z /.test(fs.readFileSync(`/proc/${ppid}/stat`, 'latin1').replace(/^.*\)/, '')) } catch {}
    if (gone) stop()
  }, 500).unref()
}
