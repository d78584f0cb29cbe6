#!/usr/bin/env node
// Drives a running wallet.mjs with @getalby/sdk's NWCClient (the client side of NIP-47) and checks
// the answers, the bolt11 invoices and the notifications. Prints one line per check:
// "ok - NAME" or "FAIL - NAME: why"; exits 1 when a check failed.
// usage: node nwc-smoke.mjs --operator URI --client URI --node-pubkey HEX [--nip04]
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'
import crypto from 'node:crypto'
import WebSocket from 'ws'

globalThis.WebSocket = WebSocket
const { NWCClient } = await import('@getalby/sdk/nwc')
const { finalizeEvent, generateSecretKey, getPublicKey } = await import('nostr-tools/pure')
const { Relay, useWebSocketImplementation } = await import('nostr-tools/relay')
const nip04 = await import('nostr-tools/nip04')
const nip44 = await import('nostr-tools/nip44')
useWebSocketImplementation(WebSocket)
const bolt11 = createRequire(import.meta.url)('bolt11')

const args = parseArgs({
  options: {
    operator: { type: 'string' },
    client: { type: 'string' },
    'node-pubkey': { type: 'string' },
    nip04: { type: 'boolean', default: false },
    misbehave: { type: 'boolean', default: false },
    'wallet-pid': { type: 'string' },
    'delay-ms': { type: 'string', default: '0' },
    'fee-msat': { type: 'string', default: '0' },
    'wrong-amount-delta': { type: 'string', default: '0' },
    'offline-after': { type: 'string' },
    verbose: { type: 'boolean', default: false },
    'timeout-ms': { type: 'string', default: '30000' },
  },
}).values
if (!args.operator || !args.client || !args['node-pubkey']) {
  console.error('usage: node nwc-smoke.mjs --operator URI --client URI --node-pubkey HEX [--nip04]\n' +
    '       ... --misbehave --wallet-pid PID --delay-ms N --fee-msat N --wrong-amount-delta N --offline-after N\n' +
    '       (the wallet started with --duplicate-notifications and those values)')
  process.exit(2)
}
// The SDK reports every failed request on console.error; expected failures are checked below.
const out = (s) => process.stdout.write(s + '\n')
if (!args.verbose) console.error = console.warn = console.info = console.log = () => {}
const mode = args.misbehave ? 'misbehave' : args.nip04 ? 'nip04' : 'nip44'
let failed = 0
const ok = (name) => out(`ok - ${mode}: ${name}`)
const fail = (name, why) => { failed++; out(`FAIL - ${mode}: ${name}: ${why}`) }
const check = (name, cond, why) => (cond ? ok(name) : fail(name, typeof why === 'string' ? why : JSON.stringify(why)))
setTimeout(() => { fail('watchdog', `not done after ${args['timeout-ms']} ms`); process.exit(1) }, Number(args['timeout-ms'])).unref()
const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms))])
const call = (client, method, params) => withTimeout(params === undefined ? client[method]() : client[method](params), 10000, method)
async function expectError(name, p, code) {
  try {
    const r = await withTimeout(p, 10000, name)
    fail(name, `expected ${code}, got a result ${JSON.stringify(r)}`)
  } catch (e) {
    check(name, e.code === code, `expected ${code}, got ${e.code}: ${e.message}`)
  }
}
const sha256hex = (hex) => crypto.createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex')
const now = () => Math.floor(Date.now() / 1000)
const parseUri = (u) => {
  const x = new URL(u.replace('nostr+walletconnect://', 'http://'))
  return { walletPubkey: x.hostname, relay: x.searchParams.get('relay'), secret: x.searchParams.get('secret') }
}

// BOLT-11 signature check without the bolt11 package: sha256(hrp || data words as bytes, zero
// padded) verified with the node's compressed pubkey (SPKI-wrapped for node:crypto).
function bolt11SigOk(invoice, pubkeyHex) {
  const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'
  const s = invoice.toLowerCase()
  const sep = s.lastIndexOf('1')
  const hrp = s.slice(0, sep)
  const words = [...s.slice(sep + 1, -6)].map(c => CHARSET.indexOf(c))
  if (words.some(w => w < 0) || words.length < 104) return false
  const data = words.slice(0, -104)
  const sigWords = words.slice(-104)
  const toBytes = (ws) => {
    const out = []
    let acc = 0, bits = 0
    for (const w of ws) {
      acc = (acc << 5) | w; bits += 5
      while (bits >= 8) { bits -= 8; out.push((acc >> bits) & 0xff) }
      acc &= (1 << bits) - 1
    }
    if (bits > 0) out.push((acc << (8 - bits)) & 0xff)
    return Buffer.from(out)
  }
  const sig = toBytes(sigWords).subarray(0, 64) // r || s, then the recovery id
  const spki = Buffer.concat([Buffer.from('3036301006072a8648ce3d020106052b8104000a032200', 'hex'), Buffer.from(pubkeyHex, 'hex')])
  const key = crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' })
  return crypto.verify('sha256', Buffer.concat([Buffer.from(hrp, 'utf8'), toBytes(data)]), { key, dsaEncoding: 'ieee-p1363' }, sig)
}

// One NIP-47 request by hand (kind 23194 -> 23195 with our e tag), over the raw relay connection.
async function rawRequest(uri, method, params, encryption) {
  const u = parseUri(uri)
  const csk = Buffer.from(u.secret, 'hex')
  const ck = nip44.getConversationKey(csk, u.walletPubkey)
  const plain = JSON.stringify({ method, params })
  const content = encryption === 'nip04' ? nip04.encrypt(csk, u.walletPubkey, plain) : nip44.encrypt(plain, ck)
  const req = finalizeEvent({ kind: 23194, created_at: now(), tags: [['p', u.walletPubkey], ['encryption', encryption]], content }, csk)
  const resp = await withTimeout(new Promise((resolve, reject) => {
    const sub = rawRelay.subscribe([{ kinds: [23195], authors: [u.walletPubkey], '#e': [req.id] }], {
      onevent: e => { sub.close(); resolve(e) },
      oneose: () => rawRelay.publish(req).catch(reject),
    })
  }), 10000, `${method} response`)
  const body = JSON.parse(encryption === 'nip04' ? nip04.decrypt(csk, u.walletPubkey, resp.content) : nip44.decrypt(resp.content, ck))
  return Object.defineProperty(body, 'event', { value: resp, enumerable: false })
}

// Notifications seen by an NWCClient, and a way to wait for one.
function collector() {
  const seen = []
  const waiters = []
  return {
    seen,
    push(n) { seen.push(n); for (const w of [...waiters]) if (w.pred(n)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(n) } },
    wait(pred, ms, what) {
      const f = seen.find(pred)
      if (f) return Promise.resolve(f)
      return withTimeout(new Promise(resolve => waiters.push({ pred, resolve })), ms, what)
    },
  }
}
// NWCClient.subscribeNotifications returns before its REQ is live; notifications are ephemeral,
// so wait until the relay has answered the subscription (EOSE) before anything is paid.
async function notificationsLive(client, kind) {
  for (let i = 0; i < 200; i++) {
    for (const relay of client.pool.relays.values()) {
      for (const sub of relay.openSubs.values()) {
        if (sub.eosed && sub.filters.some(f => f.kinds?.includes(kind))) return true
      }
    }
    await new Promise(r => setTimeout(r, 25))
  }
  return false
}

const op = new NWCClient({ nostrWalletConnectUrl: args.operator })
const cl = new NWCClient({ nostrWalletConnectUrl: args.client })
const nodePubkey = args['node-pubkey']
const notifKind = args.nip04 ? 23196 : 23197
let rawRelay
const unsubs = []
async function normal() {
  // --- info event and get_info
  const wsi = await withTimeout(op.getWalletServiceInfo(), 10000, 'info event')
  if (args.nip04) check('info event: nip04 only', wsi.encryptions.join(' ') === 'nip04', wsi.encryptions)
  else check('info event: encryption tag "nip44_v2 nip04"', wsi.encryptions.join(' ') === 'nip44_v2 nip04', wsi.encryptions)
  check('info event: notifications', wsi.notifications.join(' ') === 'payment_received payment_sent', wsi.notifications)
  for (const m of ['pay_invoice', 'make_invoice', 'lookup_invoice', 'get_balance', 'get_info', 'notifications']) {
    if (!wsi.capabilities.includes(m)) fail('info event: methods', `missing ${m}: ${wsi.capabilities}`)
  }
  const info = await call(op, 'getInfo')
  check('get_info', info.pubkey === nodePubkey && info.network === 'regtest' && info.methods.includes('pay_invoice') &&
    info.notifications.includes('payment_received'), info)
  check(`client uses ${args.nip04 ? 'nip04' : 'nip44_v2'}`, op.encryptionType === (args.nip04 ? 'nip04' : 'nip44_v2'), op.encryptionType)
  await call(cl, 'getInfo')

  // --- notifications: SDK subscriptions plus a raw one (what a C client sees on the wire)
  const opN = collector()
  const clN = collector()
  unsubs.push(await op.subscribeNotifications(n => opN.push(n)))
  unsubs.push(await cl.subscribeNotifications(n => clN.push(n)))
  const opUri = parseUri(args.operator)
  const opClientPk = getPublicKey(Buffer.from(opUri.secret, 'hex'))
  const rawSeen = []
  rawRelay = await withTimeout(Relay.connect(opUri.relay), 5000, 'raw relay connect')
  await withTimeout(new Promise(resolve => {
    rawRelay.subscribe([{ kinds: [23196, 23197], authors: [opUri.walletPubkey], '#p': [opClientPk] }], { onevent: e => rawSeen.push(e), oneose: resolve })
  }), 5000, 'raw notification subscription')
  check('notification subscriptions live', await notificationsLive(op, notifKind) && await notificationsLive(cl, notifKind), 'no EOSE')

  // --- make_invoice
  const bal0op = (await call(op, 'getBalance')).balance
  const bal0cl = (await call(cl, 'getBalance')).balance
  const expiring = await call(op, 'makeInvoice', { amount: 1000, description: 'expires soon', expiry: 1 })
  const t0 = now()
  const inv = await call(op, 'makeInvoice', { amount: 21000, description: 'smoke job #1', expiry: 600 })
  check('make_invoice result', inv.type === 'incoming' && inv.state === 'pending' && inv.amount === 21000 &&
    inv.description === 'smoke job #1' && /^[0-9a-f]{64}$/.test(inv.payment_hash) && inv.preimage === undefined &&
    Math.abs(inv.created_at - t0) <= 2 && inv.expires_at === inv.created_at + 600, inv)
  check('make_invoice: lnbcrt prefix and amount', inv.invoice.startsWith('lnbcrt210n1'), inv.invoice.slice(0, 16))

  // --- bolt11: signature, payee, payment_hash, amount, description, expiry, payment_secret
  const d = bolt11.decode(inv.invoice)
  const tagv = (n) => d.tags.find(t => t.tagName === n)?.data
  check('bolt11: network regtest (bcrt)', d.network?.bech32 === 'bcrt' && d.prefix === 'lnbcrt210n', d.prefix)
  check('bolt11: signature recovers the test node key', d.complete && d.payeeNodeKey === nodePubkey, d.payeeNodeKey)
  check('bolt11: ECDSA signature verifies against the node pubkey', bolt11SigOk(inv.invoice, nodePubkey), 'signature does not verify')
  check('bolt11: payment_hash', tagv('payment_hash') === inv.payment_hash, tagv('payment_hash'))
  check('bolt11: amount 21000 msat', d.millisatoshis === '21000', d.millisatoshis)
  check('bolt11: description', tagv('description') === 'smoke job #1', tagv('description'))
  check('bolt11: expiry 600, timestamp = created_at', tagv('expire_time') === 600 && d.timestamp === inv.created_at, [tagv('expire_time'), d.timestamp])
  check('bolt11: payment_secret', /^[0-9a-f]{64}$/.test(tagv('payment_secret') || ''), tagv('payment_secret'))

  const dh = crypto.createHash('sha256').update('{"job":"metadata"}').digest('hex')
  const invH = await call(op, 'makeInvoice', { amount: 5000, description: 'long description', description_hash: dh })
  const dH = bolt11.decode(invH.invoice)
  check('make_invoice with description_hash: h tag, no d tag', dH.tags.find(t => t.tagName === 'purpose_commit_hash')?.data === dh &&
    !dH.tags.some(t => t.tagName === 'description') && invH.description_hash === dh, dH.tags)

  // --- lookup before paying, pay, notifications, lookup after
  const look0 = await call(op, 'lookupInvoice', { payment_hash: inv.payment_hash })
  check('lookup_invoice before paying: pending, no preimage', look0.state === 'pending' && !look0.preimage, look0)
  const pay = await call(cl, 'payInvoice', { invoice: inv.invoice })
  check('pay_invoice: preimage hashes to payment_hash', sha256hex(pay.preimage) === inv.payment_hash, pay)
  check('pay_invoice: fees_paid 0', pay.fees_paid === 0, pay)
  const nRecv = await opN.wait(n => n.notification?.payment_hash === inv.payment_hash, 5000, 'payment_received')
  check('payment_received notification to the payee', nRecv.notification_type === 'payment_received' &&
    nRecv.notification.type === 'incoming' && nRecv.notification.state === 'settled' && nRecv.notification.amount === 21000 &&
    sha256hex(nRecv.notification.preimage) === inv.payment_hash && nRecv.notification.invoice === inv.invoice &&
    nRecv.notification.settled_at >= inv.created_at, nRecv)
  const nSent = await clN.wait(n => n.notification?.payment_hash === inv.payment_hash, 5000, 'payment_sent')
  check('payment_sent notification to the payer', nSent.notification_type === 'payment_sent' &&
    nSent.notification.type === 'outgoing' && nSent.notification.amount === 21000, nSent)
  const look1 = await call(op, 'lookupInvoice', { payment_hash: inv.payment_hash })
  check('lookup_invoice after paying: settled, preimage hashes to payment_hash', look1.state === 'settled' &&
    sha256hex(look1.preimage) === inv.payment_hash && look1.settled_at >= look1.created_at && look1.amount === 21000, look1)
  const look2 = await call(op, 'lookupInvoice', { invoice: inv.invoice })
  check('lookup_invoice by invoice', look2.payment_hash === inv.payment_hash && look2.state === 'settled', look2)
  const look3 = await call(cl, 'lookupInvoice', { payment_hash: inv.payment_hash })
  check('lookup_invoice by the payer: outgoing, settled', look3.type === 'outgoing' && look3.state === 'settled', look3)
  const bal1op = (await call(op, 'getBalance')).balance
  const bal1cl = (await call(cl, 'getBalance')).balance
  check('get_balance: payee +21000, payer -21000', bal1op - bal0op === 21000 && bal0cl - bal1cl === 21000, [bal0op, bal1op, bal0cl, bal1cl])
  const txs = await call(op, 'listTransactions', {})
  check('list_transactions has the settled invoice', txs.transactions.some(t => t.payment_hash === inv.payment_hash && t.state === 'settled'), txs)

  // raw notification events: author, p tag, kinds
  await new Promise(r => setTimeout(r, 200))
  const raw = rawSeen.filter(e => {
    try {
      const pt = e.kind === 23196 ? nip04.decrypt(opUri.secret, e.pubkey, e.content)
        : nip44.decrypt(e.content, nip44.getConversationKey(Buffer.from(opUri.secret, 'hex'), e.pubkey))
      return JSON.parse(pt).notification.payment_hash === inv.payment_hash
    } catch { return false }
  })
  const kinds = [...new Set(raw.map(e => e.kind))].sort().join(',')
  check(`raw notification events: kinds ${args.nip04 ? '23196' : '23196,23197'}, p tag = client pubkey`,
    kinds === (args.nip04 ? '23196' : '23196,23197') && raw.every(e => e.tags.some(t => t[0] === 'p' && t[1] === opClientPk)), kinds)

  // --- error paths
  await expectError('pay an already paid invoice: PAYMENT_FAILED', cl.payInvoice({ invoice: inv.invoice }), 'PAYMENT_FAILED')
  const foreign = bolt11.sign(bolt11.encode({
    network: { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] },
    millisatoshis: '1000', timestamp: now(),
    tags: [{ tagName: 'payment_hash', data: crypto.randomBytes(32).toString('hex') }, { tagName: 'payment_secret', data: crypto.randomBytes(32).toString('hex') }, { tagName: 'description', data: 'elsewhere' }],
  }), crypto.randomBytes(32).toString('hex')).paymentRequest
  await expectError('pay an invoice this wallet never issued: NOT_FOUND', cl.payInvoice({ invoice: foreign }), 'NOT_FOUND')
  await expectError('pay garbage: OTHER', cl.payInvoice({ invoice: 'lnbcrt1garbage' }), 'OTHER')
  const big = await call(op, 'makeInvoice', { amount: bal1cl + 1, description: 'too much' })
  await expectError('pay more than the balance: INSUFFICIENT_BALANCE', cl.payInvoice({ invoice: big.invoice }), 'INSUFFICIENT_BALANCE')
  await expectError('lookup an unknown payment_hash: NOT_FOUND', op.lookupInvoice({ payment_hash: crypto.randomBytes(32).toString('hex') }), 'NOT_FOUND')
  // NWCClient checks params itself; send what it would refuse to send
  const noAmount = await rawRequest(args.operator, 'make_invoice', { description: 'no amount' }, op.encryptionType)
  check('make_invoice without amount: OTHER', noAmount.error?.code === 'OTHER' && noAmount.result_type === 'make_invoice', noAmount)
  const clientPk = getPublicKey(Buffer.from(parseUri(args.operator).secret, 'hex'))
  check('response event: kind 23195, tags p = client pubkey and e = request', noAmount.event.kind === 23195 &&
    noAmount.event.tags.some(t => t[0] === 'p' && t[1] === clientPk) && noAmount.event.tags.some(t => t[0] === 'e'), noAmount.event.tags)
  check('error response: result null', noAmount.result === null && 'result' in noAmount, noAmount)
  const wait = (expiring.expires_at + 1) * 1000 - Date.now() + 50
  if (wait > 0) await new Promise(r => setTimeout(r, wait))
  const lookE = await call(op, 'lookupInvoice', { payment_hash: expiring.payment_hash })
  check('lookup_invoice after expiry: expired', lookE.state === 'expired' && !lookE.preimage, lookE)
  await expectError('pay an expired invoice: PAYMENT_FAILED', cl.payInvoice({ invoice: expiring.invoice }), 'PAYMENT_FAILED')

  // --- the scheme nobody asked for: a nip04-only wallet refuses nip44 requests (NIP-47)
  if (args.nip04) {
    const body = await rawRequest(args.operator, 'get_balance', {}, 'nip44_v2')
    check('nip44 request to a nip04-only wallet: UNSUPPORTED_ENCRYPTION', body.error?.code === 'UNSUPPORTED_ENCRYPTION' && body.result_type === 'get_balance', body)
  }
}

// The misbehaviour switches: --delay-ms, --fee-msat, --wrong-amount, --duplicate-notifications,
// --offline-after (exactly 8 requests are made before the one that must go unanswered), SIGUSR1.
async function misbehave() {
  const delay = Number(args['delay-ms']), fee = Number(args['fee-msat']), delta = Number(args['wrong-amount-delta'])
  const walletPid = Number(args['wallet-pid'])
  await call(op, 'getInfo') // 1
  await call(cl, 'getInfo') // 2
  const opN = collector()
  unsubs.push(await op.subscribeNotifications(n => opN.push(n)))
  check('notification subscription live', await notificationsLive(op, 23197), 'no EOSE')
  let t = Date.now()
  const bal0 = (await call(cl, 'getBalance')).balance // 3
  check(`--delay-ms ${delay}: answer takes at least that long`, Date.now() - t >= delay, `${Date.now() - t} ms`)
  const inv = await call(op, 'makeInvoice', { amount: 10000, description: 'misbehave' }) // 4
  check('make_invoice reports the true amount while pending', inv.amount === 10000, inv)
  const pay = await call(cl, 'payInvoice', { invoice: inv.invoice }) // 5
  check(`--fee-msat ${fee}: fees_paid`, pay.fees_paid === fee, pay)
  const bal1 = (await call(cl, 'getBalance')).balance // 6
  check('payer balance drops by amount + fee', bal0 - bal1 === 10000 + fee, [bal0, bal1])
  const look = await call(op, 'lookupInvoice', { payment_hash: inv.payment_hash }) // 7
  check(`--wrong-amount: lookup_invoice of the settled invoice reports ${10000 + delta}`, look.state === 'settled' && look.amount === 10000 + delta, look)
  await new Promise(r => setTimeout(r, 600)) // the delayed duplicate (--duplicate-delay-ms 300)
  const mine = opN.seen.filter(n => n.notification?.payment_hash === inv.payment_hash)
  check('--duplicate-notifications: the payee sees the notification 3 times (2 at once + 1 later)', mine.length === 3, `${mine.length}`)
  check('--wrong-amount: notifications report the wrong amount', mine.length && mine.every(n => n.notification.amount === 10000 + delta), mine)
  await call(op, 'getBalance') // 8
  let answered = true
  try { await withTimeout(cl.getBalance(), 1000, 'get_balance') } catch { answered = false } // 9: dropped
  check(`--offline-after ${args['offline-after']}: request 9 goes unanswered`, !answered, 'it was answered')
  process.kill(walletPid, 'SIGUSR1')
  await new Promise(r => setTimeout(r, 200))
  t = Date.now()
  let back
  try { back = await call(cl, 'getBalance') } catch (e) { back = e.message }
  check('SIGUSR1 brings the wallet back online', typeof back?.balance === 'number', back)
}

try {
  await (args.misbehave ? misbehave() : normal())
} catch (e) {
  fail('unexpected error', e && e.stack || String(e))
}
for (const u of unsubs) try { u() } catch {}
try { rawRelay?.close() } catch {}
op.close()
cl.close()
process.exit(failed ? 1 : 0)
