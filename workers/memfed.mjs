#!/usr/bin/env node
// The `memfed` bin: runs the compiled JavaScript in dist/ (npm run build; npm ci builds it).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/workers/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('memfed: not built yet; run `npm run build` (npm ci does it)\n');
  process.exit(1);
}
const { main, fatalMessage } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`memfed: ${fatalMessage(err)}\n`);
  return 1;
});
