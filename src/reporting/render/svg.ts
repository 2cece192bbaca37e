import type { Drawing, Shape } from './drawing.js';
import { escapeHtml, raw, type SafeHtml } from './html.js';

const n = (v: number) => String(Math.round(v * 100) / 100);
const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';

function shape(s: Shape): string {
  switch (s.kind) {
    case 'rect':
      return `<rect x="${n(s.x)}" y="${n(s.y)}" width="${n(s.w)}" height="${n(s.h)}" fill="${s.fill}"${s.stroke ? ` stroke="${s.stroke}"` : ''}/>`;
    case 'line':
      return `<line x1="${n(s.x1)}" y1="${n(s.y1)}" x2="${n(s.x2)}" y2="${n(s.y2)}" stroke="${s.stroke}" stroke-width="${n(s.width)}"${s.dash ? ` stroke-dasharray="${n(s.dash)}"` : ''}/>`;
    case 'polyline':
      return `<polyline points="${s.points.map(([x, y]) => `${n(x)},${n(y)}`).join(' ')}" fill="none" stroke="${s.stroke}" stroke-width="${n(s.width)}"/>`;
    case 'circle':
      return `<circle cx="${n(s.cx)}" cy="${n(s.cy)}" r="${n(s.r)}" fill="${s.fill}"/>`;
    case 'text':
      return `<text x="${n(s.x)}" y="${n(s.y)}" font-size="${n(s.size)}" fill="${s.fill}" text-anchor="${s.anchor}"${s.bold ? ' font-weight="bold"' : ''}>${escapeHtml(s.text)}</text>`;
  }
}

/**
 * The drawing as inline SVG: scalable (viewBox), named and described for screen readers
 * (role="img" with <title> and <desc>), every text escaped.
 */
export function toSvg(d: Drawing, id: string): SafeHtml {
  return raw(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${n(d.width)} ${n(d.height)}" width="100%" role="img" aria-labelledby="${id}-title ${id}-desc" ${FONT}>` +
      `<title id="${id}-title">${escapeHtml(d.title)}</title><desc id="${id}-desc">${escapeHtml(d.description)}</desc>` +
      d.shapes.map(shape).join('') +
      '</svg>',
  );
}
