#!/usr/bin/env node
// The `memfed` bin: runs the compiled JavaScript in dist/ (npm run build; npm ci builds it).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/workers/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('memfed: not built yet; run `npm run build` (npm ci does it)\n');
  process.exit(1);
}
const { main } = await import(entry.href);
const { redactErrorMessage, secretsOf } = await import(new URL('../dist/src/redact.js', import.meta.url).href);
process.exitCode = await main(process.argv.slice(2)).catch((err) => {
  // No URL password, shared secret or SQL parameter in what a failed command prints.
  process.stderr.write(`memfed: ${redactErrorMessage(String(err?.stack ?? err), secretsOf(process.env))}\n`);
  return 1;
});
