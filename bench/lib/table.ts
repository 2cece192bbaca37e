import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** One measured figure beside the raw-Postgres baseline that did the same work in the same run. */
export interface Row {
  figure: string;
  value: number;
  unit: string;
  baseline?: { label: string; value: number };
  /** How the ratio is read: `higher` (throughput) is value / baseline, `lower` (latency, time) is baseline / value. */
  better?: 'higher' | 'lower';
  command: string;
  note?: string;
}

export interface Report {
  name: string;
  startedAt: string;
  finishedAt: string;
  machine: { cpus: number; memoryMb: number; node: string; postgres: string; loadAverage: number[] };
  options: Record<string, string | number | boolean>;
  rows: (Row & { ratio: number | null })[];
  notes: string[];
}

/** value ÷ baseline for throughputs, baseline ÷ value for times: ≥ 1 always means "as good or better". */
export function ratioOf(row: Row): number | null {
  if (!row.baseline || row.baseline.value === 0 || row.value === 0) return null;
  return row.better === 'lower' ? row.baseline.value / row.value : row.value / row.baseline.value;
}

/** A count or a rate, rounded and grouped: 12,345. */
export const count = (n: number): string => Math.round(n).toLocaleString('en-US');

const fmt = (n: number): string =>
  Number.isInteger(n) || Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2);

/** Prints the table and writes it as JSON into bench-output/<name>.json. */
export function publish(
  name: string,
  startedAt: Date,
  postgres: string,
  options: Record<string, string | number | boolean>,
  rows: Row[],
  notes: string[] = [],
): Report {
  const report: Report = {
    name,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      memoryMb: Math.round(os.totalmem() / 1048576),
      node: process.version,
      postgres,
      loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
    },
    options,
    rows: rows.map((r) => ({ ...r, ratio: ratioOf(r) })),
    notes,
  };
  const lines = [
    ['figure', 'value', 'raw-Postgres baseline (same run)', 'ratio'],
    ...report.rows.map((r) => [
      r.figure,
      `${fmt(r.value)} ${r.unit}`,
      r.baseline ? `${fmt(r.baseline.value)} ${r.unit} (${r.baseline.label})` : '—',
      r.ratio === null ? '—' : r.ratio.toFixed(2),
    ]),
  ];
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? '').length)));
  const out = [
    `\n== ${name} (${report.finishedAt}, load average ${report.machine.loadAverage.join(' ')}) ==`,
  ];
  for (const [i, l] of lines.entries()) {
    out.push(l.map((c, j) => c.padEnd(widths[j] ?? 0)).join(' | '));
    if (i === 0) out.push(widths.map((w) => '-'.repeat(w)).join('-|-'));
  }
  // Each distinct command once, with the figures it gave (rows of one load share theirs).
  out.push('', 'commands:');
  const figuresOf = new Map<string, string[]>();
  for (const r of report.rows)
    figuresOf.set(r.command, [...(figuresOf.get(r.command) ?? []), r.figure.trim()]);
  for (const [command, figures] of figuresOf) out.push(`  ${command}`, `    gave: ${figures.join('; ')}`);
  for (const r of report.rows) if (r.note) out.push(`  note (${r.figure}): ${r.note}`);
  for (const n of notes) out.push(`  note: ${n}`);
  out.push(
    '  ratio ≥ 1 means as good as or better than the baseline (throughput: ours/raw; time: raw/ours).',
  );
  console.log(out.join('\n'));
  const dir = path.resolve('bench-output');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify(report, null, 2)}\n`);
  console.log(`written: bench-output/${name}.json`);
  return report;
}

/** Percentile (0–100) of an unsorted list, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}
