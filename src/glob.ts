/**
 * Namespace globs (governance policy): `*` matches any run of characters within one
 * segment (no `/`), `**` any run across segments (`/` and newlines included); every
 * other character is literal. A whole namespace must match.
 *
 * Matched by simulating the pattern's automaton over the input (a set of pattern
 * positions advanced one character at a time), never by backtracking: a test costs at
 * most (input length + 1) × (pattern tokens + 1) steps whatever the pattern, so a glob
 * such as `*a*a*a*a*b` cannot stall the event loop the way a backtracking RegExp does.
 */

const LITERAL = 0;
const STAR = 1; // within one segment
const GLOBSTAR = 2; // across segments

const SLASH = 0x2f;

export interface NamespaceGlob {
  /** The glob as written. */
  readonly source: string;
  /** Whether the whole of `namespace` matches; `stats.steps` counts the work done. */
  test(namespace: string, stats?: { steps: number }): boolean;
}

interface Token {
  kind: typeof LITERAL | typeof STAR | typeof GLOBSTAR;
  code: number;
}

/**
 * Tokens of a glob. A run of two or more stars is one GLOBSTAR (it holds a `**`, and
 * `**` absorbs any `*` beside it), a lone star is a STAR; so the automaton stays small.
 */
function tokenize(glob: string): Token[] {
  const out: Token[] = [];
  for (let i = 0; i < glob.length; ) {
    if (glob.charCodeAt(i) !== 0x2a /* * */) {
      out.push({ kind: LITERAL, code: glob.charCodeAt(i) });
      i++;
      continue;
    }
    let j = i;
    while (j < glob.length && glob.charCodeAt(j) === 0x2a) j++;
    out.push({ kind: j - i >= 2 ? GLOBSTAR : STAR, code: 0 });
    i = j;
  }
  return out;
}

export function compileGlob(glob: string): NamespaceGlob {
  const tokens = tokenize(glob);
  const m = tokens.length;
  // Two reusable state sets: position k is live when tokens[0..k) matched the input so far.
  let cur = new Uint8Array(m + 1);
  let next = new Uint8Array(m + 1);
  // A star token may match nothing: a live position before it makes the one after it live.
  const close = (set: Uint8Array) => {
    for (let k = 0; k < m; k++) if (set[k] && tokens[k]!.kind !== LITERAL) set[k + 1] = 1;
  };
  return {
    source: glob,
    test(namespace: string, stats?: { steps: number }): boolean {
      cur.fill(0);
      cur[0] = 1;
      close(cur);
      let steps = m + 1;
      for (let i = 0; i < namespace.length; i++) {
        const ch = namespace.charCodeAt(i);
        next.fill(0);
        let live = false;
        for (let k = 0; k < m; k++) {
          if (!cur[k]) continue;
          const t = tokens[k]!;
          if (t.kind === LITERAL) {
            if (t.code === ch) {
              next[k + 1] = 1;
              live = true;
            }
          } else if (t.kind === GLOBSTAR || ch !== SLASH) {
            next[k] = 1;
            live = true;
          }
        }
        steps += 2 * (m + 1);
        if (!live) {
          if (stats) stats.steps += steps;
          return false;
        }
        close(next);
        [cur, next] = [next, cur];
      }
      if (stats) stats.steps += steps;
      return cur[m] === 1;
    },
  };
}
