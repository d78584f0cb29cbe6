// Interop with the reference JS client (nostr-tools), driving bin/appliance.
// Usage: node tests/interop/nostr_tools.mjs PATH/TO/appliance [N_EVENTS]
// Checks: events signed by nostr-tools verify in C with the same id; events
// signed in C verify in nostr-tools; NIP-44 payloads cross-decrypt both ways;
// NIP-19 strings round-trip both ways. Ends with "N passed, N failed".
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../peers/package.json'));
const { generateSecretKey, getPublicKey, finalizeEvent, verifyEvent, getEventHash } = require('nostr-tools/pure');
const nip44 = require('nostr-tools/nip44');
const nip19 = require('nostr-tools/nip19');
const bytesToHex = (b) => Buffer.from(b).toString('hex');

const BIN = process.argv[2];
const N = Number(process.argv[3] || 1000);
let passed = 0, failed = 0;
const check = (ok, what) => { if (ok) passed++; else { failed++; console.error('FAIL', what); } };
const run = (args, input, env = {}) => spawnSync(BIN, args, { input, env: { ...process.env, ...env }, maxBuffer: 1 << 28 });

// Random text: ASCII, every C0 control except NUL, DEL, Latin, CJK, emoji
// (astral), U+2028/2029, quotes and backslashes.
const pools = [
  () => String.fromCharCode(randomInt(0x20, 0x7f)),
  () => String.fromCharCode(randomInt(1, 0x20)),
  () => '\x7f',
  () => String.fromCharCode(randomInt(0xa0, 0x800)),
  () => String.fromCharCode(randomInt(0x4e00, 0x9fff)),
  () => String.fromCodePoint(randomInt(0x1f300, 0x1faff)),
  () => ['\u2028', '\u2029', '"', '\\', '/', '</script>', '\ufeff', '\uffff'][randomInt(0, 8)],
];
// nostr-tools decodes with a default TextDecoder, which drops a LEADING U+FEFF
// (BOM) from NIP-44 plaintexts and NIP-19 identifiers; C keeps it. Strings
// never start with U+FEFF here so the comparison tests the protocol, not that
// decoder quirk (U+FEFF elsewhere in the text is kept by both).
const randText = (max) => {
  let s = ''; const n = randomInt(0, max);
  for (let i = 0; i < n; i++) s += pools[randomInt(0, pools.length)]();
  return s.startsWith('\ufeff') ? 'b' + s : s;
};
const randTags = () => {
  const tags = []; const n = randomInt(0, 8);
  for (let i = 0; i < n; i++) {
    const t = [['e', 'p', 't', 'x', 'expiration', 'param', 'i'][randomInt(0, 7)]];
    const m = randomInt(0, 5);
    for (let k = 0; k < m; k++) t.push(randomInt(0, 10) === 0 ? randText(2000) : randText(40));
    tags.push(t);
  }
  return tags;
};
const randTemplate = () => ({
  kind: randomInt(0, 65536),
  created_at: randomInt(0, 2 ** 32),
  tags: randTags(),
  content: randomInt(0, 20) === 0 ? randText(20000) : randText(300),
});

// 1. nostr-tools signs, C verifies (streaming --jsonl), ids equal.
{
  const lines = [], ids = [];
  for (let i = 0; i < N; i++) {
    const ev = finalizeEvent(randTemplate(), generateSecretKey());
    ids.push(ev.id);
    lines.push(JSON.stringify(ev));
  }
  const r = run(['event', 'verify', '--jsonl'], lines.join('\n') + '\n');
  const out = r.stdout.toString().trim().split('\n');
  check(r.status === 0, `C verify --jsonl exit ${r.status}: ${r.stderr}`);
  check(out.length === N, `C printed ${out.length} lines for ${N} events`);
  let same = 0;
  out.forEach((l, i) => { if (l === `ok ${ids[i]}`) same++; else if (same + 5 > i) console.error('mismatch', i, l, lines[i].slice(0, 300)); });
  check(same === N, `${same}/${N} nostr-tools events verified in C with the same id`);
  // A tampered copy of each of the first 50 is refused by C.
  const bad = lines.slice(0, 50).map((l) => { const e = JSON.parse(l); e.content += '!'; return JSON.stringify(e); });
  const rb = run(['event', 'verify', '--jsonl'], bad.join('\n') + '\n');
  const outb = rb.stdout.toString().trim().split('\n');
  check(rb.status === 1 && outb.every((l) => l.startsWith('invalid ')), 'tampered events refused by C');
  // NUL inside a string: JSON.stringify writes \u0000; we refuse such events.
  const nul = finalizeEvent({ kind: 1, created_at: 1, tags: [], content: 'a\u0000b' }, generateSecretKey());
  const rn = run(['event', 'verify'], JSON.stringify(nul));
  check(rn.status === 1 && /NUL/.test(rn.stderr.toString()), 'event with NUL content refused');
}

// 2. C signs, nostr-tools verifies and computes the same id.
{
  const sk = generateSecretKey();
  const env = { APPLIANCE_SEC: bytesToHex(sk) };
  let ok = 0;
  const M = N;
  for (let i = 0; i < M; i++) {
    const t = randTemplate();
    const r = run(['event', 'sign'], JSON.stringify(t), env);
    if (r.status !== 0) { console.error('sign failed', r.stderr.toString()); continue; }
    const ev = JSON.parse(r.stdout.toString());
    const good = verifyEvent(ev) && getEventHash(ev) === ev.id && ev.pubkey === getPublicKey(sk) &&
      ev.content === t.content && JSON.stringify(ev.tags) === JSON.stringify(t.tags);
    if (good) ok++; else console.error('C event not verified by nostr-tools', JSON.stringify(ev).slice(0, 300));
  }
  check(ok === M, `${ok}/${M} C-signed events verified by nostr-tools`);
}

// 3. NIP-44 both ways.
{
  let ok1 = 0, ok2 = 0; const K = 40;
  for (let i = 0; i < K; i++) {
    const a = generateSecretKey(), b = generateSecretKey();
    const pa = getPublicKey(a), pb = getPublicKey(b);
    const pt = randomInt(0, 10) === 0 ? 'x'.repeat(randomInt(1, 65536)) : randText(500) || 'x';
    const ckA = nip44.v2.utils.getConversationKey(a, pb);
    const payload = nip44.v2.encrypt(pt, ckA);
    const r = run(['nip44', 'decrypt', '--pub', pa], payload, { APPLIANCE_SEC: bytesToHex(b) });
    if (r.status === 0 && r.stdout.toString() === pt) ok1++; else console.error('C failed to decrypt', r.stderr.toString());
    const r2 = run(['nip44', 'encrypt', '--pub', pb], pt, { APPLIANCE_SEC: bytesToHex(a) });
    const ckB = nip44.v2.utils.getConversationKey(b, pa);
    try { if (r2.status === 0 && nip44.v2.decrypt(r2.stdout.toString().trim(), ckB) === pt) ok2++; else console.error('JS mismatch'); }
    catch (e) { console.error('nostr-tools failed to decrypt C payload', e.message); }
  }
  check(ok1 === K, `${ok1}/${K} nostr-tools NIP-44 payloads decrypted in C`);
  check(ok2 === K, `${ok2}/${K} C NIP-44 payloads decrypted by nostr-tools`);
  // A payload with a flipped MAC byte is refused by C with exit 1.
  const a = generateSecretKey(), b = generateSecretKey();
  const p = nip44.v2.encrypt('hello', nip44.v2.utils.getConversationKey(a, getPublicKey(b)));
  const raw = Buffer.from(p, 'base64'); raw[raw.length - 1] ^= 1;
  const r = run(['nip44', 'decrypt', '--pub', getPublicKey(a)], raw.toString('base64'), { APPLIANCE_SEC: bytesToHex(b) });
  check(r.status === 1, 'tampered NIP-44 payload refused by C');
}

// 4. NIP-19 both ways.
{
  let ok = 0, total = 0;
  for (let i = 0; i < 30; i++) {
    const sk = generateSecretKey(), pk = getPublicKey(sk), id = bytesToHex(randomBytes(32));
    const relays = Array.from({ length: randomInt(0, 3) }, (_, k) => `wss://relay${k}.example.com/${randomInt(0, 999)}`);
    const kind = randomInt(0, 65536), ident = randText(20).replace(/[\u0000]/g, '');
    const cases = [
      [nip19.npubEncode(pk), { type: 'npub', hex: pk }],
      [nip19.noteEncode(id), { type: 'note', hex: id }],
      [nip19.nprofileEncode({ pubkey: pk, relays }), { type: 'nprofile', pubkey: pk, relays }],
      [nip19.neventEncode({ id, relays, author: pk, kind }), { type: 'nevent', id, relays, author: pk, kind }],
      [nip19.naddrEncode({ identifier: ident, pubkey: pk, kind, relays }), { type: 'naddr', identifier: ident, relays, author: pk, kind }],
    ];
    for (const [s, want] of cases) {
      total++;
      const r = run(['nip19', 'decode', s]);
      let got = null; try { got = JSON.parse(r.stdout.toString()); } catch { }
      if (got && JSON.stringify(got) === JSON.stringify(want)) ok++; else console.error('decode mismatch', s, r.stdout.toString(), JSON.stringify(want));
    }
    // C encodes, nostr-tools decodes
    const enc = (args, env) => run(['nip19', 'encode', ...args], '', env).stdout.toString().trim();
    const relayArgs = relays.flatMap((r) => ['--relay', r]);
    total += 5;
    const d1 = nip19.decode(enc(['npub', pk])); ok += d1.type === 'npub' && d1.data === pk;
    const d2 = nip19.decode(enc(['nsec'], { APPLIANCE_SEC: bytesToHex(sk) })); ok += d2.type === 'nsec' && bytesToHex(d2.data) === bytesToHex(sk);
    const d3 = nip19.decode(enc(['nprofile', pk, ...relayArgs])); ok += d3.type === 'nprofile' && d3.data.pubkey === pk && JSON.stringify(d3.data.relays) === JSON.stringify(relays);
    const d4 = nip19.decode(enc(['nevent', id, ...relayArgs, '--author', pk, '--kind', String(kind)])); ok += d4.type === 'nevent' && d4.data.id === id && d4.data.author === pk && d4.data.kind === kind;
    const d5 = nip19.decode(enc(['naddr', '--identifier', ident, '--author', pk, '--kind', String(kind), ...relayArgs])); ok += d5.type === 'naddr' && d5.data.identifier === ident && d5.data.pubkey === pk && d5.data.kind === kind;
  }
  check(ok === total, `${ok}/${total} NIP-19 strings round-tripped between C and nostr-tools`);
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
