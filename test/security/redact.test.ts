import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConfigError, configSecrets, describeConfig, loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { redactErrorMessage, redactText, serializeError } from '../../src/redact.js';

function problemsOf(env: Record<string, string>): string {
  try {
    loadConfig({ NODE_ID: 'node-a', ...env });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return `${(err as ConfigError).message}\n${(err as ConfigError).problems.join('\n')}`;
  }
  throw new Error('expected a ConfigError');
}

/** A logger whose lines land in an array (JSON-parsed). */
function capturingLogger(secrets: string[] = []) {
  const lines: string[] = [];
  const destination = new Writable({ write: (chunk, _enc, cb) => (lines.push(String(chunk)), cb()) });
  return { logger: createLogger('debug', {}, { secrets, destination }), text: () => lines.join('') };
}

describe('config errors never quote a password or shared secret', () => {
  it('an invalid DATABASE_URL or REDIS_URL is reported without its password', () => {
    const text = problemsOf({ DATABASE_URL: 'postgres://app:hunter2-db@db:notaport/x', REDIS_URL: 'redis://:s3cret-redis@r:99999' });
    expect(text).toContain('DATABASE_URL: not a URL');
    expect(text).toContain('REDIS_URL: not a URL');
    expect(text).toContain('postgres://app:***@db:notaport/x');
    expect(text).not.toContain('hunter2-db');
    expect(text).not.toContain('s3cret-redis');
  });

  it('a shared secret quoted by any problem is masked too', () => {
    // An operator pasted the API key into the wrong variable as well.
    const text = problemsOf({ API_KEY: 'k3y-value-123', HTTP_PORT: 'k3y-value-123' });
    expect(text).toContain('HTTP_PORT: expected an integer');
    expect(text).not.toContain('k3y-value-123');
  });

  it('describeConfig shows neither URL passwords nor API_KEY/ADMIN_TOKEN', () => {
    const c = loadConfig({ NODE_ID: 'node-a', DATABASE_URL: 'postgres://u:hunter2@db/x', API_KEY: 'api-secret-1', ADMIN_TOKEN: 'admin-secret-1' });
    const text = JSON.stringify(describeConfig(c));
    for (const s of ['hunter2', 'api-secret-1', 'admin-secret-1']) expect(text).not.toContain(s);
  });
});

describe('redactText', () => {
  it('masks the password of every URL in free text, keeping user and host', () => {
    expect(redactText('connect postgres://me:p%40ss@db:5432/x failed; retry redis://:pw@r:6379')).toBe('connect postgres://me:***@db:5432/x failed; retry redis://:***@r:6379');
    expect(redactText('http://host:8080/path?x=1')).toBe('http://host:8080/path?x=1');
  });
});

describe('logged errors carry no SQL parameters and no secrets', () => {
  // The shape drizzle gives a failed query (DrizzleQueryError): SQL and parameters in the message, fields and cause.
  const failedQuery = () => {
    const cause = Object.assign(new Error('relation "audit_outbox" does not exist'), { code: '42P01', severity: 'ERROR', detail: 'Key (event_id)=(param-secret-7) already exists.', query: 'insert into "audit_outbox" ("event_id") values ($1)', parameters: ['param-secret-7'] });
    return Object.assign(new Error('Failed query: insert into "audit_outbox" ("event_id", "event") values ($1, $2)\nparams: param-secret-7,{"token":"param-secret-8"}'), { query: 'insert into "audit_outbox" ("event_id", "event") values ($1, $2)', params: ['param-secret-7', '{"token":"param-secret-8"}'], cause });
  };

  it('a failed query is logged with a fingerprint of its SQL, its code, and none of its values', () => {
    const { logger, text } = capturingLogger();
    logger.warn({ err: failedQuery() }, 'audit outbox write failed; retrying');
    const out = text();
    expect(out).not.toContain('param-secret');
    expect(out).not.toContain('params:');
    expect(out).toContain('query failed: insert into \\"audit_outbox\\"');
    const line = JSON.parse(out) as { err: { message: string; cause: { code: string; message: string } } };
    expect(line.err.cause).toMatchObject({ code: '42P01', message: 'relation "audit_outbox" does not exist' });
  });

  it('an error message or stack quoting a URL password or a configured secret is masked', () => {
    const secrets = configSecrets(loadConfig({ NODE_ID: 'node-a', API_KEY: 'api-secret-1', DATABASE_URL: 'postgres://u:hunter2@db/x' }));
    const { logger, text } = capturingLogger(secrets);
    logger.error({ err: new Error('cannot reach postgres://u:hunter2@db/x with key api-secret-1') }, 'boom');
    logger.error({ err: 'string error api-secret-1' }, 'boom');
    logger.info({ headers: { 'x-api-key': 'api-secret-1', authorization: 'Bearer api-secret-1' }, apiKey: 'api-secret-1' }, 'request');
    expect(text()).not.toContain('hunter2');
    expect(text()).not.toContain('api-secret-1');
  });

  it('serializeError and redactErrorMessage agree on the stored form of a failed query', () => {
    const e = failedQuery();
    expect(redactErrorMessage(`[transient] ${e.message}`)).toMatch(/^\[transient\] query failed: insert into "audit_outbox" \("event_id", … #[0-9a-f]{12}$/);
    expect(JSON.stringify(serializeError(e))).not.toContain('param-secret');
  });
});
