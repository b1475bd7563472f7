import { describe, expect, it } from 'vitest';
import { isUnreachable, reasonOf, ServiceUnreachable, unreachableFrom, waitForService } from '../src/reachability.js';

const refused = (port: number) => Object.assign(new Error(`connect ECONNREFUSED 127.0.0.1:${port}`), { code: 'ECONNREFUSED', port });
const urls = { Postgres: 'postgres://u:pw@db:5433/m', Redis: 'redis://:pw@cache:6380' };

describe('reachability', () => {
  it('finds a socket failure wrapped by the query builder (cause) or by happy eyeballs (AggregateError)', () => {
    const wrapped = Object.assign(new Error('Failed query: select 1'), { cause: refused(5433) });
    expect(isUnreachable(wrapped)).toBe(true);
    expect(reasonOf(wrapped)).toBe('connect ECONNREFUSED 127.0.0.1:5433');
    expect(isUnreachable(new AggregateError([refused(6380)], ''))).toBe(true);
  });

  it('does not call an answering service unreachable (a wrong password is its own error)', () => {
    expect(isUnreachable(Object.assign(new Error('password authentication failed'), { code: '28P01' }))).toBe(false);
    expect(unreachableFrom(new Error('boom'), urls)).toBeNull();
  });

  it('names the service by the failed port and masks the URL password', () => {
    expect(unreachableFrom(refused(6380), urls)!.message).toBe('cannot reach Redis at redis://:***@cache:6380 (connect ECONNREFUSED 127.0.0.1:6380); start it, or point the URL at a running one (README: "Postgres and Redis")');
    expect(unreachableFrom(refused(5433), urls)!.message).toMatch(/^cannot reach Postgres at postgres:\/\/u:\*\*\*@db:5433\/m \(/);
  });

  it('waits while the service is unreachable and gives up at the deadline with ServiceUnreachable', async () => {
    let calls = 0;
    await waitForService('Redis', urls.Redis, 5_000, async () => {
      if (++calls < 3) throw refused(6380);
    });
    expect(calls).toBe(3);
    await expect(waitForService('Redis', urls.Redis, 0, async () => Promise.reject(refused(6380)))).rejects.toBeInstanceOf(ServiceUnreachable);
  });

  it('does not wait on an error that is not about reaching the service', async () => {
    let calls = 0;
    const denied = Object.assign(new Error('role "x" does not exist'), { code: '28000' });
    await expect(waitForService('Postgres', urls.Postgres, 5_000, async () => {
      calls++;
      throw denied;
    })).rejects.toBe(denied);
    expect(calls).toBe(1);
  });
});
