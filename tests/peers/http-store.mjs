#!/usr/bin/env node
// A small HTTP server for the enclave's integration tests, bound to 127.0.0.1: datasets (GET/HEAD of
// files under --dir, with Content-Length), a blob store (PUT/GET /blobs/NAME, in memory) and a few
// misbehaviours:
//   /files/NAME            the file (HEAD and GET)
//   /nolength/NAME         the file, chunked: no Content-Length (HEAD has none either)
//   /lie/NAME              HEAD announces 10 bytes; GET sends the whole file
//   /big                   HEAD/GET announce --big-bytes bytes (GET sends zeros)
//   /redirect/N/NAME       N redirects (302) to /files/NAME
//   /away                  a 302 to http://example.invalid/x (a host no instance allows)
//   /status/CODE           that status
// stdout: `READY http://127.0.0.1:PORT` once listening; then, with --log, one JSON line per request
// ({"method","path","status"}). Exit 0 on SIGTERM/SIGINT.
import { parseArgs } from 'node:util'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'

const a = parseArgs({
  options: {
    dir: { type: 'string', default: '.' },
    port: { type: 'string', default: '0' },
    'big-bytes': { type: 'string', default: String(1 << 30) },
    'max-blob': { type: 'string', default: String(64 << 20) },
    log: { type: 'boolean', default: false },
    'exit-with-pid': { type: 'string' },
  },
}).values
const dir = path.resolve(a.dir)
const blobs = new Map()
const maxBlob = Number(a['max-blob'])

function file(name) {
  const p = path.resolve(dir, name)
  if (!p.startsWith(dir + path.sep)) return null
  try { return fs.readFileSync(p) } catch { return null }
}

const srv = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x')
  const parts = u.pathname.split('/').filter(Boolean)
  const head = req.method === 'HEAD'
  const done = (status, body, headers = {}) => {
    if (a.log) process.stdout.write(JSON.stringify({ method: req.method, path: u.pathname, status }) + '\n')
    res.writeHead(status, headers)
    res.end(head ? undefined : body)
  }
  if (req.method === 'PUT' && parts[0] === 'blobs' && parts[1]) {
    const chunks = []
    let n = 0
    req.on('data', (c) => { n += c.length; if (n <= maxBlob) chunks.push(c) })
    req.on('end', () => {
      if (n > maxBlob) return done(413, 'too large\n')
      blobs.set(parts[1], Buffer.concat(chunks))
      done(201, 'stored\n')
    })
    return
  }
  if (req.method !== 'GET' && !head) return done(405, 'method not allowed\n')
  const kind = parts[0]
  if (kind === 'blobs') {
    const b = blobs.get(parts[1])
    return b ? done(200, b, { 'Content-Length': b.length }) : done(404, 'no such blob\n')
  }
  if (kind === 'files') {
    const b = file(parts.slice(1).join('/'))
    return b ? done(200, b, { 'Content-Length': b.length, 'Content-Type': 'text/csv' }) : done(404, 'not found\n')
  }
  if (kind === 'nolength') {
    const b = file(parts.slice(1).join('/'))
    if (!b) return done(404, 'not found\n')
    if (a.log) process.stdout.write(JSON.stringify({ method: req.method, path: u.pathname, status: 200 }) + '\n')
    res.writeHead(200, { 'Transfer-Encoding': 'chunked' })
    return res.end(head ? undefined : b)
  }
  if (kind === 'lie') {
    const b = file(parts.slice(1).join('/'))
    if (!b) return done(404, 'not found\n')
    if (head) return done(200, null, { 'Content-Length': 10 })
    if (a.log) process.stdout.write(JSON.stringify({ method: req.method, path: u.pathname, status: 200 }) + '\n')
    res.writeHead(200, { 'Transfer-Encoding': 'chunked' })
    return res.end(b)
  }
  if (kind === 'big') {
    const n = Number(a['big-bytes'])
    if (head) return done(200, null, { 'Content-Length': n })
    if (a.log) process.stdout.write(JSON.stringify({ method: req.method, path: u.pathname, status: 200 }) + '\n')
    res.writeHead(200, { 'Content-Length': n })
    const chunk = Buffer.alloc(65536, 0x30)
    let left = n
    const pump = () => {
      while (left > 0) {
        const c = left < chunk.length ? chunk.subarray(0, left) : chunk
        left -= c.length
        if (!res.write(c)) return res.once('drain', pump)
      }
      res.end()
    }
    res.on('close', () => { left = 0 })
    return pump()
  }
  if (kind === 'redirect') {
    const n = Number(parts[1])
    const rest = parts.slice(2).join('/')
    return done(302, '', { Location: n > 1 ? `/redirect/${n - 1}/${rest}` : `/files/${rest}` })
  }
  if (kind === 'away') return done(302, '', { Location: 'http://example.invalid/x' })
  if (kind === 'status') return done(Number(parts[1]) || 500, 'status\n')
  done(404, 'not found\n')
})

srv.on('error', (e) => { process.stderr.write(`http-store: ${e.message}\n`); process.exit(1) })
srv.listen(Number(a.port), '127.0.0.1', () => {
  process.stdout.write(`READY http://127.0.0.1:${srv.address().port}\n`)
})
const stop = () => { srv.close(); process.exit(0) }
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
