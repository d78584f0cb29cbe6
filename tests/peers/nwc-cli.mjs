#!/usr/bin/env node
// One NIP-47 request from the command line with @getalby/sdk's NWCClient, for test scripts.
//   node nwc-cli.mjs URI METHOD [PARAMS_JSON]      e.g. pay_invoice '{"invoice":"lnbcrt..."}'
//     stdout: the result as one JSON line; exit 0
//     on a wallet error: {"error":{"code":...,"message":...}} on stdout; exit 1
//   node nwc-cli.mjs URI notifications [COUNT]     print {"listening":true} once subscribed, then
//                                                  COUNT (default 1) notifications as JSON lines
// Options (env): NWC_CLI_TIMEOUT_MS (default 10000) bounds the whole run; exit 3 on timeout.
// METHOD is a NIP-47 method name: get_info get_balance make_invoice pay_invoice lookup_invoice
// list_transactions (or the SDK's camelCase name).
import WebSocket from 'ws'

globalThis.WebSocket = WebSocket
const { NWCClient } = await import('@getalby/sdk/nwc')

const [uri, method, arg] = process.argv.slice(2)
if (!uri || !method) {
  process.stderr.write('usage: node nwc-cli.mjs URI METHOD [PARAMS_JSON] | node nwc-cli.mjs URI notifications [COUNT]\n')
  process.exit(2)
}
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const err = console.error
console.log = console.info = console.debug = console.warn = console.error = () => {} // SDK chatter
const timeoutMs = Number(process.env.NWC_CLI_TIMEOUT_MS || 10000)
setTimeout(() => { err(`nwc-cli: timed out after ${timeoutMs} ms`); process.exit(3) }, timeoutMs).unref()

let client
try {
  client = new NWCClient({ nostrWalletConnectUrl: uri })
} catch (e) {
  err(`nwc-cli: bad URI: ${e.message}`)
  process.exit(2)
}
if (method === 'notifications') {
  let left = Number(arg || 1)
  await client.subscribeNotifications((n) => {
    out(n)
    if (--left <= 0) { client.close(); process.exit(0) }
  })
  // Notifications are ephemeral: say when the subscription is live so a script can pay only then.
  for (let live = false; !live; await new Promise(r => setTimeout(r, 25))) {
    for (const relay of client.pool.relays.values()) {
      for (const sub of relay.openSubs.values()) {
        if (sub.eosed && sub.filters.some(f => f.kinds?.includes(23197) || f.kinds?.includes(23196))) live = true
      }
    }
  }
  out({ listening: true })
} else {
  const fn = method.replace(/_([a-z])/g, (_, c) => c.toUpperCase())
  if (typeof client[fn] !== 'function') { err(`nwc-cli: unknown method ${method}`); process.exit(2) }
  let params
  try { params = arg === undefined ? undefined : JSON.parse(arg) } catch (e) { err(`nwc-cli: PARAMS_JSON: ${e.message}`); process.exit(2) }
  try {
    out(await (params === undefined ? client[fn]() : client[fn](params)))
    client.close()
    process.exit(0)
  } catch (e) {
    out({ error: { code: e.code || 'INTERNAL', message: e.message } })
    client.close()
    process.exit(1)
  }
}
