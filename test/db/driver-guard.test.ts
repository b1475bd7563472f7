import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assertDriverGuard } from '../../src/db/driver-guard.js';

describe('postgres.js driver guard', () => {
  it('is applied to the installed driver by the committed patch, and the start-up check sees it', () => {
    expect(() => assertDriverGuard()).not.toThrow();
    const patch = readFileSync(new URL('../../.ci/patches/postgres+3.4.9.patch', import.meta.url), 'utf8');
    // Every build of the driver (ESM, CommonJS, Cloudflare) carries the guard.
    for (const build of ['src', 'cjs/src', 'cf/src']) expect(patch).toContain(`+++ b/node_modules/postgres/${build}/connection.js`);
  });
});
