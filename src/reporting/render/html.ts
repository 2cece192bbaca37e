import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Markup that is already safe to put in a page: only `html` and `raw` make one. */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export type HtmlValue = SafeHtml | string | number | null | undefined | false | readonly HtmlValue[];

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text made safe for element content and quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

function render(value: HtmlValue): string {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

/**
 * A tagged template that escapes every interpolated value unless it is already SafeHtml, so
 * data from the ledger (titles, findings, versions) can never become markup. Arrays are joined;
 * null, undefined and false render as nothing.
 *
 * @example
 * html`<td>${finding}</td>`; // '<td>a &lt;b&gt;</td>' for finding 'a <b>'
 */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    out += render(v) + (strings[i + 1] ?? '');
  });
  return new SafeHtml(out);
}

/** Markup made by our own code (an SVG painter, say), trusted as is. */
export const raw = (markup: string): SafeHtml => new SafeHtml(markup);

/** The top-level `reports/` folder, found from this file in `src/` (tests) or in `dist/src/` (built). */
function reportsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'reports', 'report.css'))) return path.join(dir, 'reports');
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('the reports/ templates folder was not found above the service');
    dir = parent;
  }
}

const cache = new Map<string, string>();

/** A file of `reports/`, read once. */
export function reportAsset(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = readFileSync(path.join(reportsDir(), name), 'utf8');
    cache.set(name, text);
  }
  return text;
}

/**
 * Fills a page template of `reports/`: each `{{slot}}` takes the SafeHtml of that name.
 * A slot the template names but the caller does not give, or the reverse, is a bug, so it throws.
 */
export function fillTemplate(name: string, slots: Record<string, SafeHtml>): string {
  const template = reportAsset(name);
  const used = new Set<string>();
  const page = template.replace(/\{\{(\w+)\}\}/g, (_, slot: string) => {
    const value = slots[slot];
    if (!value) throw new Error(`template ${name} has a slot {{${slot}}} that nothing fills`);
    used.add(slot);
    return value.value;
  });
  const unused = Object.keys(slots).filter((s) => !used.has(s));
  if (unused.length) throw new Error(`template ${name} has no slot for ${unused.join(', ')}`);
  return page;
}
