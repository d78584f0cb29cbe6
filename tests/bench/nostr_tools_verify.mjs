// Baseline: nostr-tools verifyEvent (pure JS, @noble/curves) over the first
// LIMIT lines of a JSONL file; each line is parsed fresh (verifyEvent caches
// its result on the object). Prints "nostr_tools_verify_per_s X".
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../peers/package.json'));
const { verifyEvent } = require('nostr-tools/pure');
const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).slice(0, Number(process.argv[3] || 1e9));
const c0 = process.cpuUsage(); // CPU time, not wall time: robust on a shared machine
let ok = 0;
for (const l of lines) if (verifyEvent(JSON.parse(l))) ok++;
const c1 = process.cpuUsage(c0);
const dt = (c1.user + c1.system) / 1e6;
console.log(`nostr_tools_verify_per_s ${(lines.length / dt).toFixed(0)} (${ok}/${lines.length} valid, ${dt.toFixed(2)} s)`);
process.exit(ok === lines.length ? 0 : 1);
