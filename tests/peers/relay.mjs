#!/usr/bin/env node
// A real Nostr relay for the integration tests: @nostr-relay/core + event-repository-sqlite
// (better-sqlite3) + validator (zod), wired to `ws` over http(s) on 127.0.0.1 only.
//
// stdout: exactly one line `READY ws://127.0.0.1:PORT` (or wss://) once listening; nothing else.
// stderr: logs. Exit 0 on SIGTERM/SIGINT, 1 on a startup error (reason on stderr), 2 on usage.
// Flags: see usage() below and tests/peers/README.md.
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'

const require = createRequire(import.meta.url)
const { NostrRelay } = require('@nostr-relay/core')
const { EventUtils, LogLevel } = require('@nostr-relay/common')
const { EventRepositorySqlite } = require('@nostr-relay/event-repository-sqlite')
const { Validator } = require('@nostr-relay/validator')
const { WebSocketServer } = require('ws')

const VERSION = require('@nostr-relay/core/package.json').version

function usage(code) {
  const text = `usage: node relay.mjs [options]
  --port N               TCP port on 127.0.0.1 (default 0 = a free port chosen by the kernel)
  --host ADDR            listen address, must be loopback (default 127.0.0.1)
  --db PATH              sqlite file, or :memory: (default :memory:)
  --tls-cert FILE        PEM certificate (chain) -> serve wss:// (needs --tls-key)
  --tls-key FILE         PEM private key
  --auth                 NIP-42: send ["AUTH",challenge] on connect; accept kind-22242 AUTH events
  --auth-hostname H      host the AUTH event's relay tag must name (default 127.0.0.1; implies --auth)
  --auth-required        refuse EVENT ("auth-required:" OK false) and REQ (CLOSED "auth-required:")
                         until the connection has authenticated (implies --auth)
  --nip70                reject protected events (tag ["-"]) unless authenticated as their author
  --strict-live-filters  also apply #tag filters to live (post-EOSE) events; the library alone
                         matches live events on ids/authors/kinds/since/until only
  --max-content N        max content length in chars (default 102400)
  --max-tag-value N      max length of a tag's value (tag[1]) in chars (default 1024)
  --max-tags N           max number of tags per event (default 2000)
  --max-subid N          max subscription id length (default 128)
  --max-kinds N          max kinds per filter (default 20)
  --max-subs N           max subscriptions per connection; the oldest is dropped silently (default 20)
  --max-payload N        max websocket frame in bytes (default 4194304)
  --default-limit N      REQ limit when a filter has none (default 100); a larger limit is capped at 10x
  --filter-cache-ms N    library cache of REQ results per filter (default 0 = off; library default 1000)
  --event-cache-ms N     library cache of EVENT results per event id (default 600000 = library default)
  --name S               NIP-11 name (default local-test-relay)
  --log-level L          debug|info|warn|error (default warn)
  --log-messages         log every message in and out to stderr
  --exit-with-pid PID    exit when process PID is gone (checked every 500 ms)
  -h, --help`
  ;(code ? process.stderr : process.stdout).write(text + '\n')
  process.exit(code)
}

let args
try {
  args = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      db: { type: 'string', default: ':memory:' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      auth: { type: 'boolean', default: false },
      'auth-hostname': { type: 'string' },
      'auth-required': { type: 'boolean', default: false },
      nip70: { type: 'boolean', default: false },
      'strict-live-filters': { type: 'boolean', default: false },
      'max-content': { type: 'string', default: '102400' },
      'max-tag-value': { type: 'string', default: '1024' },
      'max-tags': { type: 'string', default: '2000' },
      'max-subid': { type: 'string', default: '128' },
      'max-kinds': { type: 'string', default: '20' },
      'max-subs': { type: 'string', default: '20' },
      'max-payload': { type: 'string', default: String(4 * 1024 * 1024) },
      'default-limit': { type: 'string', default: '100' },
      'filter-cache-ms': { type: 'string', default: '0' },
      'event-cache-ms': { type: 'string', default: '600000' },
      name: { type: 'string', default: 'local-test-relay' },
      'log-level': { type: 'string', default: 'warn' },
      'log-messages': { type: 'boolean', default: false },
      'exit-with-pid': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }).values
} catch (e) {
  process.stderr.write(`relay: ${e.message} (see --help)\n`)
  process.exit(2)
}
if (args.help) usage(0)

function die(msg, code = 1) {
  process.stderr.write(`relay: ${msg}\n`)
  process.exit(code)
}
function intArg(name, min = 0) {
  const s = args[name]
  if (!/^\d+$/.test(s)) die(`--${name} must be a non-negative integer, got '${s}'`, 2)
  const n = Number(s)
  if (!Number.isSafeInteger(n) || n < min) die(`--${name} must be >= ${min}, got '${s}'`, 2)
  return n
}

const port = intArg('port')
if (port > 65535) die('--port must be <= 65535', 2)
if (!/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(args.host)) die(`--host must be a loopback address, got '${args.host}'`, 2)
if (!!args['tls-cert'] !== !!args['tls-key']) die('--tls-cert and --tls-key go together', 2)
const authRequired = args['auth-required']
const authHostname = args['auth-hostname'] || ((args.auth || authRequired) ? '127.0.0.1' : undefined)
const limits = {
  maxContentLength: intArg('max-content', 1),
  maxTagValueLength: intArg('max-tag-value', 1),
  maxNumberOfTags: intArg('max-tags', 1),
  maxSubscriptionIdLength: intArg('max-subid', 1),
  maxFilterKindsLength: intArg('max-kinds', 1),
}
const maxSubs = intArg('max-subs', 1)
const maxPayload = intArg('max-payload', 1024)
const defaultLimit = intArg('default-limit', 1)
const levels = { debug: LogLevel.DEBUG, info: LogLevel.INFO, warn: LogLevel.WARN, error: LogLevel.ERROR }
if (!(args['log-level'] in levels)) die(`--log-level must be one of ${Object.keys(levels).join('|')}`, 2)
const logLevel = levels[args['log-level']]
const logMessages = args['log-messages']
const tls = !!args['tls-cert']
const scheme = tls ? 'wss' : 'ws'

// Everything but the READY line goes to stderr.
const ts = () => new Date().toISOString()
const logger = {
  level: logLevel,
  setLogLevel(l) { this.level = l },
  debug(...a) { if (this.level <= LogLevel.DEBUG) console.error(ts(), 'debug', ...a) },
  info(...a) { if (this.level <= LogLevel.INFO) console.error(ts(), 'info', ...a) },
  warn(...a) { if (this.level <= LogLevel.WARN) console.error(ts(), 'warn', ...a) },
  error(...a) { if (this.level <= LogLevel.ERROR) console.error(ts(), 'error', ...a) },
}
console.log = console.info = console.debug = (...a) => console.error(...a)

if (args['strict-live-filters']) {
  // NIP-01 says a filter's #x conditions apply to every event sent on the subscription; the
  // library's live broadcast (SubscriptionService -> EventUtils.isMatchingFilter) ignores them.
  const base = EventUtils.isMatchingFilter.bind(EventUtils)
  EventUtils.isMatchingFilter = (event, filter) => {
    if (!base(event, filter)) return false
    for (const [k, values] of Object.entries(filter)) {
      if (k.length !== 2 || k[0] !== '#' || !Array.isArray(values)) continue
      if (!event.tags.some(t => t[0] === k[1] && values.includes(t[1]))) return false
    }
    return true
  }
}

let tlsOpts
if (tls) {
  try {
    tlsOpts = { cert: fs.readFileSync(args['tls-cert']), key: fs.readFileSync(args['tls-key']) }
  } catch (e) {
    die(`cannot read TLS files: ${e.message}`)
  }
}

let repo
try {
  repo = new EventRepositorySqlite(args.db, { defaultLimit })
  await repo.init()
} catch (e) {
  die(`cannot open sqlite database '${args.db}': ${e.message}`)
}

const relayOpts = {
  logger,
  logLevel,
  maxSubscriptionsPerClient: maxSubs,
  filterResultCacheTtl: intArg('filter-cache-ms'),
  eventHandlingResultCacheTtl: intArg('event-cache-ms'),
}
if (authHostname) relayOpts.hostname = authHostname
const relay = new NostrRelay(repo, relayOpts)

// Access rules the library does not have: NIP-42 auth-required and NIP-70 protected events.
if (authRequired || args.nip70) {
  relay.register({
    async handleMessage(ctx, message, next) {
      const type = message[0]
      if (authRequired && !ctx.pubkey && type === 'EVENT') {
        ctx.sendMessage(['OK', message[1].id, false, 'auth-required: authenticate with NIP-42 first'])
        return { messageType: 'EVENT', success: false }
      }
      if (authRequired && !ctx.pubkey && type === 'REQ') {
        ctx.sendMessage(['CLOSED', message[1], 'auth-required: authenticate with NIP-42 first'])
        return { messageType: 'REQ', events: [] }
      }
      if (args.nip70 && type === 'EVENT' && message[1].tags.some(t => t.length === 1 && t[0] === '-')) {
        if (!ctx.pubkey) {
          ctx.sendMessage(['OK', message[1].id, false, 'auth-required: this event may only be published by its author'])
          if (authHostname) ctx.sendMessage(['AUTH', ctx.id])
          return { messageType: 'EVENT', success: false }
        }
        if (ctx.pubkey !== message[1].pubkey) {
          ctx.sendMessage(['OK', message[1].id, false, 'restricted: this event may only be published by its author'])
          return { messageType: 'EVENT', success: false }
        }
      }
      return next()
    },
  })
}

const validator = new Validator(limits)
const nip11 = {
  name: args.name,
  description: '@nostr-relay/core test relay (tests/peers/relay.mjs)',
  software: 'https://github.com/CodyTseng/nostr-relay',
  version: VERSION,
  supported_nips: [1, 9, 11, 40, ...(authHostname ? [42] : []), ...(args.nip70 ? [70] : [])],
  limitation: {
    max_message_length: maxPayload,
    max_subscriptions: maxSubs,
    max_limit: defaultLimit * 10,
    default_limit: defaultLimit,
    max_subid_length: limits.maxSubscriptionIdLength,
    max_event_tags: limits.maxNumberOfTags,
    max_content_length: limits.maxContentLength,
    auth_required: authRequired,
    restricted_writes: authRequired,
  },
}

const onHttp = (req, res) => {
  if ((req.headers.accept || '').includes('application/nostr+json')) {
    res.writeHead(200, {
      'Content-Type': 'application/nostr+json',
      'Access-Control-Allow-Origin': '*',
      'Access-Control-Allow-Headers': '*',
      'Access-Control-Allow-Methods': 'GET',
    })
    res.end(JSON.stringify(nip11))
  } else {
    res.writeHead(200, { 'Content-Type': 'text/plain' })
    res.end('nostr relay; connect with a websocket\n')
  }
}
const srv = tls ? https.createServer(tlsOpts, onHttp) : http.createServer(onHttp)
const wss = new WebSocketServer({ server: srv, maxPayload })
let connSeq = 0

wss.on('connection', (ws, req) => {
  const cid = ++connSeq
  if (logMessages) {
    console.error(`${ts()} conn#${cid} open from ${req.socket.remoteAddress}:${req.socket.remotePort}`)
    const send = ws.send.bind(ws)
    ws.send = (data, ...rest) => {
      console.error(`${ts()} conn#${cid} -> ${String(data).slice(0, 2000)}`)
      return send(data, ...rest)
    }
  }
  relay.handleConnection(ws, req.socket.remoteAddress)
  // Handle a connection's messages one at a time, in the order they came (as most relays do):
  // an EVENT is stored before a REQ sent after it on the same connection is answered.
  let chain = Promise.resolve()
  ws.on('message', (data) => {
    if (logMessages) console.error(`${ts()} conn#${cid} <- ${String(data).slice(0, 2000)}`)
    chain = chain.then(async () => {
      let msg
      try {
        msg = await validator.validateIncomingMessage(data)
      } catch (e) {
        ws.send(JSON.stringify(['NOTICE', String(e && e.message || e)]))
        return
      }
      try {
        await relay.handleMessage(ws, msg)
      } catch (e) {
        logger.error('handleMessage failed', e)
        ws.send(JSON.stringify(['NOTICE', 'error: ' + (e && e.message)]))
      }
    })
  })
  ws.on('close', () => {
    if (logMessages) console.error(`${ts()} conn#${cid} closed`)
    relay.handleDisconnect(ws)
  })
  ws.on('error', (e) => logger.warn(`conn#${cid} websocket error: ${e.message}`))
})
wss.on('error', () => {}) // the http(s) server's own 'error' handler reports listen errors

srv.on('error', (e) => die(`cannot listen on ${args.host}:${port}: ${e.message}`))
srv.listen(port, args.host, () => {
  const a = srv.address()
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address
  process.stdout.write(`READY ${scheme}://${host}:${a.port}\n`)
  logger.info(`listening ${scheme}://${host}:${a.port} db=${args.db}${authHostname ? ' nip42=' + authHostname : ''}`)
})

let stopping = false
async function stop(why) {
  if (stopping) return
  stopping = true
  logger.info(`stopping (${why})`)
  setTimeout(() => process.exit(0), 2000).unref()
  for (const c of wss.clients) c.terminate()
  wss.close()
  srv.close()
  try { await relay.destroy() } catch {}
  try { await repo.destroy() } catch {}
  process.exit(0)
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
process.on('SIGHUP', () => stop('SIGHUP'))

if (args['exit-with-pid']) {
  const ppid = Number(args['exit-with-pid'])
  if (!Number.isSafeInteger(ppid) || ppid <= 0) die('--exit-with-pid needs a pid', 2)
  setInterval(() => {
    let gone = false
    try { process.kill(ppid, 0) } catch (e) { gone = e.code === 'ESRCH' }
    try { gone ||= /^ Z /.test(fs.readFileSync(`/proc/${ppid}/stat`, 'latin1').replace(/^.*\)/, '')) } catch {} // zombie
    if (gone) stop(`pid ${ppid} is gone`)
  }, 500).unref()
}
