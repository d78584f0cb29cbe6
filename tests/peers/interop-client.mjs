#!/usr/bin/env node
// An independent client of the appliance (appliance/PROTOCOL.md "Job protocol", "Attestation
// documents and NEC events"), written only with nostr-tools (events, NIP-44), @getalby/sdk (paying
// over NIP-47) and node built-ins (fetch, crypto.X509Certificate, ECDSA P-384): nothing of the
// project's C code, and its own CBOR / COSE_Sign1 / certificate-chain verification of the
// attestation documents.
//
//   node interop-client.mjs --relay URL --root DEV_ROOT_PEM --nwc URI --blob URL --data FILE
//        [--instance HEX] [--param NAME=VALUE]... [--bid MSAT] [--out DIR] [--timeout-ms N]
//
// 1. discovers an instance (13793, ["k","5720"]), checks the event, its tee_root attestation event
//    and document (chain to --root, ES384 signature, freshness, not debug, public_key = pubkey) and
//    the x tags against the attested PCRs;
// 2. PUTs the CSV to the blob store (URL/<sha256>) and sends a private job request (NIP-44) with a
//    sha256 pin and a bid;
// 3. pays the payment-required invoice with NWCClient.payInvoice (amount <= bid);
// 4. checks the result: signature and author, e/p tags, decryption, model sha256 (inline model),
//    datasets (the uploaded bytes), the result digest recomputed with JSON.stringify, and tee_root:
//    event, document, public_key = instance, user_data = digest, PCRs = the announcement's.
// stdout: "ok - NAME" / "FAIL - NAME: why" per check, then one JSON line {"done":true,"ok":...,
// "model_sha256":...}. Exit 0 when every check passed, 1 otherwise, 2 on usage errors.
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

console.info = console.debug = console.log = () => {} // library chatter
let a
try {
  a = parseArgs({
    options: {
      relay: { type: 'string' }, root: { type: 'string' }, nwc: { type: 'string' }, blob: { type: 'string' },
      data: { type: 'string' }, instance: { type: 'string' }, param: { type: 'string', multiple: true, default: [] },
      bid: { type: 'string', default: '50000' }, out: { type: 'string' }, 'timeout-ms': { type: 'string', default: '60000' },
    },
  }).values
  for (const k of ['relay', 'root', 'nwc', 'blob', 'data']) if (!a[k]) throw new Error(`--${k} is required`)
} catch (e) {
  process.stderr.write(`interop-client: ${e.message}\n`)
  process.exit(2)
}
let failed = 0
const check = (name, ok, why = '') => {
  if (ok) process.stdout.write(`ok - ${name}\n`)
  else { failed++; process.stdout.write(`FAIL - ${name}${why ? ': ' + why : ''}\n`) }
  return ok
}
const finish = (extra) => {
  process.stdout.write(JSON.stringify({ done: true, ok: failed === 0, ...extra }) + '\n')
  process.exit(failed ? 1 : 0)
}
setTimeout(() => { check('finished before the timeout', false); finish({}) }, Number(a['timeout-ms'])).unref()
const sha256 = (b) => crypto.createHash('sha256').update(b).digest()
const hex = (b) => Buffer.from(b).toString('hex')
const tagOf = (ev, n) => ev.tags.find(t => t[0] === n)?.[1]
const now = () => Math.floor(Date.now() / 1000)

// ---- CBOR (RFC 8949), the subset attestation documents use ----
const BREAK = Symbol('break')
function cborDecode(buf) {
  let p = 0
  const need = (n) => { if (p + n > buf.length) throw new Error('truncated CBOR') }
  const len = (ai) => {
    if (ai < 24) return ai
    if (ai === 24) { need(1); return buf[p++] }
    if (ai === 25) { need(2); const v = buf.readUInt16BE(p); p += 2; return v }
    if (ai === 26) { need(4); const v = buf.readUInt32BE(p); p += 4; return v }
    if (ai === 27) { need(8); const v = buf.readBigUInt64BE(p); p += 8; if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('CBOR integer too large'); return Number(v) }
    if (ai === 31) return -1
    throw new Error('bad CBOR length')
  }
  const item = (depth) => {
    if (depth > 8) throw new Error('CBOR nesting too deep')
    need(1)
    const ib = buf[p++], mt = ib >> 5, ai = ib & 31
    if (mt === 7) {
      if (ai === 20) return false
      if (ai === 21) return true
      if (ai === 22) return null
      if (ai === 31) return BREAK
      throw new Error('unsupported CBOR simple value or float')
    }
    const n = len(ai)
    if ((mt === 0 || mt === 1 || mt === 2 || mt === 3 || mt === 6) && n < 0) throw new Error('indefinite CBOR item')
    if (mt === 0) return n
    if (mt === 1) return -1 - n
    if (mt === 2 || mt === 3) { need(n); const b = buf.subarray(p, p + n); p += n; return mt === 2 ? Buffer.from(b) : b.toString('utf8') }
    if (mt === 4) {
      const arr = []
      for (let i = 0; n < 0 || i < n; i++) { const v = item(depth + 1); if (v === BREAK) { if (n < 0) break; throw new Error('stray break') } arr.push(v) }
      return arr
    }
    if (mt === 5) {
      const m = new Map()
      for (let i = 0; n < 0 || i < n; i++) {
        const k = item(depth + 1)
        if (k === BREAK) { if (n < 0) break; throw new Error('stray break') }
        if (m.has(k)) throw new Error('duplicate CBOR map key')
        m.set(k, item(depth + 1))
      }
      return m
    }
    if (mt === 6) return { tag: n, value: item(depth + 1) }
    throw new Error('bad CBOR')
  }
  const v = item(0)
  if (p !== buf.length) throw new Error('trailing bytes after the CBOR item')
  return v
}
const bstrHead = (n) => n < 24 ? Buffer.from([0x40 | n]) : n < 256 ? Buffer.from([0x58, n])
  : n < 65536 ? Buffer.from([0x59, n >> 8, n & 255]) : Buffer.from([0x5a, n >>> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255])

// verifyDoc: an AWS Nitro attestation document (COSE_Sign1, ES384) chaining to the pinned root.
// Returns { pcrs: Map, public_key, user_data, timestamp } or throws with the reason.
function verifyDoc(bytes, rootPem, maxAgeS) {
  let cose = cborDecode(bytes)
  if (cose && cose.tag !== undefined) { if (cose.tag !== 18) throw new Error('COSE tag is not 18'); cose = cose.value }
  if (!Array.isArray(cose) || cose.length !== 4) throw new Error('not a COSE_Sign1 array of 4')
  const [prot, , payload, sig] = cose
  const ph = cborDecode(prot)
  if (!(ph instanceof Map) || ph.size !== 1 || ph.get(1) !== -35) throw new Error('protected header is not {1: -35} (ES384)')
  const d = cborDecode(payload)
  for (const k of ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle']) if (!d.has(k)) throw new Error(`payload lacks ${k}`)
  if (d.get('digest') !== 'SHA384') throw new Error('digest is not SHA384')
  const root = new crypto.X509Certificate(fs.readFileSync(rootPem))
  const bundle = d.get('cabundle').map(b => new crypto.X509Certificate(b))
  if (!bundle.length || !bundle[0].raw.equals(root.raw)) throw new Error('cabundle[0] is not the pinned root')
  const leaf = new crypto.X509Certificate(d.get('certificate'))
  const chain = [...bundle, leaf]
  const t = Date.now()
  for (let i = 0; i < chain.length; i++) {
    const c = chain[i]
    if (t < Date.parse(c.validFrom) || t > Date.parse(c.validTo)) throw new Error(`certificate ${i} outside its validity`)
    if (c.publicKey.asymmetricKeyDetails.namedCurve !== 'secp384r1') throw new Error(`certificate ${i} is not P-384`)
    if ((i < chain.length - 1) !== c.ca) throw new Error(`certificate ${i}: wrong CA flag`)
    const issuer = i === 0 ? c : chain[i - 1]
    if (!c.checkIssued(issuer) || !c.verify(issuer.publicKey)) throw new Error(`certificate ${i} is not signed by its issuer`)
  }
  const sigStruct = Buffer.concat([Buffer.from([0x84, 0x6a]), Buffer.from('Signature1'), bstrHead(prot.length), prot,
    Buffer.from([0x40]), bstrHead(payload.length), payload])
  if (!crypto.verify('sha384', sigStruct, { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' }, sig)) throw new Error('COSE signature does not verify')
  const ts = d.get('timestamp') / 1000
  if (ts > now() + 60 || now() - ts > maxAgeS) throw new Error('timestamp not fresh')
  const pcrs = d.get('pcrs')
  if (!pcrs.get(0) || pcrs.get(0).every(x => x === 0)) throw new Error('debug-mode enclave (PCR0 all zero)')
  return { pcrs, public_key: d.get('public_key'), user_data: d.get('user_data'), timestamp: ts }
}

// checkAttestationEvent: a 23793 by `pubkey`: signature, kind, document, public_key = pubkey.
function checkAttestationEvent(json, pubkey) {
  const ev = JSON.parse(json)
  if (ev.kind !== 23793 || !verifyEvent(ev) || ev.pubkey !== pubkey) throw new Error('not a valid attestation event by the instance')
  const doc = verifyDoc(Buffer.from(ev.content, 'base64'), a.root, 3 * 3600 + 600)
  if (!doc.public_key || hex(doc.public_key) !== pubkey) throw new Error("the document's public_key is not the instance's")
  return doc
}

// ---- 1. discover -----------------------------------------------------------------------------
const relay = await Relay.connect(a.relay)
const anns = await new Promise((resolve) => {
  const got = []
  const f = { kinds: [13793], '#k': ['5720'] }
  if (a.instance) f.authors = [a.instance]
  const sub = relay.subscribe([f], { onevent: (ev) => got.push(ev), oneose: () => { sub.close(); resolve(got) } })
})
const ann = anns.filter(verifyEvent).sort((x, y) => y.created_at - x.created_at)[0]
if (!check('discover: a signed announcement offering kind 5720', !!ann)) finish({})
let annDoc
try {
  annDoc = checkAttestationEvent(tagOf(ann, 'tee_root'), ann.pubkey)
  check('discover: the attestation document verifies (own CBOR, COSE ES384, chain to the root)', true)
} catch (e) { check('discover: the attestation document verifies (own CBOR, COSE ES384, chain to the root)', false, e.message); finish({}) }
const xs = ann.tags.filter(t => t[0] === 'x')
check('discover: x tags = the attested PCR0/1/2', [0, 1, 2].every(i => xs.some(t => t[2] === `PCR${i}` && t[1] === hex(annDoc.pcrs.get(i)))))
check('discover: not expired', Number(tagOf(ann, 'expiration')) > now())
const instance = ann.pubkey

// ---- 2. upload + request ---------------------------------------------------------------------
const csv = fs.readFileSync(a.data)
const csvSha = hex(sha256(csv))
const url = `${a.blob.replace(/\/$/, '')}/${csvSha}`
const put = await fetch(url, { method: 'PUT', body: csv })
check('upload: the blob store took the dataset', put.ok, `HTTP ${put.status}`)
const sk = generateSecretKey()
const inner = [['i', url, 'url'], ...a.param.map(p => ['param', p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]),
  ['param', 'sha256', csvSha], ['bid', a.bid], ['output', 'application/json']]
const ck = nip44.getConversationKey(sk, instance)
const req = finalizeEvent({ kind: 5720, created_at: now(), tags: [['p', instance], ['encrypted']], content: nip44.encrypt(JSON.stringify(inner), ck) }, sk)

// ---- 3. feedback, payment, result --------------------------------------------------------------
const nwc = new NWCClient({ nostrWalletConnectUrl: a.nwc })
const result = await new Promise((resolve) => {
  const seen = new Set()
  let paid = false
  relay.subscribe([{ kinds: [7000, 6720], '#e': [req.id], authors: [instance] }], {
    async onevent(ev) {
      if (seen.has(ev.id) || !verifyEvent(ev)) return
      seen.add(ev.id)
      if (ev.kind === 6720) { resolve(ev); return }
      const status = tagOf(ev, 'status')
      if (status === 'payment-required' && !paid) {
        paid = true
        const am = ev.tags.find(t => t[0] === 'amount')
        check('payment-required: an amount and a bolt11, within the bid', !!am && Number(am[1]) <= Number(a.bid))
        try {
          const r = await nwc.payInvoice({ invoice: am[2] })
          check('paid with @getalby/sdk NWCClient', /^[0-9a-f]{64}$/.test(r.preimage))
        } catch (e) { check('paid with @getalby/sdk NWCClient', false, String(e?.message || e)); resolve(null) }
      } else if (status === 'error') {
        const tags = JSON.parse(nip44.decrypt(ev.content, ck))
        check('no error feedback', false, tags.find(t => t[0] === 'status')?.[2]); resolve(null)
      }
    },
  })
  setTimeout(() => relay.publish(req).catch(e => { check('request published', false, String(e)); resolve(null) }), 100)
})
if (!result) finish({})

// ---- 4. verify the result --------------------------------------------------------------------
check('result: signed by the instance', result.pubkey === instance && verifyEvent(result))
check('result: e = our request, p = us', tagOf(result, 'e') === req.id && tagOf(result, 'p') === getPublicKey(sk))
const c = JSON.parse(nip44.decrypt(result.content, ck))
check('result: job = our request', c.job === req.id)
const model = Buffer.from(c.model.data || '', 'base64')
check('result: model sha256 and size', hex(sha256(model)) === c.model.sha256 && model.length === c.model.bytes)
check('result: the dataset is the bytes we uploaded', c.datasets.length === 1 && c.datasets[0].sha256 === csvSha && c.datasets[0].bytes === csv.length)
const n = Buffer.alloc(4)
n.writeUInt32BE(c.datasets.length)
const digest = hex(sha256(Buffer.concat([Buffer.from('appliance-result-v1'), Buffer.from(c.job, 'hex'), n,
  ...c.datasets.map(d => Buffer.from(d.sha256, 'hex')), Buffer.from(c.model.sha256, 'hex'), Buffer.from(JSON.stringify(c.metrics))])))
check('result: digest recomputed (JSON.stringify of the metrics)', digest === c.digest)
try {
  const doc = checkAttestationEvent(tagOf(result, 'tee_root'), instance)
  check('result: tee_root document verifies, public_key = instance', true)
  check("result: tee_root user_data = the result digest", !!doc.user_data && hex(doc.user_data) === digest)
  check("result: tee_root PCR0/1/2 = the announcement's", [0, 1, 2].every(i => doc.pcrs.get(i).equals(annDoc.pcrs.get(i))))
} catch (e) { check('result: tee_root document verifies, public_key = instance', false, e.message) }
if (a.out) {
  fs.mkdirSync(a.out, { recursive: true })
  fs.writeFileSync(path.join(a.out, 'model.bin'), model)
  fs.writeFileSync(path.join(a.out, 'result.json'), JSON.stringify(c))
}
relay.close()
nwc.close()
finish({ instance, request: req.id, model_sha256: c.model.sha256, accuracy: c.metrics.accuracy, pcr0: hex(annDoc.pcrs.get(0)) })
