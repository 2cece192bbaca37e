import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import PDFDocument from 'pdfkit';
import type { ReportBasis } from '../rollout-report.js';
import { COLOURS, type Drawing } from './drawing.js';

/**
 * DejaVu, embedded (subset) in every PDF: it covers Latin, Greek, Cyrillic and more, so a
 * product name or finding in any of them prints as written, not as the standard 14 fonts'
 * WinAnsi would. Read once per process.
 */
const FONTS = (() => {
  let files: { body: Buffer; bold: Buffer; mono: Buffer } | undefined;
  return () => {
    if (!files) {
      const dir = path.join(
        path.dirname(createRequire(import.meta.url).resolve('dejavu-fonts-ttf/package.json')),
        'ttf',
      );
      files = {
        body: readFileSync(path.join(dir, 'DejaVuSans.ttf')),
        bold: readFileSync(path.join(dir, 'DejaVuSans-Bold.ttf')),
        mono: readFileSync(path.join(dir, 'DejaVuSansMono.ttf')),
      };
    }
    return files;
  };
})();

export type Cell = string | number | { text: string; colour?: string; bold?: boolean; mono?: boolean };
export interface Column {
  header: string;
  /** A share of the text width; the shares of a table's columns are normalised. */
  width: number;
  align?: 'left' | 'right';
}

const PAD = 3;
const MARGIN = 42;
const FOOTER = 24;

/**
 * A PDF report being written top to bottom: headings, paragraphs, fact lists, tables that break
 * across pages (repeating their header), and vector drawings. Every page carries a footer with
 * the ledger position and chain head the report was built from, and "page i of n".
 */
export class PdfReport {
  private readonly doc: PDFKit.PDFDocument;
  private readonly chunks: Buffer[] = [];
  private readonly done: Promise<Buffer>;

  constructor(
    title: string,
    private readonly basis: ReportBasis,
  ) {
    this.doc = new PDFDocument({
      size: 'A4',
      margins: { top: MARGIN, left: MARGIN, right: MARGIN, bottom: MARGIN + FOOTER },
      bufferPages: true,
      lang: 'en',
      displayTitle: true,
      info: {
        Title: title,
        Author: 'upgrade-ledger',
        Subject: `Built from ledger position ${basis.position}, chain head ${basis.chainHead}`,
        Keywords: `rulebook ${basis.rulebookVersion}`,
        Creator: `upgrade-ledger ${basis.serviceVersion}`,
      },
    });
    const fonts = FONTS();
    this.doc.registerFont('body', fonts.body);
    this.doc.registerFont('bold', fonts.bold);
    this.doc.registerFont('mono', fonts.mono);
    this.doc.font('body').fontSize(10).fillColor(COLOURS.ink);
    this.doc.on('data', (c: Buffer) => this.chunks.push(c));
    this.done = new Promise((resolve, reject) => {
      this.doc.on('end', () => resolve(Buffer.concat(this.chunks)));
      this.doc.on('error', reject);
    });
  }

  private get width(): number {
    return this.doc.page.width - MARGIN * 2;
  }

  private get bottom(): number {
    return this.doc.page.height - MARGIN - FOOTER;
  }

  /** Starts a new page unless `height` more points fit on this one. */
  private ensure(height: number): void {
    if (this.doc.y + height > this.bottom) this.doc.addPage();
  }

  title(text: string, subtitle: string): this {
    this.doc
      .font('bold')
      .fontSize(18)
      .fillColor(COLOURS.ink)
      .text(text, MARGIN, this.doc.y, { width: this.width });
    this.doc.font('body').fontSize(10).fillColor(COLOURS.muted).text(subtitle, { width: this.width });
    this.doc.fillColor(COLOURS.ink).moveDown(0.6);
    return this;
  }

  heading(text: string): this {
    this.ensure(60);
    this.doc.moveDown(0.6);
    this.doc
      .font('bold')
      .fontSize(13)
      .fillColor(COLOURS.ink)
      .text(text, MARGIN, this.doc.y, { width: this.width });
    const y = this.doc.y + 2;
    this.doc
      .moveTo(MARGIN, y)
      .lineTo(MARGIN + this.width, y)
      .lineWidth(0.5)
      .strokeColor(COLOURS.grid)
      .stroke();
    this.doc.y = y + 6;
    this.doc.font('body').fontSize(10);
    return this;
  }

  paragraph(text: string, options: { colour?: string; mono?: boolean; size?: number } = {}): this {
    this.doc
      .font(options.mono ? 'mono' : 'body')
      .fontSize(options.size ?? 10)
      .fillColor(options.colour ?? COLOURS.ink);
    this.ensure(this.doc.heightOfString(text, { width: this.width }));
    this.doc.text(text, MARGIN, this.doc.y, { width: this.width });
    this.doc.font('body').fontSize(10).fillColor(COLOURS.ink).moveDown(0.3);
    return this;
  }

  /** Label–value pairs, the labels in a narrow column. */
  facts(pairs: readonly (readonly [string, Cell])[]): this {
    return this.table(
      [
        { header: '', width: 1 },
        { header: '', width: 3 },
      ],
      pairs.map(([k, v]) => [k, v]),
      {
        header: false,
      },
    );
  }

  /** A table; rows past `limit` are counted in a closing line, not listed. */
  table(
    columns: readonly Column[],
    rows: readonly (readonly Cell[])[],
    options: { header?: boolean; limit?: number; more?: string } = {},
  ): this {
    const doc = this.doc;
    const total = columns.reduce((n, c) => n + c.width, 0);
    const widths = columns.map((c) => (c.width / total) * this.width);
    const style = (cell: Cell | undefined, header = false) => {
      const c = typeof cell === 'object' ? cell : { text: cell === undefined ? '' : String(cell) };
      doc
        .font(header || c.bold ? 'bold' : c.mono ? 'mono' : 'body')
        .fontSize(c.mono ? 7.5 : 9)
        .fillColor(header ? COLOURS.muted : (c.colour ?? COLOURS.ink));
      return c.text;
    };
    const heightOf = (cells: readonly (Cell | undefined)[], header = false) =>
      Math.max(
        ...cells.map((cell, i) =>
          doc.heightOfString(style(cell, header) || ' ', { width: (widths[i] ?? 0) - PAD * 2 }),
        ),
      ) +
      PAD * 2;
    const drawRow = (cells: readonly (Cell | undefined)[], header = false) => {
      const h = heightOf(cells, header);
      const y = doc.y;
      let x = MARGIN;
      cells.forEach((cell, i) => {
        const w = widths[i] ?? 0;
        const text = style(cell, header);
        doc.text(text, x + PAD, y + PAD, { width: w - PAD * 2, align: columns[i]?.align ?? 'left' });
        x += w;
      });
      doc
        .moveTo(MARGIN, y + h)
        .lineTo(MARGIN + this.width, y + h)
        .lineWidth(0.4)
        .strokeColor(COLOURS.grid)
        .stroke();
      doc.x = MARGIN;
      doc.y = y + h;
    };
    const headers = columns.map((c) => c.header);
    const withHeader = options.header ?? true;
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (withHeader) {
      this.ensure(heightOf(headers, true) + heightOf(rows[0] ?? [], false));
      drawRow(headers, true);
    }
    for (const row of rows.slice(0, limit)) {
      const h = heightOf(row);
      if (doc.y + h > this.bottom) {
        doc.addPage();
        if (withHeader) drawRow(headers, true);
      }
      drawRow(row);
    }
    if (rows.length > limit) {
      this.paragraph(
        `… and ${rows.length - limit} more ${options.more ?? 'rows'}: the CSV and JSON formats list every one.`,
        {
          colour: COLOURS.muted,
        },
      );
    }
    doc.font('body').fontSize(10).fillColor(COLOURS.ink);
    doc.moveDown(0.4);
    return this;
  }

  /** A drawing, scaled to the text width, on one page, with its title as a caption. */
  drawing(d: Drawing): this {
    const scale = this.width / d.width;
    this.ensure(d.height * scale + 20);
    const doc = this.doc;
    const x0 = MARGIN;
    const y0 = doc.y;
    doc.save();
    for (const s of d.shapes) {
      switch (s.kind) {
        case 'rect':
          doc.rect(x0 + s.x * scale, y0 + s.y * scale, s.w * scale, s.h * scale);
          if (s.stroke) doc.lineWidth(0.6).fillAndStroke(s.fill, s.stroke);
          else doc.fill(s.fill);
          break;
        case 'line':
          doc.moveTo(x0 + s.x1 * scale, y0 + s.y1 * scale).lineTo(x0 + s.x2 * scale, y0 + s.y2 * scale);
          if (s.dash) doc.dash(s.dash * scale, {});
          doc
            .lineWidth(s.width * scale)
            .strokeColor(s.stroke)
            .stroke();
          if (s.dash) doc.undash();
          break;
        case 'polyline': {
          const [first, ...rest] = s.points;
          if (!first) break;
          doc.moveTo(x0 + first[0] * scale, y0 + first[1] * scale);
          for (const [px, py] of rest) doc.lineTo(x0 + px * scale, y0 + py * scale);
          doc
            .lineWidth(s.width * scale)
            .strokeColor(s.stroke)
            .stroke();
          break;
        }
        case 'circle':
          doc.circle(x0 + s.cx * scale, y0 + s.cy * scale, s.r * scale).fill(s.fill);
          break;
        case 'text': {
          doc
            .font(s.bold ? 'bold' : 'body')
            .fontSize(s.size * scale)
            .fillColor(s.fill);
          const w = doc.widthOfString(s.text);
          const dx = s.anchor === 'middle' ? w / 2 : s.anchor === 'end' ? w : 0;
          doc.text(s.text, x0 + s.x * scale - dx, y0 + s.y * scale, {
            lineBreak: false,
            baseline: 'alphabetic',
          });
          break;
        }
      }
    }
    doc.restore();
    doc.x = x0;
    doc.y = y0 + d.height * scale + 4;
    doc.font('body').fontSize(8).fillColor(COLOURS.muted).text(d.title, MARGIN, doc.y, { width: this.width });
    doc.font('body').fontSize(10).fillColor(COLOURS.ink).moveDown(0.5);
    return this;
  }

  /** Writes the footers and returns the whole file. */
  async finish(): Promise<Buffer> {
    const doc = this.doc;
    const range = doc.bufferedPageRange();
    const head = `${this.basis.chainHead.slice(0, 16)}…`;
    for (let i = range.start; i < range.start + range.count; i++) {
      doc.switchToPage(i);
      const bottomMargin = doc.page.margins.bottom;
      doc.page.margins.bottom = 0; // writing inside the margin must not open a new page
      doc
        .font('body')
        .fontSize(7.5)
        .fillColor(COLOURS.muted)
        .text(
          `Ledger position ${this.basis.position} · chain head ${head} · rulebook ${this.basis.rulebookVersion} · page ${i + 1} of ${range.count}`,
          MARGIN,
          doc.page.height - MARGIN - 10,
          { width: this.width, align: 'center', lineBreak: false },
        );
      doc.page.margins.bottom = bottomMargin;
    }
    doc.end();
    return this.done;
  }
}
