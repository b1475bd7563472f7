import { freePort } from './env.js';
import { newKeyDir, startTestNode, type TestNode } from './node.js';

/** N in-process nodes, each peered with all others, sharing one key dir (all enrolled). */
export async function startMesh(n: number, opts: { env?: Record<string, string>; keyDir?: string } = {}): Promise<TestNode[]> {
  const keyDir = opts.keyDir ?? newKeyDir();
  const specs = await Promise.all(Array.from({ length: n }, async (_, i) => ({ id: `node-${String.fromCharCode(97 + i)}`, port: await freePort() })));
  // Keys first, so every node finds every peer's .pub at its first request.
  const { ensureOwnKey } = await import('../../src/federation/keys.js');
  for (const s of specs) await ensureOwnKey(keyDir, s.id);
  const nodes: TestNode[] = [];
  for (const s of specs) {
    nodes.push(
      await startTestNode({
        id: s.id,
        port: s.port,
        keyDir,
        peers: specs.filter((p) => p.id !== s.id).map((p) => ({ id: p.id, url: `http://127.0.0.1:${p.port}` })),
        env: opts.env,
      }),
    );
  }
  return nodes;
}
