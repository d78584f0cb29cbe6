#!/usr/bin/env node
// A client of the appliance's job protocol (appliance/PROTOCOL.md "Job protocol (kinds 5720/6720/7000)")
// written only with nostr-tools (events, NIP-44), @getalby/sdk (paying over NIP-47) and node built-ins:
// nothing of the project's C code is used on this side.
//
//   node enclave-client.mjs discover --relay URL --out DIR [--timeout-ms N]
//       waits for an instance announcement (13793) and its NIP-89 handler (31990 k=5720), profile (0)
//       and relay list (10002); writes DIR/announcement.json, DIR/handler.json, DIR/pubkey.
//   node enclave-client.mjs job --relay URL [--relay URL]... --instance HEX --data URL [--data URL]...
//       [--param NAME=VALUE]... [--bid MSAT] [--public] [--sec HEX] [--nwc URI] [--no-pay]
//       [--republish N] [--out DIR] [--expect result|error] [--expect-no-invoice] [--timeout-ms N]
//       publishes one request (private form by default: only p and encrypted in clear, the i/param/bid
//       tags NIP-44-encrypted), follows its feedback, pays a payment-required bolt11 through --nwc,
//       and checks the result: signature, e/p tags, model sha256, dataset hashes (fetched again here),
//       the result digest. Writes DIR/result.json, DIR/model.bin (inline model) or DIR/model.sealed +
//       DIR/model.key, DIR/tee_root.json, DIR/digest, DIR/events.jsonl.
//   node enclave-client.mjs cases --relay URL... --instance HEX --file CASES.json [--nwc URI]
//       many requests at once, each checked against its expected outcome (see cases() below);
//       prints "ok - NAME" / "FAIL - NAME: why" per case.
//   node enclave-client.mjs bench --relay URL --instance HEX --data URL [--param ...] --good N --nwc URI
//       N jobs one after the other; per job the overhead = publish-to-result - pay time - train_ms.
//   node enclave-client.mjs load --relay URL --raw-relay URL --instance HEX --data URL --bad N --good M
//       --nwc URI [--param NAME=VALUE]... [--out DIR] [--timeout-ms N]
//       N requests with bad signatures (through --raw-relay, which forwards anything) and M valid ones
//       from M fresh keys, all at once; pays every invoice; counts the results.
// stdout: JSON lines ({"step":...}); the last one is {"step":"done",...}. Exit 0 when the expectation
// was met, 1 when not, 2 on usage errors.
import { parseArgs } from 'node:util'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import WebSocket from 'ws'

globalThis.WebSocket = WebSocket
const { Relay, useWebSocketImplementation } = await import('nostr-tools/relay')
useWebSocketImplementation(WebSocket)
const { finalizeEvent, verifyEvent, getPublicKey, generateSecretKey } = await import('nostr-tools/pure')
const nip44 = await import('nostr-tools/nip44')
const { NWCClient } = await import('@getalby/sdk/nwc')

const quiet = () => {}
console.info = console.debug = console.log = quiet // library chatter; our output goes through out()
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const t0 = performance.now()
const ms = () => Math.round((performance.now() - t0) * 1000) / 1000
const hex = (b) => Buffer.from(b).toString('hex')
const sha256 = (b) => crypto.createHash('sha256').update(b).digest()
const now = () => Math.floor(Date.now() / 1000)
const sleep = (n) => new Promise(r => setTimeout(r, n))

const [cmd, ...rest] = process.argv.slice(2)
let a
try {
  a = parseArgs({
    args: rest,
    options: {
      relay: { type: 'string', multiple: true, default: [] },
      'raw-relay': { type: 'string' },
      out: { type: 'string' },
      instance: { type: 'string' },
      data: { type: 'string', multiple: true, default: [] },
      param: { type: 'string', multiple: true, default: [] },
      bid: { type: 'string' },
      public: { type: 'boolean', default: false },
      sec: { type: 'string' },
      nwc: { type: 'string' },
      'no-pay': { type: 'boolean', default: false },
      republish: { type: 'string', default: '0' },
      expect: { type: 'string', default: 'result' },
      'expect-no-invoice': { type: 'boolean', default: false },
      'timeout-ms': { type: 'string', default: '60000' },
      bad: { type: 'string', default: '0' },
      good: { type: 'string', default: '0' },
      file: { type: 'string' },
    },
    strict: true,
  }).values
} catch (e) {
  process.stderr.write(`enclave-client: ${e.message}\n`)
  process.exit(2)
}
const timeoutMs = Number(a['timeout-ms'])
const onTimeout = []
const deadline = setTimeout(() => {
  for (const f of onTimeout) f()
  out({ step: 'done', ok: false, outcome: 'timeout', t: ms() })
  process.exit(1)
}, timeoutMs)
deadline.unref()
if (a.out) fs.mkdirSync(a.out, { recursive: true })
const save = (name, data) => { if (a.out) fs.writeFileSync(path.join(a.out, name), data) }

async function connectAll(urls) {
  const relays = []
  for (const u of urls) relays.push(await Relay.connect(u))
  return relays
}

function tagOf(ev, name) { const t = ev.tags.find(t => t[0] === name); return t ? t[1] : undefined }

// ---- discover -----------------------------------------------------------------------------
async function discover() {
  const [relay] = await connectAll(a.relay)
  const got = {}
  await new Promise((resolve) => {
    const check = () => { if (got[13793] && got[31990] && got[0] && got[10002]) resolve() }
    relay.subscribe([{ kinds: [13793] }], {
      onevent(ev) {
        if (!verifyEvent(ev)) return
        got[13793] = ev
        relay.subscribe([{ kinds: [31990, 0, 10002], authors: [ev.pubkey] }], {
          onevent(e2) {
            if (!verifyEvent(e2)) return
            if (e2.kind === 31990 && !e2.tags.some(t => t[0] === 'k' && t[1] === '5720')) return
            got[e2.kind] = e2
            check()
          },
        })
      },
    })
  })
  const ann = got[13793]
  save('announcement.json', JSON.stringify(ann))
  save('handler.json', JSON.stringify(got[31990]))
  save('pubkey', ann.pubkey)
  const price = ann.tags.find(t => t[0] === 'price')
  out({
    step: 'done', ok: true, pubkey: ann.pubkey, kinds: Object.keys(got).map(Number),
    k: tagOf(ann, 'k'), price: price ? price.slice(1) : null, relay: tagOf(ann, 'relay'), t: tagOf(ann, 't'),
    relays: got[10002].tags.filter(t => t[0] === 'r').map(t => t[1]), handler_k: tagOf(got[31990], 'k'),
    name: JSON.parse(got[0].content).name, t_ms: ms(),
  })
  relay.close()
  process.exit(0)
}

// ---- one job -------------------------------------------------------------------------------
function buildRequest(sk, instance, data, params, bid, pub) {
  const inner = [...data.map(u => ['i', u, 'url']), ...params.map(([k, v]) => ['param', k, v])]
  if (bid !== undefined) inner.push(['bid', String(bid)])
  if (pub) {
    return finalizeEvent({ kind: 5720, created_at: now(), tags: [...inner, ['output', 'application/json'], ['p', instance]], content: '' }, sk)
  }
  const ck = nip44.getConversationKey(sk, instance)
  return finalizeEvent({ kind: 5720, created_at: now(), tags: [['p', instance], ['encrypted']], content: nip44.encrypt(JSON.stringify(inner), ck) }, sk)
}

function openFeedback(ev, sk, instance) {
  const status = tagOf(ev, 'status')
  let text = ev.tags.find(t => t[0] === 'status')?.[2]
  if (ev.tags.some(t => t[0] === 'encrypted')) {
    const tags = JSON.parse(nip44.decrypt(ev.content, nip44.getConversationKey(sk, instance)))
    const st = tags.find(t => t[0] === 'status')
    if (st) text = st[2]
  }
  const amount = ev.tags.find(t => t[0] === 'amount')
  return { status, text, amount: amount ? Number(amount[1]) : undefined, bolt11: amount ? amount[2] : undefined, expiration: tagOf(ev, 'expiration') }
}

async function fetchBytes(url) {
  const r = await fetch(url)
  if (!r.ok) throw new Error(`GET ${url}: ${r.status}`)
  return Buffer.from(await r.arrayBuffer())
}

// Checks a result event; returns { ok, checks: {name: bool}, content }.
async function checkResult(ev, req, sk, instance, dataUrls, outDir) {
  const save = (name, data) => { if (outDir) fs.writeFileSync(path.join(outDir, name), data) }
  const checks = {}
  checks.signature = verifyEvent(ev)
  checks.author = ev.pubkey === instance
  checks.e_tag = tagOf(ev, 'e') === req.id
  checks.p_tag = tagOf(ev, 'p') === getPublicKey(sk)
  const enc = ev.tags.some(t => t[0] === 'encrypted')
  checks.encrypted_as_request = enc === req.tags.some(t => t[0] === 'encrypted')
  const text = enc ? nip44.decrypt(ev.content, nip44.getConversationKey(sk, instance)) : ev.content
  const c = JSON.parse(text)
  checks.job = c.job === req.id
  const reqTag = tagOf(ev, 'request')
  checks.request_tag = !!reqTag && JSON.parse(reqTag).id === req.id
  // model
  let model
  if (c.model.data !== undefined) {
    model = Buffer.from(c.model.data, 'base64')
    save('model.bin', model)
  } else {
    const sealed = await fetchBytes(c.model.url)
    checks.sealed_sha256 = hex(sha256(sealed)) === c.model.sealed_sha256 && sealed.length === c.model.sealed_bytes
    save('model.sealed', sealed)
    save('model.key', c.model.key + '\n')
  }
  if (model) checks.model_sha256 = hex(sha256(model)) === c.model.sha256 && model.length === c.model.bytes
  // datasets, fetched again by the client
  checks.datasets = c.datasets.length === dataUrls.length
  for (let i = 0; i < dataUrls.length && checks.datasets; i++) {
    const b = await fetchBytes(dataUrls[i])
    checks.datasets = hex(sha256(b)) === c.datasets[i].sha256 && b.length === c.datasets[i].bytes
  }
  // digest = sha256("appliance-result-v1" || job || u32be(n) || dataset hashes || model hash || JSON.stringify(metrics))
  const n = Buffer.alloc(4)
  n.writeUInt32BE(c.datasets.length)
  const digest = sha256(Buffer.concat([Buffer.from('appliance-result-v1'), Buffer.from(c.job, 'hex'), n,
    ...c.datasets.map(d => Buffer.from(d.sha256, 'hex')), Buffer.from(c.model.sha256, 'hex'),
    Buffer.from(JSON.stringify(c.metrics), 'utf8')]))
  checks.digest = hex(digest) === c.digest
  const tee = tagOf(ev, 'tee_root')
  checks.tee_root = !!tee && JSON.parse(tee).kind === 23793 && JSON.parse(tee).pubkey === instance && verifyEvent(JSON.parse(tee))
  save('result.json', JSON.stringify(c))
  save('tee_root.json', tee || '')
  save('digest', hex(digest))
  save('pubkey', instance)
  return { ok: Object.values(checks).every(Boolean), checks, content: c }
}

// runJob: one request followed to its end. Returns { outcome, ok, text, invoices, results, statuses, timings,
// content, job }. opts: relays (connected), sk, instance, data, params, bid, pub, nwc (client or null),
// republish, outDir (or null), record (fn), linger.
async function runJob(o) {
  const { relays, sk, instance } = o
  const req = buildRequest(sk, instance, o.data, o.params, o.bid, o.pub)
  const log = []
  const record = (x) => { x.t = ms(); log.push(x); if (o.record) o.record(x) }
  const timings = {}
  const seen = new Set()
  const subs = []
  const result = await new Promise((resolve) => {
    const onevent = async (ev) => {
      if (seen.has(ev.id) || tagOf(ev, 'e') !== req.id) return
      seen.add(ev.id)
      if (!verifyEvent(ev) || ev.pubkey !== instance) { record({ step: 'bad_event', id: ev.id }); return }
      if (ev.kind === 7000) {
        const f = openFeedback(ev, sk, instance)
        record({ step: 'feedback', status: f.status, text: f.text, amount: f.amount, bolt11: f.bolt11 ? f.bolt11.slice(0, 24) + '...' : undefined })
        if (f.status === 'payment-required') {
          timings.payment_required = ms()
          if (!o.nwc) { resolve({ outcome: 'payment-required', text: f.text }); return }
          try {
            const t1 = ms()
            const r = await o.nwc.payInvoice({ invoice: f.bolt11 })
            timings.pay_ms = ms() - t1
            record({ step: 'paid', preimage: r.preimage.slice(0, 16), pay_ms: timings.pay_ms })
          } catch (e) {
            record({ step: 'pay_failed', error: String(e && e.message || e) })
          }
        } else if (f.status === 'error') {
          resolve({ outcome: 'error', text: f.text })
        } else if (f.status === 'processing' && timings.processing === undefined) {
          timings.processing = ms()
        }
      } else if (ev.kind === 6720) {
        timings.result = ms()
        const r = await checkResult(ev, req, sk, instance, o.data, o.outDir)
        record({ step: 'result', id: ev.id, checks: r.checks, ok: r.ok, metrics: r.content.metrics })
        resolve({ outcome: 'result', ok: r.ok, content: r.content })
      }
    }
    if (o.handlers) o.handlers.set(req.id, onevent) // one shared subscription (relays cap subscriptions per connection)
    else for (const r of relays) subs.push(r.subscribe([{ kinds: [7000, 6720], '#e': [req.id], since: now() - 5 }], { onevent }))
    setTimeout(async () => {
      timings.publish = ms()
      record({ step: 'published', id: req.id, relays: relays.length, encrypted: !o.pub })
      await Promise.allSettled(relays.map(r => r.publish(req)))
      for (let i = 0; i < (o.republish || 0); i++) {
        await sleep(200)
        await Promise.allSettled(relays.map(r => r.publish(req)))
        record({ step: 'republished', n: i + 1 })
      }
    }, 50)
  })
  // linger to catch late duplicates (a second result, a second invoice)
  await sleep(o.linger ?? 300)
  for (const sub of subs) sub.close()
  if (o.handlers) o.handlers.delete(req.id)
  const statuses = log.filter(x => x.step === 'feedback').map(x => x.status)
  return {
    ...result, job: req.id, statuses, timings, log,
    invoices: statuses.filter(s => s === 'payment-required').length,
    results: log.filter(x => x.step === 'result').length,
    paid: log.some(x => x.step === 'paid'),
    texts: log.filter(x => x.step === 'feedback').map(x => x.text),
  }
}

const parseParams = (list) => list.map(p => { const i = p.indexOf('='); return [p.slice(0, i), p.slice(i + 1)] })

async function job() {
  const sk = a.sec ? Buffer.from(a.sec, 'hex') : generateSecretKey()
  const relays = await connectAll(a.relay)
  const nwc = a.nwc && !a['no-pay'] ? new NWCClient({ nostrWalletConnectUrl: a.nwc }) : null
  const r = await runJob({
    relays, sk, instance: a.instance, data: a.data, params: parseParams(a.param), bid: a.bid, pub: a.public,
    nwc, republish: Number(a.republish), outDir: a.out, linger: Number(process.env.ENCLAVE_CLIENT_LINGER_MS || 300),
    record: (x) => { out(x); if (a.out) fs.appendFileSync(path.join(a.out, 'events.jsonl'), JSON.stringify(x) + '\n') },
  })
  let ok = r.outcome === a.expect && (r.outcome !== 'result' || r.ok)
  if (a['expect-no-invoice'] && r.invoices) ok = false
  if (r.results > 1 || r.invoices > 1) ok = false
  const done = { step: 'done', ok, outcome: r.outcome, text: r.text, invoices: r.invoices, results: r.results, statuses: r.statuses, texts: r.texts, timings: r.timings, job: r.job }
  if (r.content) done.train_ms = r.content.metrics.train_ms
  out(done)
  for (const x of relays) x.close()
  if (nwc) nwc.close()
  process.exit(ok ? 0 : 1)
}

// ---- cases: many requests at once, each checked against its expectation -----------------------
// --file CASES.json: [{name, data:[url], params:[[k,v]], bid, public, pay, expect:"error"|"result",
// text: substring of the error text, credited: true when a payment must have been taken and credited,
// sec: hex key (default a fresh one)}]. Prints "ok - NAME" / "FAIL - NAME: why" per case.
async function cases() {
  const list = JSON.parse(fs.readFileSync(a.file, 'utf8'))
  const relays = await connectAll(a.relay)
  const nwc = a.nwc ? new NWCClient({ nostrWalletConnectUrl: a.nwc }) : null
  const handlers = new Map()
  for (const r of relays) {
    r.subscribe([{ kinds: [7000, 6720], authors: [a.instance], since: now() - 5 }], {
      onevent(ev) { const h = handlers.get(tagOf(ev, 'e')); if (h) h(ev) },
    })
  }
  await sleep(100)
  let failed = 0
  const pending = new Set(list.map(c => c.name))
  onTimeout.push(() => { for (const n of pending) process.stdout.write(`FAIL - ${n}: no outcome before the timeout\n`) })
  await Promise.all(list.map(async (c) => {
    const sk = c.sec ? Buffer.from(c.sec, 'hex') : generateSecretKey()
    let r
    try {
      r = await runJob({ relays, sk, instance: a.instance, data: c.data, params: c.params || [], bid: c.bid, pub: !!c.public,
        nwc: c.pay ? nwc : null, linger: 200, handlers })
    } catch (e) {
      r = { outcome: 'exception', text: String(e && e.message || e) }
    }
    const why = []
    const expect = c.expect || 'error'
    if (r.outcome !== expect) why.push(`outcome ${r.outcome} (${r.text}), expected ${expect}`)
    if (expect === 'error' && r.outcome === 'error') {
      if (c.text && !String(r.text).includes(c.text)) why.push(`text '${r.text}' lacks '${c.text}'`)
      if (c.credited) {
        if (!/credited to your balance/.test(r.text)) why.push(`text '${r.text}' does not say the payment was credited`)
        if (!r.paid) why.push('no payment was made')
      } else {
        if (!/no payment was taken/.test(r.text)) why.push(`text '${r.text}' does not say that no payment was taken`)
        if (r.invoices) why.push('an invoice was sent')
      }
    }
    if (r.results > 1 || r.invoices > 1) why.push(`duplicates: ${r.invoices} invoices, ${r.results} results`)
    pending.delete(c.name)
    if (why.length) { failed++; out({ case: c.name, text: r.text }); process.stdout.write(`FAIL - ${c.name}: ${why.join('; ')}\n`) }
    else process.stdout.write(`ok - ${c.name}\n`)
  }))
  for (const x of relays) x.close()
  if (nwc) nwc.close()
  process.exit(failed ? 1 : 0)
}

// ---- bench: N jobs one after the other over the same connections ---------------------------------
// overhead of a job = (result received - request published) - the client's pay time - train_ms (as
// reported in the metrics). Prints one line per job and {"step":"done", median_ms, ...}.
async function bench() {
  const relays = await connectAll(a.relay)
  const nwc = new NWCClient({ nostrWalletConnectUrl: a.nwc })
  const n = Number(a.good || 20)
  const rows = []
  for (let i = 0; i < n; i++) {
    const r = await runJob({ relays, sk: generateSecretKey(), instance: a.instance, data: a.data, params: parseParams(a.param),
      nwc, linger: 0, pub: a.public })
    if (r.outcome !== 'result' || !r.ok) { out({ step: 'done', ok: false, job: i, outcome: r.outcome, text: r.text }); process.exit(1) }
    const t = r.timings
    const total = t.result - t.publish
    const train = r.content.metrics.train_ms
    const overhead = total - (t.pay_ms || 0) - train
    rows.push({ total, pay: t.pay_ms || 0, train, overhead, to_invoice: t.payment_required - t.publish, after_pay: t.result - t.payment_required - (t.pay_ms || 0) })
    out({ step: 'job', i, total_ms: +total.toFixed(1), pay_ms: +(t.pay_ms || 0).toFixed(1), train_ms: +train.toFixed(2),
      overhead_ms: +overhead.toFixed(1), publish_to_invoice_ms: +(t.payment_required - t.publish).toFixed(1),
      paid_to_result_ms: +(t.result - t.payment_required - (t.pay_ms || 0)).toFixed(1) })
  }
  const med = (k) => { const v = rows.map(r => r[k]).sort((x, y) => x - y); return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2 }
  const pct = (k, p) => { const v = rows.map(r => r[k]).sort((x, y) => x - y); return v[Math.min(v.length - 1, Math.floor(p * v.length))] }
  out({ step: 'done', ok: true, jobs: n, median_overhead_ms: +med('overhead').toFixed(1), p90_overhead_ms: +pct('overhead', 0.9).toFixed(1),
    min_overhead_ms: +Math.min(...rows.map(r => r.overhead)).toFixed(1), median_total_ms: +med('total').toFixed(1),
    median_pay_ms: +med('pay').toFixed(1), median_train_ms: +med('train').toFixed(2),
    median_publish_to_invoice_ms: +med('to_invoice').toFixed(1), median_paid_to_result_ms: +med('after_pay').toFixed(1) })
  for (const x of relays) x.close()
  nwc.close()
  process.exit(0)
}

// ---- load ----------------------------------------------------------------------------------
async function load() {
  const instance = a.instance
  const params = a.param.map(p => { const i = p.indexOf('='); return [p.slice(0, i), p.slice(i + 1)] })
  const [relay] = await connectAll(a.relay)
  const raw = await Relay.connect(a['raw-relay'])
  const nbad = Number(a.bad), ngood = Number(a.good)
  const bad = [], good = []
  for (let i = 0; i < nbad; i++) {
    const ev = buildRequest(generateSecretKey(), instance, a.data, params, undefined, false)
    ev.sig = (ev.sig[0] === '0' ? '1' : '0') + ev.sig.slice(1) // the signature no longer verifies
    bad.push(ev)
  }
  const keys = []
  for (let i = 0; i < ngood; i++) {
    const sk = generateSecretKey()
    keys.push(sk)
    good.push(buildRequest(sk, instance, a.data, params, undefined, false))
  }
  const byId = new Map(good.map((e, i) => [e.id, { ev: e, sk: keys[i], paid: false, result: false, error: null }]))
  const nwc = new NWCClient({ nostrWalletConnectUrl: a.nwc })
  const payQueue = []
  let paying = false
  const payNext = async () => {
    if (paying) return
    paying = true
    while (payQueue.length) {
      const { job, bolt11 } = payQueue.shift()
      try { await nwc.payInvoice({ invoice: bolt11 }); job.paid = true } catch (e) { job.error = 'pay: ' + (e && e.message || e) }
    }
    paying = false
  }
  let results = 0, errors = 0
  const finished = new Promise((resolve) => {
    const seen = new Set()
    relay.subscribe([{ kinds: [7000, 6720], authors: [instance], since: now() - 5 }], {
      onevent(ev) {
        if (seen.has(ev.id)) return
        seen.add(ev.id)
        const j = byId.get(tagOf(ev, 'e'))
        if (!j || !verifyEvent(ev)) return
        if (ev.kind === 6720) { if (!j.result) { j.result = true; results++ } }
        else {
          const f = openFeedback(ev, j.sk, instance)
          if (f.status === 'payment-required') { payQueue.push({ job: j, bolt11: f.bolt11 }); payNext() }
          else if (f.status === 'error') { j.error = f.text; errors++ }
        }
        if (results + errors >= ngood) resolve()
      },
    })
  })
  await sleep(200)
  const tStart = ms()
  // everything at once: bad ones through the forwarding relay, good ones through the real relay
  await Promise.allSettled([...bad.map(e => raw.publish(e)), ...good.map(e => relay.publish(e))])
  out({ step: 'published', bad: nbad, good: ngood, t: ms() })
  await finished
  const errs = [...byId.values()].filter(j => j.error).map(j => j.error)
  out({ step: 'done', ok: results === ngood, results, errors, error_samples: errs.slice(0, 3), seconds: Math.round(ms() - tStart) / 1000 })
  relay.close(); raw.close(); nwc.close()
  process.exit(results === ngood ? 0 : 1)
}

try {
  if (cmd === 'discover') await discover()
  else if (cmd === 'job') await job()
  else if (cmd === 'load') await load()
  else if (cmd === 'cases') await cases()
  else if (cmd === 'bench') await bench()
  else { process.stderr.write('usage: enclave-client.mjs discover|job|load ... (see the header)\n'); process.exit(2) }
} catch (e) {
  out({ step: 'done', ok: false, outcome: 'exception', error: String(e && e.stack || e) })
  process.exit(1)
}
