// The HTML report of a run (`trimpi report DIR`, and the end of `trimpi run`): one self-contained
// page, plots rendered to inline SVG by vega + vega-lite in Node.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ReportOptions, renderReport } from './html.js';
import { loadRun } from './load.js';

export * from './load.js';
export * from './plots.js';
export * from './paper.js';
export { renderReport, highlightSteps, esc } from './html.js';
export type { ReportOptions } from './html.js';

/** Writes DIR/report.html for the run directory DIR (runs/NAME) and returns its path. */
export async function writeReport(dir: string, o: ReportOptions = {}): Promise<string> {
  const html = await renderReport(loadRun(dir), o);
  const path = join(dir, 'report.html');
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, html);
  renameSync(tmp, path);
  return path;
}
