import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { canonicalJson, canonicalJsonChunks } from '../ledger/hashing.js';
import type { PeriodReport } from './period-report.js';
import { periodReportHtml, rolloutReportHtml } from './render/report-html.js';
import type { ReportFormat } from './reports.service.js';
import { periodReportCsv, rolloutReportCsv } from './rollout-report.csv.js';
import type { RolloutReport } from './rollout-report.js';

/** A report rendered as a file to send: its body (bytes, or a stream of them), media type and name. */
export interface ReportFile {
  /** A stream for a body that can be large (a period report's JSON), sent as it is made. */
  body: string | Buffer | Readable;
  contentType: string;
  filename: string;
  basis: { position: number; chainHead: string };
  format: ReportFormat;
}

const CONTENT_TYPES: Record<ReportFormat, string> = {
  json: 'application/json; charset=utf-8',
  csv: 'text/csv; charset=utf-8; header=present',
  html: 'text/html; charset=utf-8',
  pdf: 'application/pdf',
};

type Renderers = Record<ReportFormat, () => string | Readable | Promise<Buffer>>;

async function file(
  format: ReportFormat,
  basis: ReportFile['basis'],
  basename: string,
  render: Renderers,
): Promise<ReportFile> {
  return {
    body: await render[format](),
    contentType: CONTENT_TYPES[format],
    filename: `${basename}.${format}`,
    basis,
    format,
  };
}

/** A rollout report in one format. JSON is canonical: the same report is the same bytes. */
export function rolloutReportFile(report: RolloutReport, format: ReportFormat): Promise<ReportFile> {
  return file(format, report.basis, `rollout-${report.rollout.id}-at-${report.basis.position}`, {
    json: () => canonicalJson(report),
    csv: () => rolloutReportCsv(report),
    html: () => rolloutReportHtml(report),
    pdf: async () => (await pdfRenderer()).rolloutReportPdf(report),
  });
}

/**
 * A period compliance report in one format. The JSON is streamed, in pieces of the canonical
 * text: over 100,000 rollouts it is about 100 MB, which built whole (and sorted whole on the way)
 * was the larger part of the report's peak memory (docs/benchmarks.md, session 16).
 */
export function periodReportFile(report: PeriodReport, format: ReportFormat): Promise<ReportFile> {
  return file(format, report.basis, `compliance-at-${report.basis.position}`, {
    json: () => Readable.from(canonicalJsonChunks(report)),
    csv: () => periodReportCsv(report),
    html: () => periodReportHtml(report),
    pdf: async () => (await pdfRenderer()).periodReportPdf(report),
  });
}

/**
 * Sends a report file with its headers. The generation time travels in a header, never in the
 * body, so the body stays deterministic. HTML opens in the browser; the other formats download.
 */
export function sendReportFile(reply: FastifyReply, f: ReportFile): ReportFile['body'] {
  void reply
    .header('Content-Type', f.contentType)
    .header(
      'Content-Disposition',
      `${f.format === 'html' ? 'inline' : 'attachment'}; filename="${f.filename}"`,
    )
    .header('X-Generated-At', new Date().toISOString())
    .header('X-Ledger-Position', String(f.basis.position))
    .header('X-Chain-Head', f.basis.chainHead)
    .header('Cache-Control', 'no-store')
    .header('Vary', 'Accept');
  return f.body;
}

/**
 * The PDF renderer, loaded on the first PDF asked for: pdfkit and its font tables take a good
 * part of a second to import, which every start would pay for a format few requests use.
 */
function pdfRenderer(): Promise<typeof import('./render/report-pdf.js')> {
  return import('./render/report-pdf.js');
}
