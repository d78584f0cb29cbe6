#!/usr/bin/env node
// A NIP-47 (Nostr Wallet Connect) wallet service for the integration tests, built on
// @getalby/sdk 7 NWCWalletService over a (test) relay, with an in-memory ledger that issues real
// signed BOLT-11 invoices (npm bolt11, regtest prefix lnbcrt) from a fixed test node key.
//
// Every connection has its own client keypair (and, unless --shared-wallet-key, its own wallet
// service keypair) and its own balance. pay_invoice from one connection settles an invoice that
// another connection (or the same one) issued: an internal ledger transfer.
//
// stdout (JSON lines only; nothing else is ever printed there):
//   {"ready":true,"relay":...,"node_pubkey":...,"connections":{"NAME":"nostr+walletconnect://..."},
//    "wallet_pubkeys":{"NAME":hex},"client_pubkeys":{"NAME":hex},"pid":N}
//   {"offline":true|false,"reason":"..."}          whenever the offline state changes
// stderr: logs. Exit 0 on SIGTERM/SIGINT, 1 on a startup error (reason on stderr), 2 on usage.
// SIGUSR1 toggles offline (requests are read and dropped, no response).
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import crypto from 'node:crypto'
import fs from 'node:fs'
import WebSocket from 'ws'

globalThis.WebSocket = WebSocket // before the SDK is loaded: it binds the global at load time
const { NWCWalletService, NWCWalletServiceKeyPair } = await import('@getalby/sdk/nwc')
const { finalizeEvent, getPublicKey } = await import('nostr-tools/pure')
const nip04 = await import('nostr-tools/nip04')
const nip44 = await import('nostr-tools/nip44')
const require = createRequire(import.meta.url)
const bolt11 = require('bolt11')

// BOLT-11's own example node key (its pubkey is 03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad).
const DEFAULT_NODE_KEY = 'e126f68f7eafcc8b74f54d269fe206be715000f94dac067d1c04a8ca3b2db734'
const REGTEST = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] }
const METHODS = ['pay_invoice', 'get_balance', 'make_invoice', 'lookup_invoice', 'list_transactions', 'get_info']
const NOTIFICATIONS = ['payment_received', 'payment_sent']

function usage(code) {
  const text = `usage: node wallet.mjs --relay URL [options]
  --relay URL               relay the wallet service listens on (ws:// or wss://)
  --connections A,B,...     connection names (default operator,client); URI variables are named after them
  --balance NAME=MSAT       initial balance of one connection (repeatable)
  --default-balance MSAT    initial balance of the others (default 100000000)
  --node-key HEX            secp256k1 secret key that signs the invoices (default: BOLT-11's example key)
  --seed STRING             derive every wallet/client secret from this (default: random keys)
  --shared-wallet-key       one wallet service pubkey for all connections (default: one per connection)
  --default-expiry S        invoice expiry when make_invoice has none (default 3600)
  --fee-msat N              fee charged to the payer of each payment, reported as fees_paid (default 0)
  --notify MODE             both|nip44|nip04|none: notification kinds 23197 (nip44) / 23196 (nip04)
                            (default both; nip04 with --nip04-only)
  --nip04-only              legacy wallet: info event without an encryption tag, requests that ask for
                            another scheme get UNSUPPORTED_ENCRYPTION, notifications only as 23196
  --info-encryption TAGVAL  override the info event's encryption tag value ('' = no tag)
  --duplicate-notifications send each notification twice at once and once more after --duplicate-delay-ms
  --duplicate-delay-ms N    (default 1000)
  --delay-ms N              delay every response by N ms (the ledger changes at once; only the answer is late)
  --wrong-amount            settled invoices/payments report amount + --wrong-amount-delta in
                            lookup_invoice, list_transactions and notifications
  --wrong-amount-delta=MSAT (default -1000; write a negative value with '='; the reported amount stays >= 1)
  --offline-after N         answer N requests, then drop every later one (SIGUSR1 toggles offline too)
  --no-response-p-tag       answer with the SDK's bare ["e",request] tag only (the SDK omits NIP-47's
                            ["p",client] tag; by default the wallet adds it)
  --auth                    authenticate to the relay (NIP-42) before subscribing (waits for a challenge)
  --startup-timeout-ms N    give up starting after N ms (default 15000)
  --exit-with-pid PID       exit when process PID is gone (checked every 500 ms)
  --verbose                 log requests, responses and SDK chatter to stderr
  -h, --help`
  ;(code ? process.stderr : process.stdout).write(text + '\n')
  process.exit(code)
}

let args
try {
  args = parseArgs({
    options: {
      relay: { type: 'string' },
      connections: { type: 'string', default: 'operator,client' },
      balance: { type: 'string', multiple: true, default: [] },
      'default-balance': { type: 'string', default: '100000000' },
      'node-key': { type: 'string', default: DEFAULT_NODE_KEY },
      seed: { type: 'string' },
      'shared-wallet-key': { type: 'boolean', default: false },
      'default-expiry': { type: 'string', default: '3600' },
      'fee-msat': { type: 'string', default: '0' },
      notify: { type: 'string' },
      'nip04-only': { type: 'boolean', default: false },
      'info-encryption': { type: 'string' },
      'duplicate-notifications': { type: 'boolean', default: false },
      'duplicate-delay-ms': { type: 'string', default: '1000' },
      'delay-ms': { type: 'string', default: '0' },
      'wrong-amount': { type: 'boolean', default: false },
      'wrong-amount-delta': { type: 'string', default: '-1000' },
      'offline-after': { type: 'string' },
      'no-response-p-tag': { type: 'boolean', default: false },
      auth: { type: 'boolean', default: false },
      'startup-timeout-ms': { type: 'string', default: '15000' },
      'exit-with-pid': { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }).values
} catch (e) {
  process.stderr.write(`wallet: ${e.message} (see --help)\n`)
  process.exit(2)
}
if (args.help) usage(0)

function die(msg, code = 1) {
  process.stderr.write(`wallet: ${msg}\n`)
  process.exit(code)
}
function intOf(name, s, min = 0) {
  if (!/^-?\d+$/.test(s)) die(`${name} must be an integer, got '${s}'`, 2)
  const n = Number(s)
  if (!Number.isSafeInteger(n) || n < min) die(`${name} must be an integer >= ${min}, got '${s}'`, 2)
  return n
}
const intArg = (name, min = 0) => intOf(`--${name}`, args[name], min)

// --- options -------------------------------------------------------------------------------
const verbose = args.verbose
const ts = () => new Date().toISOString()
const log = (...a) => console.error(ts(), ...a)
const vlog = (...a) => { if (verbose) log(...a) }
// The SDK logs with console.info/console.log: keep stdout for our JSON lines only.
const stderrLog = (...a) => console.error(...a)
console.log = console.info = console.debug = verbose ? stderrLog : () => {}
console.warn = stderrLog

if (!args.relay) die('--relay URL is required (see --help)', 2)
let relayUrl
try {
  const u = new URL(args.relay)
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error('not ws:// or wss://')
  relayUrl = args.relay
} catch (e) {
  die(`--relay '${args.relay}': ${e.message}`, 2)
}
const names = args.connections.split(',').map(s => s.trim()).filter(Boolean)
if (!names.length) die('--connections needs at least one name', 2)
for (const n of names) if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(n)) die(`connection name '${n}' must match [A-Za-z][A-Za-z0-9_]*`, 2)
if (new Set(names).size !== names.length) die('--connections has a duplicate name', 2)
const defaultBalance = intArg('default-balance')
const balances = {}
for (const b of args.balance) {
  const m = /^([A-Za-z][A-Za-z0-9_]*)=(\d+)$/.exec(b)
  if (!m) die(`--balance '${b}': expected NAME=MSAT`, 2)
  if (!names.includes(m[1])) die(`--balance '${b}': no connection named '${m[1]}'`, 2)
  balances[m[1]] = intOf('--balance', m[2])
}
if (!/^[0-9a-f]{64}$/i.test(args['node-key'])) die('--node-key must be 64 hex characters', 2)
const nodeKey = args['node-key'].toLowerCase()
let nodePubkey
try {
  nodePubkey = crypto.createECDH('secp256k1')
  nodePubkey.setPrivateKey(Buffer.from(nodeKey, 'hex'))
  nodePubkey = nodePubkey.getPublicKey('hex', 'compressed')
} catch (e) {
  die(`--node-key is not a valid secp256k1 secret key: ${e.message}`, 2)
}
const defaultExpiry = intArg('default-expiry', 1)
const feeMsat = intArg('fee-msat')
const nip04Only = args['nip04-only']
const notifyMode = args.notify ?? (nip04Only ? 'nip04' : 'both')
if (!['both', 'nip44', 'nip04', 'none'].includes(notifyMode)) die('--notify must be both|nip44|nip04|none', 2)
if (nip04Only && (notifyMode === 'both' || notifyMode === 'nip44')) die('--nip04-only cannot send nip44 notifications', 2)
const infoEncryption = args['info-encryption'] ?? (nip04Only ? '' : 'nip44_v2 nip04')
const supportedEncryptions = nip04Only ? ['nip04'] : ['nip44_v2', 'nip04']
const duplicateNotifications = args['duplicate-notifications']
const duplicateDelayMs = intArg('duplicate-delay-ms')
const delayMs = intArg('delay-ms')
const wrongAmount = args['wrong-amount']
const wrongAmountDelta = intOf('--wrong-amount-delta', args['wrong-amount-delta'], -Number.MAX_SAFE_INTEGER)
const offlineAfter = args['offline-after'] === undefined ? Infinity : intArg('offline-after')
const startupTimeoutMs = intArg('startup-timeout-ms', 1)

// --- keys -----------------------------------------------------------------------------------
const seed = args.seed ?? crypto.randomBytes(32).toString('hex')
function deriveSecret(label) {
  // sha256 of a label is a valid secp256k1 secret key except with negligible probability
  for (let i = 0; ; i++) {
    const k = crypto.createHash('sha256').update(`appliance-test-wallet/${seed}/${label}/${i}`).digest()
    if (k.some(b => b !== 0) && Buffer.compare(k, Buffer.from('fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141', 'hex')) < 0) return k.toString('hex')
  }
}
const sharedWalletSecret = deriveSecret('wallet')
const conns = new Map() // name -> connection
for (const name of names) {
  const walletSecret = args['shared-wallet-key'] ? sharedWalletSecret : deriveSecret(`wallet/${name}`)
  const clientSecret = deriveSecret(`client/${name}`)
  const walletPubkey = getPublicKey(Buffer.from(walletSecret, 'hex'))
  const clientPubkey = getPublicKey(Buffer.from(clientSecret, 'hex'))
  conns.set(name, {
    name, walletSecret, walletPubkey, clientSecret, clientPubkey,
    uri: `nostr+walletconnect://${walletPubkey}?relay=${encodeURIComponent(relayUrl)}&secret=${clientSecret}`,
    balance: balances[name] ?? defaultBalance,
    outgoing: [], // payments this connection made
    chain: Promise.resolve(), // requests of this connection are answered one at a time, in order
    current: null, // context of the request being answered
  })
}

// --- ledger ---------------------------------------------------------------------------------
const invoices = new Map() // payment_hash -> invoice record (incoming side)
const now = () => Math.floor(Date.now() / 1000)
const sha256hex = (buf) => crypto.createHash('sha256').update(buf).digest('hex')
const ok = (result) => ({ result, error: null })
const fail = (code, message) => ({ result: null, error: { code, message } })

function incomingState(inv) {
  if (inv.state === 'pending' && now() > inv.expires_at) return 'expired'
  return inv.state
}
function reportedAmount(tx, state) {
  if (wrongAmount && state === 'settled') return Math.max(1, tx.amount + wrongAmountDelta)
  return tx.amount
}
// The NIP-47 transaction object of an incoming invoice or an outgoing payment.
function publicTx(tx) {
  const state = tx.type === 'incoming' ? incomingState(tx) : tx.state
  const out = {
    type: tx.type,
    state,
    invoice: tx.invoice,
    description: tx.description,
    description_hash: tx.description_hash,
    payment_hash: tx.payment_hash,
    amount: reportedAmount(tx, state),
    fees_paid: tx.fees_paid,
    created_at: tx.created_at,
    expires_at: tx.expires_at,
  }
  if (state === 'settled') {
    out.preimage = tx.preimage
    out.settled_at = tx.settled_at
  }
  if (tx.metadata !== undefined) out.metadata = tx.metadata
  return out
}

function makeInvoice(conn, p) {
  const amount = p.amount
  if (!Number.isSafeInteger(amount) || amount <= 0) return fail('OTHER', 'amount must be a positive integer (msat)')
  if (p.description !== undefined && typeof p.description !== 'string') return fail('OTHER', 'description must be a string')
  const description = p.description ?? ''
  if (Buffer.byteLength(description) > 639) return fail('OTHER', 'description is longer than 639 bytes')
  const dh = p.description_hash
  if (dh !== undefined && dh !== '' && !/^[0-9a-f]{64}$/i.test(dh)) return fail('OTHER', 'description_hash must be 64 hex characters')
  const expiry = p.expiry ?? defaultExpiry
  if (!Number.isSafeInteger(expiry) || expiry <= 0) return fail('OTHER', 'expiry must be a positive integer (seconds)')
  if (p.metadata !== undefined && JSON.stringify(p.metadata).length > 4096) return fail('OTHER', 'metadata is longer than 4096 characters')

  const preimage = crypto.randomBytes(32)
  const payment_hash = sha256hex(preimage)
  const created_at = now()
  const tags = [
    { tagName: 'payment_hash', data: payment_hash },
    { tagName: 'payment_secret', data: crypto.randomBytes(32).toString('hex') },
    dh ? { tagName: 'purpose_commit_hash', data: dh.toLowerCase() } : { tagName: 'description', data: description },
    { tagName: 'expire_time', data: expiry },
    { tagName: 'min_final_cltv_expiry', data: 18 },
  ]
  const unsigned = bolt11.encode({ network: REGTEST, millisatoshis: String(amount), timestamp: created_at, tags }, true)
  const signed = bolt11.sign(unsigned, nodeKey)
  const inv = {
    type: 'incoming', state: 'pending', owner: conn.name,
    invoice: signed.paymentRequest, description, description_hash: dh ? dh.toLowerCase() : '',
    preimage: preimage.toString('hex'), payment_hash, amount, fees_paid: 0,
    created_at, expires_at: created_at + expiry, settled_at: null, metadata: p.metadata,
  }
  invoices.set(payment_hash, inv)
  log(`make_invoice conn=${conn.name} amount=${amount} payment_hash=${payment_hash.slice(0, 16)} expiry=${expiry}`)
  return ok(publicTx(inv))
}

function decodeInvoice(s) {
  if (typeof s !== 'string' || !s) throw new Error('invoice missing')
  const d = bolt11.decode(s)
  const ph = d.tags.find(t => t.tagName === 'payment_hash')
  if (!ph) throw new Error('invoice has no payment_hash')
  return { decoded: d, payment_hash: ph.data }
}

async function payInvoice(conn, p) {
  let d
  try { d = decodeInvoice(p.invoice) } catch (e) { return fail('OTHER', `invalid invoice: ${e.message}`) }
  const inv = invoices.get(d.payment_hash)
  if (!inv || inv.invoice !== p.invoice.toLowerCase() || d.decoded.payeeNodeKey !== nodePubkey) {
    return fail('NOT_FOUND', 'no route: the invoice was not issued by this wallet')
  }
  if (inv.state === 'settled') return fail('PAYMENT_FAILED', 'invoice already paid')
  if (incomingState(inv) === 'expired') return fail('PAYMENT_FAILED', 'invoice expired')
  if (p.amount !== undefined && p.amount !== null && p.amount !== inv.amount) return fail('OTHER', `amount ${p.amount} does not match the invoice's ${inv.amount} msat`)
  const total = inv.amount + feeMsat
  if (conn.balance < total) return fail('INSUFFICIENT_BALANCE', `balance ${conn.balance} msat < ${total} msat`)
  const payee = conns.get(inv.owner)
  conn.balance -= total
  payee.balance += inv.amount
  inv.state = 'settled'
  inv.settled_at = now()
  const out = {
    type: 'outgoing', state: 'settled', invoice: inv.invoice, description: inv.description,
    description_hash: inv.description_hash, preimage: inv.preimage, payment_hash: inv.payment_hash,
    amount: inv.amount, fees_paid: feeMsat, created_at: inv.settled_at, expires_at: inv.expires_at,
    settled_at: inv.settled_at, metadata: p.metadata,
  }
  conn.outgoing.push(out)
  log(`pay_invoice payer=${conn.name} payee=${payee.name} amount=${inv.amount} fee=${feeMsat} payment_hash=${inv.payment_hash.slice(0, 16)}`)
  await Promise.all([notify(payee, 'payment_received', publicTx(inv)), notify(conn, 'payment_sent', publicTx(out))])
  return ok({ preimage: inv.preimage, fees_paid: feeMsat })
}

function txsOf(conn) {
  return [...[...invoices.values()].filter(i => i.owner === conn.name), ...conn.outgoing]
}

function lookupInvoice(conn, p) {
  let ph = p.payment_hash
  if (ph === undefined && p.invoice !== undefined) {
    try { ph = decodeInvoice(p.invoice).payment_hash } catch (e) { return fail('OTHER', `invalid invoice: ${e.message}`) }
  }
  if (typeof ph !== 'string' || !/^[0-9a-f]{64}$/i.test(ph)) return fail('OTHER', 'payment_hash or invoice required')
  ph = ph.toLowerCase()
  const tx = txsOf(conn).find(t => t.payment_hash === ph)
  if (!tx) return fail('NOT_FOUND', 'invoice not found')
  return ok(publicTx(tx))
}

function listTransactions(conn, p) {
  let txs = txsOf(conn).map(publicTx)
  if (p.from !== undefined) txs = txs.filter(t => t.created_at >= p.from)
  if (p.until !== undefined) txs = txs.filter(t => t.created_at <= p.until)
  if (p.type !== undefined) txs = txs.filter(t => t.type === p.type)
  if (!p.unpaid) txs = txs.filter(t => t.state === 'settled')
  txs.sort((a, b) => b.created_at - a.created_at)
  const offset = Number.isSafeInteger(p.offset) ? p.offset : 0
  const limit = Number.isSafeInteger(p.limit) ? p.limit : txs.length
  return ok({ transactions: txs.slice(offset, offset + limit) })
}

function getInfo() {
  return ok({
    alias: 'appliance-test-wallet', color: '#3399ff', pubkey: nodePubkey, network: 'regtest',
    block_height: 1000, block_hash: '0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206',
    methods: METHODS, notifications: notifyMode === 'none' ? [] : NOTIFICATIONS,
  })
}

// --- notifications (the SDK's wallet service has no publisher for them) ---------------------
const timers = new Set()
async function publishNotification(conn, kind, payload) {
  const content = kind === 23196
    ? nip04.encrypt(conn.walletSecret, conn.clientPubkey, payload)
    : nip44.encrypt(payload, nip44.getConversationKey(Buffer.from(conn.walletSecret, 'hex'), conn.clientPubkey))
  const ev = finalizeEvent({ kind, created_at: now(), tags: [['p', conn.clientPubkey]], content }, Buffer.from(conn.walletSecret, 'hex'))
  try {
    await conn.svc.relay.publish(ev)
    vlog(`notification kind=${kind} conn=${conn.name} id=${ev.id.slice(0, 16)}`)
  } catch (e) {
    log(`notification kind=${kind} conn=${conn.name} not published: ${e && e.message || e}`)
  }
}
async function notify(conn, type, tx) {
  if (notifyMode === 'none') return
  const kinds = notifyMode === 'both' ? [23197, 23196] : notifyMode === 'nip44' ? [23197] : [23196]
  const payload = JSON.stringify({ notification_type: type, notification: tx })
  const sendAll = () => Promise.all(kinds.map(k => publishNotification(conn, k, payload)))
  log(`notify ${type} conn=${conn.name} payment_hash=${tx.payment_hash.slice(0, 16)} amount=${tx.amount}`)
  await sendAll()
  if (duplicateNotifications) {
    await sendAll() // a second, distinct event (fresh encryption nonce, so a new id)
    const t = setTimeout(() => { timers.delete(t); sendAll() }, duplicateDelayMs)
    timers.add(t)
  }
}

// --- offline switch -------------------------------------------------------------------------
let offline = false
let answered = 0
let offlineAfterFired = false // --offline-after takes the wallet offline once; SIGUSR1 can bring it back
function setOffline(v, reason) {
  if (offline === v) return
  offline = v
  process.stdout.write(JSON.stringify({ offline, reason }) + '\n')
  log(`offline=${offline} (${reason})`)
}
process.on('SIGUSR1', () => setOffline(!offline, 'SIGUSR1'))

// --- request handling on top of NWCWalletService --------------------------------------------
// The SDK decrypts a request, calls our handler for its method and publishes the encrypted
// response. We see each request event first (wrapping the subscription's onevent) to honour the
// expiration tag, the offline switch and the encryption scheme, and answer a connection's requests
// one at a time so the handler knows which request it serves.
const sleep = (ms) => new Promise(r => setTimeout(r, ms))
function handlerFor(conn) {
  const wrap = (method, fn) => async (params) => {
    const ctx = conn.current || {}
    let res
    if (ctx.unsupported) {
      res = fail('UNSUPPORTED_ENCRYPTION', `encryption '${ctx.encryption}' is not supported; use ${supportedEncryptions.join(' or ')}`)
    } else {
      try { res = await fn(conn, params || {}) } catch (e) { res = fail('INTERNAL', String(e && e.message || e)) }
    }
    vlog(`response conn=${conn.name} method=${method} request=${(ctx.id || '').slice(0, 16)} ${JSON.stringify(res).slice(0, 300)}`)
    if (delayMs) await sleep(delayMs)
    return res
  }
  return {
    getInfo: wrap('get_info', getInfo),
    getBalance: wrap('get_balance', (c) => ok({ balance: c.balance })),
    makeInvoice: wrap('make_invoice', makeInvoice),
    payInvoice: wrap('pay_invoice', payInvoice),
    lookupInvoice: wrap('lookup_invoice', lookupInvoice),
    listTransactions: wrap('list_transactions', listTransactions),
  }
}

function onRequest(conn, ev, sdkOnevent) {
  conn.chain = conn.chain.then(async () => {
    const exp = ev.tags.find(t => t[0] === 'expiration')
    if (exp && Number(exp[1]) < now()) { log(`request ${ev.id.slice(0, 16)} conn=${conn.name} expired: ignored`); return }
    if (offline) { log(`request ${ev.id.slice(0, 16)} conn=${conn.name} dropped: offline`); return }
    answered++
    const encryption = ev.tags.find(t => t[0] === 'encryption')?.[1] || 'nip04'
    conn.current = { id: ev.id, encryption, unsupported: !supportedEncryptions.includes(encryption) }
    vlog(`request conn=${conn.name} id=${ev.id.slice(0, 16)} encryption=${encryption}`)
    try { await sdkOnevent(ev) } finally { conn.current = null }
    if (answered >= offlineAfter && !offlineAfterFired) {
      offlineAfterFired = true
      setOffline(true, `--offline-after ${offlineAfter}`)
    }
  }).catch(e => log(`request ${ev.id.slice(0, 16)} failed: ${e && e.stack || e}`))
}

function startConnection(conn) {
  const svc = new NWCWalletService({ relayUrl })
  conn.svc = svc
  let resolveReady
  conn.ready = new Promise(r => { resolveReady = r })
  const relay = svc.relay
  // NIP-47 responses carry ["p", client pubkey] and ["e", request id]; SDK 7.0.0 sends only the e tag.
  if (!args['no-response-p-tag']) {
    const baseSign = svc.signEvent.bind(svc)
    svc.signEvent = (t, secret) => {
      if (t.kind === 23195 && !t.tags.some(x => x[0] === 'p')) t = { ...t, tags: [['p', conn.clientPubkey], ...t.tags] }
      return baseSign(t, secret)
    }
  }
  // NIP-42: answer the relay's challenge with the wallet key.
  const baseCheck = svc._checkConnected.bind(svc)
  svc._checkConnected = async () => {
    const wasConnected = relay.connected
    await baseCheck()
    if (args.auth && !wasConnected) {
      for (let i = 0; i < 40 && !relay.challenge; i++) await sleep(50)
      if (!relay.challenge) throw new Error('relay sent no NIP-42 challenge')
      await relay.auth(t => finalizeEvent(t, Buffer.from(conn.walletSecret, 'hex')))
      vlog(`conn=${conn.name} authenticated to the relay`)
    }
  }
  const baseSubscribe = relay.subscribe.bind(relay)
  relay.subscribe = (filters, params) => {
    const sub = baseSubscribe(filters, params)
    let inner = sub.onevent
    const outer = (ev) => onRequest(conn, ev, inner)
    Object.defineProperty(sub, 'onevent', { configurable: true, enumerable: true, get: () => outer, set: (fn) => { inner = fn } })
    const prevEose = sub.oneose
    const first = !conn.subscribedOnce
    conn.subscribedOnce = true
    sub.oneose = () => {
      prevEose?.()
      if (sub.closed) return // CLOSED by the relay (e.g. auth-required:), then the EOSE timer fired
      if (first) { resolveReady(); return }
      // Resubscribed after losing the relay: it may have lost the info event too (ephemeral db).
      log(`conn=${conn.name} resubscribed after a reconnect`)
      publishInfo(conn).catch(e => log(`conn=${conn.name} info event not republished: ${e && e.message || e}`))
    }
    sub.onclose = (reason) => {
      if (stopping) return
      log(`conn=${conn.name} subscription closed: ${reason}`)
      if (first && /^auth-required:/.test(reason) && !args.auth) startupFailed(`the relay requires NIP-42 auth (${reason}): start the wallet with --auth`)
    }
    return sub
  }
  conn.unsubscribe = svc.subscribe(new NWCWalletServiceKeyPair(conn.walletSecret, conn.clientPubkey), handlerFor(conn))
}

async function publishInfo(conn) {
  const tags = []
  if (infoEncryption !== '') tags.push(['encryption', infoEncryption])
  if (notifyMode !== 'none') tags.push(['notifications', NOTIFICATIONS.join(' ')])
  const content = [...METHODS, ...(notifyMode !== 'none' ? ['notifications'] : [])].join(' ')
  const ev = finalizeEvent({ kind: 13194, created_at: now(), tags, content }, Buffer.from(conn.walletSecret, 'hex'))
  await conn.svc.relay.publish(ev)
}

// --- start, stop ----------------------------------------------------------------------------
let stopping = false
async function stop(why, code = 0) {
  if (stopping) return
  stopping = true
  log(`stopping (${why})`)
  setTimeout(() => process.exit(code), 1500).unref()
  for (const t of timers) clearTimeout(t)
  for (const c of conns.values()) {
    try { (await c.unsubscribe)?.() } catch {}
    try { c.svc?.close() } catch {}
  }
  process.exit(code)
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
process.on('SIGHUP', () => stop('SIGHUP'))
if (args['exit-with-pid']) {
  const ppid = intArg('exit-with-pid', 1)
  setInterval(() => {
    let gone = false
    try { process.kill(ppid, 0) } catch (e) { gone = e.code === 'ESRCH' }
    try { gone ||= /^ Z /.test(fs.readFileSync(`/proc/${ppid}/stat`, 'latin1').replace(/^.*\)/, '')) } catch {} // zombie
    if (gone) stop(`pid ${ppid} is gone`)
  }, 500).unref()
}

let startupFailed
const failure = new Promise((_, reject) => { startupFailed = (why) => reject(new Error(why)) })
failure.catch(() => {})
const startup = (async () => {
  for (const c of conns.values()) startConnection(c)
  await Promise.all([...conns.values()].map(c => c.ready))
  const published = new Set()
  for (const c of conns.values()) {
    if (published.has(c.walletPubkey)) continue
    published.add(c.walletPubkey)
    await publishInfo(c)
  }
})()
const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`not ready after ${startupTimeoutMs} ms (is the relay at ${relayUrl} up?)`)), startupTimeoutMs).unref())
try {
  await Promise.race([startup, timeout, failure])
} catch (e) {
  process.stderr.write(`wallet: cannot start: ${e && e.message || e}\n`)
  await stop('startup failed', 1)
}
const pick = (f) => Object.fromEntries([...conns.values()].map(c => [c.name, f(c)]))
process.stdout.write(JSON.stringify({
  ready: true, relay: relayUrl, node_pubkey: nodePubkey, pid: process.pid,
  connections: pick(c => c.uri), wallet_pubkeys: pick(c => c.walletPubkey), client_pubkeys: pick(c => c.clientPubkey),
}) + '\n')
log(`ready: ${names.length} connection(s) on ${relayUrl}; node ${nodePubkey}`)
