import { writeFileSync } from 'node:fs';
import { fmt } from './stats.js';

/**
 * One comparison: a memfed figure against a baseline measured in the same run (or, where
 * marked informational, a quoted upstream figure). Ratio = value / baseline.
 */
export interface BenchRow {
  section: string;
  metric: string;
  value: number;
  unit: string;
  baselineLabel: string;
  baseline: number;
  ratio: number;
  /** Which direction is better for `value` (so a reader knows how to read the ratio). */
  better: 'higher' | 'lower';
  informational?: boolean;
}

export interface SectionOutcome {
  section: string;
  ok: boolean;
  seconds: number;
  error?: string;
  notes: string[];
}

export class Report {
  readonly rows: BenchRow[] = [];
  readonly sections: SectionOutcome[] = [];
  #current: SectionOutcome | null = null;

  begin(section: string): void {
    this.#current = { section, ok: true, seconds: 0, notes: [] };
    this.sections.push(this.#current);
    process.stdout.write(`\n== ${section} ==\n`);
  }

  end(seconds: number, error?: unknown): void {
    const cur = this.#current;
    if (!cur) return;
    cur.seconds = seconds;
    if (error !== undefined) {
      cur.ok = false;
      cur.error = error instanceof Error ? (error.stack ?? error.message) : String(error);
      process.stdout.write(`!! ${cur.section} failed: ${cur.error}\n`);
    }
    process.stdout.write(`-- ${cur.section}: ${seconds.toFixed(1)} s\n`);
    this.#current = null;
  }

  /** Records and prints one comparison row. */
  add(row: Omit<BenchRow, 'section' | 'ratio' | 'better'> & { better?: BenchRow['better'] }): BenchRow {
    const full: BenchRow = { better: 'higher', ...row, section: this.#current?.section ?? '?', ratio: row.value / row.baseline };
    this.rows.push(full);
    process.stdout.write(`  ${full.metric}: ${fmt(full.value)} ${full.unit} | ${full.baselineLabel}: ${fmt(full.baseline)} ${full.unit} | ratio ${fmtRatio(full.ratio)}${full.informational ? ' (informational)' : ''}\n`);
    return full;
  }

  /** A line of context (what was measured, stage breakdowns, sanity checks). */
  note(text: string): void {
    this.#current?.notes.push(text);
    process.stdout.write(`  . ${text}\n`);
  }

  summary(): string {
    const head = ['section', 'metric', 'memfed', 'baseline', 'base value', 'ratio', 'better'];
    const body = this.rows.map((r) => [
      r.section,
      r.metric,
      `${fmt(r.value)} ${r.unit}`,
      r.baselineLabel + (r.informational ? ' (info)' : ''),
      `${fmt(r.baseline)} ${r.unit}`,
      fmtRatio(r.ratio),
      r.better,
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
    const failed = this.sections.filter((s) => !s.ok).map((s) => `FAILED: ${s.section}`);
    return [line(head), widths.map((w) => '-'.repeat(w)).join('-|-'), ...body.map(line), ...failed].join('\n');
  }

  json(meta: Record<string, unknown>): string {
    return JSON.stringify({ ...meta, sections: this.sections, rows: this.rows });
  }

  /** BENCH_OUT=path writes the JSON there; otherwise it follows a `BENCH_JSON` line on stdout. */
  emitJson(meta: Record<string, unknown>, outPath: string | undefined): void {
    const text = this.json(meta);
    if (outPath) {
      writeFileSync(outPath, `${text}\n`);
      process.stdout.write(`\nresults written to ${outPath}\n`);
    } else {
      process.stdout.write(`\nBENCH_JSON\n${text}\n`);
    }
  }
}

export function fmtRatio(r: number): string {
  if (!Number.isFinite(r)) return String(r);
  return r >= 100 ? `${r.toFixed(0)}x` : r >= 10 ? `${r.toFixed(1)}x` : r >= 0.1 ? `${r.toFixed(2)}x` : `${r.toPrecision(2)}x`;
}
