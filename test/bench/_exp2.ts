import { readFileSync } from 'node:fs';
import { exceedsDepth } from '../../src/api/body.js';
import { now } from './stats.js';
const raw = readFileSync('/tmp/body-dump.json');
const text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
const text2 = readFileSync('/tmp/body-dump.json', 'utf8');
for (const [label, t] of [['decoded', text], ['read', text2]] as const) for (let r = 0; r < 3; r++) { const t0 = now(); for (let k = 0; k < 20; k++) exceedsDepth(t, 64); console.log(label, ((now() - t0) / 20).toFixed(3), 'ms'); }
