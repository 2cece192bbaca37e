import type { PeriodReport } from '../period-report.js';
import type { RolloutReport } from '../rollout-report.js';
import { COLOURS, clip, type Drawing, type Shape } from './drawing.js';

const WIDTH = 760;

const STEP_COLOUR: Record<string, string> = {
  completed: COLOURS.pass,
  failed: COLOURS.fail,
  started: COLOURS.bar,
  rolled_back: COLOURS.pending,
};

/** A UTC time label: with the date when the span crosses days, with milliseconds when it is short. */
function timeLabel(ms: number, span: number, withDate: boolean): string {
  const iso = new Date(ms).toISOString();
  if (withDate) return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
  return span < 10_000 ? iso.slice(11, 23) : iso.slice(11, 19);
}

const text = (
  x: number,
  y: number,
  value: string,
  options: Partial<Extract<Shape, { kind: 'text' }>> = {},
): Shape => ({ kind: 'text', x, y, text: value, size: 11, fill: COLOURS.ink, anchor: 'start', ...options });

/**
 * The step timeline: one row per step in plan order, a bar from its start to its end on a UTC
 * time axis, coloured by outcome; steps not started are marked as such; rollbacks are shaded
 * bands across all rows. A step still running ends at the latest instant the report knows of,
 * so the picture is deterministic for a given ledger position.
 */
export function stepTimeline(report: RolloutReport): Drawing {
  const steps = report.timeline;
  const left = 190;
  const right = WIDTH - 100;
  const top = 34;
  const row = 24;
  const height = top + Math.max(1, steps.length) * row + 16;
  const instants = [
    report.rollout.startedAt,
    report.rollout.completedAt,
    report.rollout.abortedAt,
    ...steps.flatMap((s) => [s.startedAt, s.endedAt]),
    ...report.rollbacks.flatMap((r) => [r.startedAt, r.completedAt]),
  ]
    .filter((t): t is string => t !== null)
    .map((t) => Date.parse(t));
  const shapes: Shape[] = [];
  const counts = new Map<string, number>();
  for (const s of steps) counts.set(s.status, (counts.get(s.status) ?? 0) + 1);
  const description =
    steps.length === 0
      ? 'The plan names no steps and none was recorded.'
      : `${steps.length} steps: ${[...counts.entries()].map(([status, n]) => `${n} ${status}`).join(', ')}` +
        (report.rollbacks.length ? `; ${report.rollbacks.length} rollback(s) shaded.` : '.');

  if (instants.length === 0 || steps.length === 0) {
    shapes.push(text(left, top + 14, steps.length === 0 ? 'No steps.' : 'No step has started yet.'));
  }
  const t0 = instants.length ? Math.min(...instants) : 0;
  const t1 = instants.length ? Math.max(...instants) : 1;
  const span = Math.max(t1 - t0, 1000);
  const x = (ms: number) => left + ((ms - t0) / span) * (right - left);
  const withDate = new Date(t0).toISOString().slice(0, 10) !== new Date(t0 + span).toISOString().slice(0, 10);

  if (instants.length) {
    for (let i = 0; i <= 4; i++) {
      const ms = t0 + (span * i) / 4;
      shapes.push({
        kind: 'line',
        x1: x(ms),
        y1: top - 6,
        x2: x(ms),
        y2: height - 12,
        stroke: COLOURS.grid,
        width: 1,
      });
      shapes.push(
        text(x(ms), top - 12, timeLabel(ms, span, withDate), {
          size: 9,
          fill: COLOURS.muted,
          anchor: i === 0 ? 'start' : i === 4 ? 'end' : 'middle',
        }),
      );
    }
    for (const rb of report.rollbacks) {
      const a = x(Date.parse(rb.startedAt));
      const b = rb.completedAt ? x(Date.parse(rb.completedAt)) : right;
      shapes.push({
        kind: 'rect',
        x: a,
        y: top - 4,
        w: Math.max(b - a, 4),
        h: height - top - 8,
        fill: COLOURS.rollback,
      });
      shapes.push(text(a + 2, height - 4, 'rollback', { size: 9, fill: COLOURS.fail }));
    }
  }
  steps.forEach((s, i) => {
    const y = top + i * row;
    const label = `${s.order ?? '–'}. ${clip(s.stepId, 26)}${s.planned ? '' : ' (unplanned)'}`;
    shapes.push(text(0, y + 15, label));
    shapes.push(
      text(WIDTH, y + 15, s.attempts > 1 ? `${s.status} ×${s.attempts}` : s.status, {
        anchor: 'end',
        fill: STEP_COLOUR[s.status] ?? COLOURS.muted,
        bold: s.status === 'failed',
      }),
    );
    if (!s.startedAt) {
      shapes.push({
        kind: 'rect',
        x: left,
        y: y + 6,
        w: 10,
        h: 10,
        fill: '#ffffff',
        stroke: COLOURS.notStarted,
      });
      shapes.push(text(left + 16, y + 15, 'not started', { size: 9, fill: COLOURS.muted }));
      return;
    }
    const a = x(Date.parse(s.startedAt));
    const b = x(s.endedAt ? Date.parse(s.endedAt) : t1);
    shapes.push({
      kind: 'rect',
      x: a,
      y: y + 5,
      w: Math.max(b - a, 4),
      h: 13,
      fill: STEP_COLOUR[s.status] ?? COLOURS.bar,
    });
  });
  return { width: WIDTH, height, title: 'Step timeline (UTC)', description, shapes };
}

/**
 * Compliance over time: per day with rollouts planned, a stacked bar of compliant (green) and
 * non-compliant (red) rollouts on the left axis, and the day's compliance rate as a line on the
 * right axis (0–100 %).
 */
export function complianceOverTime(days: PeriodReport['overTime']): Drawing {
  const height = 260;
  const left = 44;
  const right = WIDTH - 48;
  const top = 16;
  const bottom = height - 44;
  const shapes: Shape[] = [];
  const maxCount = Math.max(1, ...days.map((d) => d.rollouts));
  const yCount = (n: number) => bottom - (n / maxCount) * (bottom - top);
  const yRate = (r: number) => bottom - r * (bottom - top);
  for (let i = 0; i <= 4; i++) {
    const y = bottom - (i / 4) * (bottom - top);
    shapes.push({ kind: 'line', x1: left, y1: y, x2: right, y2: y, stroke: COLOURS.grid, width: 1 });
    shapes.push(
      text(left - 6, y + 3, String(Math.round((maxCount * i) / 4)), {
        size: 9,
        anchor: 'end',
        fill: COLOURS.muted,
      }),
    );
    shapes.push(text(right + 6, y + 3, `${i * 25}%`, { size: 9, fill: COLOURS.muted }));
  }
  shapes.push(text(left - 6, height - 4, 'rollouts per day', { size: 9, fill: COLOURS.muted }));
  shapes.push(
    text(right + 40, height - 4, 'compliance rate', { size: 9, fill: COLOURS.muted, anchor: 'end' }),
  );
  if (days.length === 0) {
    shapes.push(
      text((left + right) / 2, (top + bottom) / 2, 'No rollouts in this period.', { anchor: 'middle' }),
    );
  }
  const band = (right - left) / Math.max(1, days.length);
  const barWidth = Math.max(1, Math.min(28, band * 0.7));
  const labelEvery = Math.max(1, Math.ceil(days.length / 10));
  const points: [number, number][] = [];
  days.forEach((d, i) => {
    const cx = left + band * (i + 0.5);
    const failing = d.rollouts - d.compliant;
    shapes.push({
      kind: 'rect',
      x: cx - barWidth / 2,
      y: yCount(d.compliant),
      w: barWidth,
      h: bottom - yCount(d.compliant),
      fill: COLOURS.pass,
    });
    if (failing > 0) {
      shapes.push({
        kind: 'rect',
        x: cx - barWidth / 2,
        y: yCount(d.rollouts),
        w: barWidth,
        h: yCount(d.compliant) - yCount(d.rollouts),
        fill: COLOURS.fail,
      });
    }
    points.push([cx, yRate(d.compliant / d.rollouts)]);
    if (i % labelEvery === 0)
      shapes.push(text(cx, bottom + 14, d.date.slice(5), { size: 9, anchor: 'middle', fill: COLOURS.muted }));
  });
  if (points.length > 1) shapes.push({ kind: 'polyline', points, stroke: COLOURS.ink, width: 2 });
  for (const [cx, cy] of points) shapes.push({ kind: 'circle', cx, cy, r: 3, fill: COLOURS.ink });
  shapes.push({ kind: 'line', x1: left, y1: bottom, x2: right, y2: bottom, stroke: COLOURS.ink, width: 1 });
  const total = days.reduce((n, d) => n + d.rollouts, 0);
  const compliant = days.reduce((n, d) => n + d.compliant, 0);
  const description =
    days.length === 0
      ? 'No rollouts were planned in this period.'
      : `${total} rollouts over ${days.length} days from ${days[0]?.date} to ${days.at(-1)?.date}; ${compliant} compliant. ` +
        days
          .map((d) => `${d.date}: ${d.compliant} of ${d.rollouts}`)
          .slice(0, 60)
          .join('; ');
  return { width: WIDTH, height, title: 'Compliance over time (per day, UTC)', description, shapes };
}

/** The compliance rate per rule (pass / (pass + fail)), one horizontal bar each. */
export function ruleRates(perRule: PeriodReport['perRule']): Drawing {
  const left = 250;
  const right = WIDTH - 120;
  const row = 20;
  const height = perRule.length * row + 8;
  const shapes: Shape[] = [];
  perRule.forEach((r, i) => {
    const y = i * row + 4;
    shapes.push(text(0, y + 12, r.id, { size: 10 }));
    shapes.push({ kind: 'rect', x: left, y: y + 3, w: right - left, h: 11, fill: '#eef1f4' });
    const judged = r.counts.pass + r.counts.fail;
    if (r.complianceRate !== null) {
      const colour =
        r.complianceRate >= 1 ? COLOURS.pass : r.complianceRate >= 0.8 ? COLOURS.pending : COLOURS.fail;
      shapes.push({
        kind: 'rect',
        x: left,
        y: y + 3,
        w: (right - left) * r.complianceRate,
        h: 11,
        fill: colour,
      });
    }
    const label =
      r.complianceRate === null
        ? 'not judged'
        : `${(r.complianceRate * 100).toFixed(1)}% (${r.counts.pass}/${judged})`;
    shapes.push(text(WIDTH, y + 12, label, { size: 10, anchor: 'end' }));
  });
  const description = perRule
    .map(
      (r) =>
        `${r.id}: ${r.complianceRate === null ? 'not judged' : `${(r.complianceRate * 100).toFixed(1)}%`}`,
    )
    .join('; ');
  return { width: WIDTH, height, title: 'Compliance rate per rule', description, shapes };
}

/**
 * Drift of one target per UTC day: drift detected (red) and resolved (green) as paired bars on
 * the left axis, and the drift still open at the end of each day as a line.
 */
export function driftTimeline(
  target: string,
  days: readonly { day: string; detected: number; resolved: number; open: number }[],
): Drawing {
  const height = 200;
  const left = 44;
  const right = WIDTH - 20;
  const top = 16;
  const bottom = height - 40;
  const shapes: Shape[] = [];
  // At least 4, so that the five grid lines fall on whole numbers.
  const max = Math.max(4, ...days.flatMap((d) => [d.detected, d.resolved, d.open]));
  const y = (n: number) => bottom - (n / max) * (bottom - top);
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    shapes.push({ kind: 'line', x1: left, y1: y(v), x2: right, y2: y(v), stroke: COLOURS.grid, width: 1 });
    shapes.push(
      text(left - 6, y(v) + 3, String(Math.round(v)), { size: 9, anchor: 'end', fill: COLOURS.muted }),
    );
  }
  const band = (right - left) / Math.max(1, days.length);
  const bar = Math.max(1, Math.min(12, band * 0.35));
  const labelEvery = Math.max(1, Math.ceil(days.length / 10));
  const points: [number, number][] = [];
  days.forEach((d, i) => {
    const cx = left + band * (i + 0.5);
    if (d.detected)
      shapes.push({
        kind: 'rect',
        x: cx - bar,
        y: y(d.detected),
        w: bar,
        h: bottom - y(d.detected),
        fill: COLOURS.fail,
      });
    if (d.resolved)
      shapes.push({
        kind: 'rect',
        x: cx,
        y: y(d.resolved),
        w: bar,
        h: bottom - y(d.resolved),
        fill: COLOURS.pass,
      });
    points.push([cx, y(d.open)]);
    if (i % labelEvery === 0)
      shapes.push(text(cx, bottom + 14, d.day.slice(5), { size: 9, anchor: 'middle', fill: COLOURS.muted }));
  });
  if (points.length > 1) shapes.push({ kind: 'polyline', points, stroke: COLOURS.pending, width: 2 });
  shapes.push({ kind: 'line', x1: left, y1: bottom, x2: right, y2: bottom, stroke: COLOURS.ink, width: 1 });
  if (days.length === 0)
    shapes.push(text((left + right) / 2, (top + bottom) / 2, 'No snapshots yet.', { anchor: 'middle' }));
  const detected = days.reduce((n, d) => n + d.detected, 0);
  const resolved = days.reduce((n, d) => n + d.resolved, 0);
  const last = days.at(-1);
  const description = last
    ? `${target}: ${detected} drift detected and ${resolved} resolved from ${days[0]?.day} to ${last.day}; ${last.open} open at the end.`
    : `${target}: no drift recorded.`;
  return { width: WIDTH, height, title: `Drift of ${target} per day (UTC)`, description, shapes };
}
