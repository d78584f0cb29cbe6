#!/usr/bin/env node
// Checks a running relay.mjs with nostr-tools and raw websocket frames. Prints one line per check:
// "ok - NAME" or "FAIL - NAME: why"; exits 1 when a check failed.
// usage: node relay-smoke.mjs --relay URL [--auth-required] [--strict-live-filters]
// (for wss:// with a test CA, run with NODE_EXTRA_CA_CERTS=ca.pem)
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { generateSecretKey, getPublicKey, finalizeEvent, verifyEvent } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'

useWebSocketImplementation(WebSocket)
const args = parseArgs({
  options: {
    relay: { type: 'string' },
    'auth-required': { type: 'boolean', default: false },
    'strict-live-filters': { type: 'boolean', default: false },
    'timeout-ms': { type: 'string', default: '20000' },
  },
}).values
if (!args.relay) { console.error('usage: node relay-smoke.mjs --relay URL [--auth-required] [--strict-live-filters]'); process.exit(2) }
const url = args.relay
const tag = url.startsWith('wss:') ? 'wss' : 'ws'
let failed = 0
const ok = (name) => console.log(`ok - ${tag}: ${name}`)
const fail = (name, why) => { failed++; console.log(`FAIL - ${tag}: ${name}: ${why}`) }
const check = (name, cond, why) => (cond ? ok(name) : fail(name, why))
setTimeout(() => { fail('watchdog', `not done after ${args['timeout-ms']} ms`); process.exit(1) }, Number(args['timeout-ms'])).unref()
const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms))])

// A raw websocket client: what a C client sees on the wire.
async function raw() {
  const ws = new WebSocket(url)
  const msgs = []
  const waiters = []
  ws.on('message', (d) => {
    const m = JSON.parse(String(d))
    msgs.push(m)
    for (const w of [...waiters]) if (w.pred(m)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m) }
  })
  await withTimeout(new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej) }), 5000, 'connect')
  return {
    ws, msgs,
    send: (m) => ws.send(JSON.stringify(m)),
    wait: (pred, ms = 3000, what = 'message') => {
      const found = msgs.find(pred)
      if (found) return Promise.resolve(found)
      return withTimeout(new Promise(resolve => waiters.push({ pred, resolve })), ms, what)
    },
    close: () => ws.close(),
  }
}

const sk = generateSecretKey()
const pk = getPublicKey(sk)
const now = () => Math.floor(Date.now() / 1000)
const authSigner = (t) => finalizeEvent(t, sk)

try {
  // NIP-11
  const httpUrl = url.replace(/^ws/, 'http')
  const info = await withTimeout(fetch(httpUrl, { headers: { Accept: 'application/nostr+json' } }).then(r => r.json()), 5000, 'NIP-11')
  check('NIP-11 document', info.name && Array.isArray(info.supported_nips) && info.limitation, JSON.stringify(info))
  check('NIP-11 auth_required flag', info.limitation.auth_required === args['auth-required'], JSON.stringify(info.limitation))

  // nostr-tools: publish, read back by REQ
  const relay = await withTimeout(Relay.connect(url), 5000, 'Relay.connect')
  if (args['auth-required']) {
    const ev0 = finalizeEvent({ kind: 1, created_at: now(), tags: [], content: 'before auth' }, sk)
    let why = 'accepted'
    try { await relay.publish(ev0) } catch (e) { why = e.message }
    check('EVENT before AUTH refused with auth-required:', why.startsWith('auth-required:'), why)
    for (let i = 0; i < 40 && !relay.challenge; i++) await new Promise(r => setTimeout(r, 25))
    check('relay sent a NIP-42 challenge', !!relay.challenge, 'no AUTH message')
    await withTimeout(relay.auth(authSigner), 5000, 'AUTH')
    ok('AUTH accepted')
  }
  const content = `peers smoke ${Date.now()} "quoted" \\ ünïcode ✓\n`
  const ev = finalizeEvent({ kind: 1, created_at: now(), tags: [['t', 'peers-smoke'], ['p', pk]], content }, sk)
  const okMsg = await withTimeout(relay.publish(ev), 5000, 'publish')
  check('publish kind 1: OK true', okMsg === '', `reason '${okMsg}'`)
  const got = []
  await withTimeout(new Promise(resolve => {
    const sub = relay.subscribe([{ ids: [ev.id] }], { onevent: (e) => got.push(e), oneose: () => { sub.close(); resolve() } })
  }), 5000, 'REQ')
  check('REQ by id returns the event', got.length === 1 && got[0].id === ev.id && got[0].content === content, `got ${got.length}`)
  check('event read back verifies', got.length === 1 && verifyEvent(JSON.parse(JSON.stringify(got[0]))), 'verifyEvent false')

  // tag filter on stored events, and a live event after EOSE
  const got2 = []
  let livePublished
  const live = new Promise(resolve => {
    const sub = relay.subscribe([{ kinds: [1], '#t': ['peers-smoke'], authors: [pk] }], {
      onevent: (e) => { got2.push(e); if (e.content === 'live') { sub.close(); resolve() } },
      oneose: () => {
        livePublished = relay.publish(finalizeEvent({ kind: 1, created_at: now(), tags: [['t', 'peers-smoke']], content: 'live' }, sk))
        livePublished.catch(() => {})
      },
    })
  })
  await withTimeout(live, 5000, 'live event')
  await withTimeout(livePublished, 5000, 'OK for the live event')
  check('#t filter (stored) + live event after EOSE', got2.length === 2 && got2[0].id === ev.id, `got ${got2.length}`)
  relay.close()

  // raw frames: duplicate, bad signature, unknown message, live tag filters
  const r = await raw()
  if (args['auth-required']) {
    const ch = await r.wait(m => m[0] === 'AUTH', 3000, 'AUTH challenge')
    const auth = finalizeEvent({ kind: 22242, created_at: now(), tags: [['relay', url], ['challenge', ch[1]]], content: '' }, sk)
    r.send(['AUTH', auth])
    const a = await r.wait(m => m[0] === 'OK' && m[1] === auth.id, 3000, 'AUTH OK')
    check('raw AUTH: OK true', a[2] === true, JSON.stringify(a))
  }
  r.send(['EVENT', ev])
  const dup = await r.wait(m => m[0] === 'OK' && m[1] === ev.id, 3000, 'OK for duplicate')
  check('duplicate EVENT: OK true', dup[2] === true, JSON.stringify(dup))
  const bad = finalizeEvent({ kind: 1, created_at: now(), tags: [], content: 'bad sig' }, sk)
  bad.sig = bad.sig.slice(0, -2) + (bad.sig.endsWith('00') ? '11' : '00')
  r.send(['EVENT', bad])
  const badOk = await r.wait(m => m[0] === 'OK' && m[1] === bad.id, 3000, 'OK for bad sig')
  check('bad signature: OK false "invalid:"', badOk[2] === false && /^invalid:/.test(badOk[3]), JSON.stringify(badOk))
  r.send(['NOPE'])
  const notice = await r.wait(m => m[0] === 'NOTICE', 3000, 'NOTICE')
  check('malformed message: NOTICE', typeof notice[1] === 'string', JSON.stringify(notice))

  const other = getPublicKey(generateSecretKey())
  r.send(['REQ', 'live-p', { kinds: [20001], '#p': [pk] }])
  await r.wait(m => m[0] === 'EOSE' && m[1] === 'live-p', 3000, 'EOSE')
  const eOther = finalizeEvent({ kind: 20001, created_at: now(), tags: [['p', other]], content: 'for someone else' }, sk)
  const eMine = finalizeEvent({ kind: 20001, created_at: now(), tags: [['p', pk]], content: 'for me' }, sk)
  r.send(['EVENT', eOther])
  await r.wait(m => m[0] === 'OK' && m[1] === eOther.id, 3000, 'OK')
  r.send(['EVENT', eMine])
  await r.wait(m => m[0] === 'EVENT' && m[1] === 'live-p' && m[2].id === eMine.id, 3000, 'live ephemeral event')
  const sawOther = r.msgs.some(m => m[0] === 'EVENT' && m[2]?.id === eOther.id)
  if (args['strict-live-filters']) check('live #p filter applied (--strict-live-filters)', !sawOther, 'event for another p delivered')
  else check('live #p filter NOT applied (library behaviour; clients must filter)', sawOther, 'event for another p not delivered')
  r.close()
} catch (e) {
  fail('unexpected error', e && e.stack || e)
}
process.exit(failed ? 1 : 0)
