#!/usr/bin/env node
// postinstall: guards postgres.js 3.4.x against a known crash (porsager/postgres #1154, #1208;
// the guard of open PRs #1168/#1209, plus the timer reset of LanternOps/breeze#3225).
// A write deferred with setImmediate can run after the connection closed and nulled its
// socket; it then throws from the immediate callback, which no caller can catch, and the
// whole process dies (reproduced by test/chaos/pg-terminate.chaos.ts). The guard rejects the
// pending queries with a catchable CONNECTION_CLOSED instead, and teardown resets the write
// timer so a reconnected connection can flush again. Idempotent; fails loudly if the driver
// changed shape (then check whether upstream has fixed it and drop this file).
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const MARK = '/* memfed: nextWrite guard */';
const require = createRequire(import.meta.url);
let root;
try {
  // package.json is not exported; the CommonJS entry is <root>/cjs/src/index.js.
  root = path.resolve(path.dirname(require.resolve('postgres')), '../..');
} catch {
  process.exit(0); // not installed (e.g. a partial install): nothing to patch
}

const replacements = [
  [
    'function nextWrite(fn) {\n    const x = socket.write(chunk, fn)',
    `function nextWrite(fn) {\n    ${MARK}\n    if (socket === null) {\n      nextWriteTimer !== null && clearImmediate(nextWriteTimer)\n      chunk = nextWriteTimer = null\n      error(Errors.connection('CONNECTION_CLOSED', options))\n      return false\n    }\n    const x = socket.write(chunk, fn)`,
  ],
  ['    clearImmediate(nextWriteTimer)\n    if (socket) {', '    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n    if (socket) {'],
  ['    clearImmediate(nextWriteTimer)\n    socket.removeListener', '    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n    socket.removeListener'],
];

for (const rel of ['src/connection.js', 'cjs/src/connection.js', 'cf/src/connection.js']) {
  const file = path.join(root, rel);
  if (!existsSync(file)) continue;
  let text = readFileSync(file, 'utf8');
  if (text.includes(MARK)) continue;
  for (const [from, to] of replacements) {
    if (!text.includes(from)) {
      process.stderr.write(`postgres-driver-patch: ${rel} does not contain the expected code; not patched\n`);
      process.exit(1);
    }
    text = text.replace(from, to);
  }
  writeFileSync(file, text);
}
