import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The nearest package.json above this module (src/ when run from source, dist/src/ when built). */
function packageJson(): { name: string; version: string } {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as { name: string; version: string };
    if (path.dirname(dir) === dir) return { name: 'memfed', version: '0.0.0' };
  }
}

export const SERVICE_NAME = 'memfed';
export const VERSION: string = packageJson().version;
