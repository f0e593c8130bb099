#!/usr/bin/env node
// `npm run check:report [-- RUN_DIR]`: opens a run's report.html in headless Chromium (the system
// browser, driven by puppeteer-core) with the network cut off, checks that it renders without a
// request, a console error or a broken image, and saves a full-page screenshot beside it
// (RUN_DIR/report.png). Without RUN_DIR it first makes a tiny run (random tiny base, tiny scale) in
// a temporary directory. Not part of npm test: it needs Chromium (Debian: apt-get install chromium).
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(here, '../dist/src/index.js');

function browserPath() {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'].filter(Boolean);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    console.error('check:report: no Chromium found (set CHROMIUM_PATH, or on Debian: apt-get install chromium)');
    process.exit(2);
  }
  return found;
}

async function tinyRun() {
  const t = await import(pathToFileURL(dist).href);
  const { suiteAfterRun } = await import(pathToFileURL(resolve(here, '../dist/src/trimpi/suite.js')).href);
  await t.init();
  const work = mkdtempSync(join(tmpdir(), 'trimpi-check-report-'));
  const tok = t.data.defaultTokenizer();
  const base = join(work, 'base');
  const model = new t.nn.VisionLanguageModel(t.nn.preset('tiny', tok.size, { maxPositions: 2048 }).model); // the tool policy in context needs > 1024
  await t.nn.saveCheckpoint(base, model);
  model.dispose();
  const out = join(work, 'run');
  const log = (l) => console.error(l);
  for (const setting of ['clevr-t', 'tool']) {
    await t.pipeline.runPipeline({
      setting, depth: 2, seed: 0, methods: ['in-context', 'direct-sft', 'cot-sft', 'trimpi-poro-grpo'], scale: 'tiny', base, out,
      overrides: { rl: { ...t.pipeline.SCALES.tiny.rl, steps: 3 } },
    }, tok, { log, progress: null, suite: false });
    await suiteAfterRun(out, join(out, setting === 'tool' ? 'tool' : `${setting}-d2`), tok, log);
  }
  return out;
}

const dir = process.argv[2] ? resolve(process.argv[2]) : await tinyRun();
const page = join(dir, 'report.html');
if (!existsSync(page)) {
  console.error(`check:report: ${page} does not exist (make it with: trimpi report ${dir})`);
  process.exit(2);
}
const { default: puppeteer } = await import('puppeteer-core');
const browser = await puppeteer.launch({ executablePath: browserPath(), headless: true, args: ['--no-sandbox', '--disable-gpu'] });
const problems = [];
try {
  const tab = await browser.newPage();
  await tab.setViewport({ width: 1280, height: 900, deviceScaleFactor: 1 });
  await tab.setRequestInterception(true);
  tab.on('request', (r) => {
    const url = r.url();
    if (url.startsWith('file:') || url.startsWith('data:')) r.continue();
    else {
      problems.push(`network request: ${url}`);
      r.abort();
    }
  });
  tab.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  tab.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await tab.goto(pathToFileURL(page).href, { waitUntil: 'load' });
  const info = await tab.evaluate(() => ({
    svgs: document.querySelectorAll('figure.plot svg').length,
    tables: document.querySelectorAll('table').length,
    images: document.images.length,
    broken: [...document.images].filter((i) => !i.complete || i.naturalWidth === 0).length,
    height: document.documentElement.scrollHeight,
  }));
  if (info.broken) problems.push(`${info.broken} broken image(s)`);
  if (!info.svgs) problems.push('no plot');
  const shot = join(dir, 'report.png');
  await tab.screenshot({ path: shot, fullPage: true });
  console.log(`${page}: ${info.tables} tables, ${info.svgs} plots, ${info.images} images, ${info.height} px tall`);
  console.log(`screenshot: ${shot}`);
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
