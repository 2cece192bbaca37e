/**
 * A picture as plain data: shapes in a box of `width` × `height` units, y downwards. Charts are
 * laid out once, as a Drawing, and then painted twice: as inline SVG in HTML (`svg.ts`) and as
 * vector paths in PDF (`pdf-drawing.ts`). So the two formats cannot disagree about a picture.
 */
export interface Drawing {
  width: number;
  height: number;
  /** The picture's accessible name (SVG <title>). */
  title: string;
  /** What the picture shows, in words, for readers that cannot see it (SVG <desc>). */
  description: string;
  shapes: Shape[];
}

export type Shape =
  | { kind: 'rect'; x: number; y: number; w: number; h: number; fill: string; stroke?: string }
  | {
      kind: 'line';
      x1: number;
      y1: number;
      x2: number;
      y2: number;
      stroke: string;
      width: number;
      dash?: number;
    }
  | { kind: 'polyline'; points: readonly (readonly [number, number])[]; stroke: string; width: number }
  | { kind: 'circle'; cx: number; cy: number; r: number; fill: string }
  | {
      kind: 'text';
      x: number;
      y: number;
      text: string;
      size: number;
      fill: string;
      anchor: 'start' | 'middle' | 'end';
      bold?: boolean;
    };

/** Colours: each verdict's, chosen to keep ≥ 4.5:1 contrast against white (WCAG AA). */
export const COLOURS = {
  pass: '#1a7f37',
  fail: '#cf222e',
  pending: '#9a6700',
  'not-applicable': '#5c6670',
  ink: '#1f2328',
  muted: '#59636e',
  grid: '#d1d9e0',
  bar: '#0969da',
  barLight: '#b6d7ff',
  rollback: '#ffd8d3',
  notStarted: '#afb8c1',
} as const;

/** A text of at most `max` characters, with an ellipsis when it had to be cut. */
export function clip(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, Math.max(0, max - 1)).join('')}…`;
}
