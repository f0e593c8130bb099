// The evaluation suite and the HTML report on one tiny run (tiny scale, a random tiny base): the run
// ends with <setting>/evals.json filled and report.html written; a second suite call recomputes
// nothing; the page has every table, every plot as an inline SVG with data marks, the gallery's
// inline images, and no external resource; `trimpi report` / `trimpi eval` exit codes.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';
import type { EvalSuiteResults } from '../../src/trimpi/eval/results.js';
import { evaluateSuite, openSuiteContext } from '../../src/trimpi/suite.js';
import { loadRun, renderReport } from '../../src/trimpi/report/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const cli = resolve(here, '../../dist/src/cli.js');
const work = mkdtempSync(join(tmpdir(), 'trimpi-report-'));
const base = join(work, 'base');
const out = join(work, 'run');
const root = join(out, 'clevr-t-d2');
const tok = t.data.defaultTokenizer();
const METHODS: t.pipeline.MethodName[] = ['in-context', 'cot-sft', 'trimpi-poro-grpo'];
const logs: string[] = [];

beforeAll(async () => {
  await t.init();
  const model = new t.nn.VisionLanguageModel(t.nn.preset('tiny', tok.size, { maxPositions: 1024 }).model);
  await t.nn.saveCheckpoint(base, model);
  model.dispose();
  await t.pipeline.runPipeline({
    setting: 'clevr-t', depth: 2, seed: 0, methods: METHODS, scale: 'tiny', base, out,
    overrides: { rl: { ...t.pipeline.SCALES.tiny.rl, steps: 2 } },
  }, tok, { log: (l) => logs.push(l), progress: null });
}, 900_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the evaluation suite and the report of a tiny run', () => {
  it('fills evals.json with every evaluation at the end of trimpi run', () => {
    const ev = JSON.parse(readFileSync(join(root, 'evals.json'), 'utf8')) as EvalSuiteResults;
    expect(ev.errors).toEqual({});
    expect(Object.keys(ev.override).sort()).toEqual([...METHODS].sort());
    expect(Object.keys(ev.referral).sort()).toEqual([...METHODS].sort());
    expect(Object.keys(ev.branching).sort()).toEqual([...METHODS].sort());
    expect(Object.keys(ev.inContextAfterMpi).sort()).toEqual(['cot-sft', 'trimpi-poro-grpo']);
    expect(Object.keys(ev.forgetting).sort()).toEqual(['base', 'cot-sft', 'trimpi-poro-grpo']);
    for (const r of Object.values(ev.override)) {
      expect(r.n).toBe(4);
      expect(r.follow).toBeGreaterThanOrEqual(0);
      expect(r.follow).toBeLessThanOrEqual(1);
    }
    for (const r of Object.values(ev.referral)) {
      expect(r.n).toBe(4);
      expect(r.score).toBeGreaterThanOrEqual(0);
      expect(r.score).toBeLessThanOrEqual(10);
    }
    for (const r of Object.values(ev.forgetting)) expect(r.n).toBe(3 + 3); // n = 1: 3 SceneQA kinds + 3 policy kinds
    const results = JSON.parse(readFileSync(join(root, 'results.json'), 'utf8')) as t.pipeline.RunResults;
    expect(ev.inContextAfterMpi['cot-sft'].withoutPolicy).toBe(results.methods['cot-sft']!.accuracy);
    expect(ev.efficiency!.tokens).toHaveLength(7);
    const p = ev.efficiency!.prefill!;
    expect(p.prompts).toBe(2);
    expect(p.with).not.toBeNull();
    expect(p.with!.tokens).toBeGreaterThan(3 * p.without.tokens);
    expect(p.without.seconds).toBeGreaterThan(0);
    expect(logs.some((l) => l.startsWith('report: '))).toBe(true);
  });

  it('resumes: a second suite call recomputes nothing', async () => {
    const before = readFileSync(join(root, 'evals.json'), 'utf8');
    const t0 = performance.now();
    const again = await evaluateSuite(await openSuiteContext(root, tok, () => undefined));
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(JSON.stringify(again, null, 1) + '\n').toBe(before);
  });

  it('writes one self-contained page with every table, plot and gallery image', () => {
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    // tables: the main one beside the paper, the baselines, every evaluation, the configuration
    for (const text of ['Main table', 'CoT SFT', 'TriMPI, PoRo-GRPO', 'in-context (policy in prompt, no MPI)', '65.85%', '84.70%', 'majority-case baseline', 'uniform-random baseline',
      'Policy override', 'Policy referral', 'Policy in context after MPI', 'Forgetting', 'Branching errors', 'Efficiency', 'saves up to 93.9% of the prompt tokens and 85.7% of the prefill time',
      'Stages: wall time and throughput', 'trimpi-poro-grpo', 'positions/s', 'rollout tokens/s']) {
      expect(html, text).toContain(text);
    }
    expect((html.match(/<table/g) ?? []).length).toBeGreaterThanOrEqual(12);
    // plots: accuracy bars, efficiency bars, training loss, RL metrics; each an inline SVG with data marks
    const figures = html.split('<figure class="plot">').slice(1).map((f) => f.slice(0, f.indexOf('</figure>')));
    expect(figures.length).toBe(4);
    for (const f of figures) {
      expect(f.startsWith('<svg')).toBe(true);
      const marks = [...f.matchAll(/<g class="mark-(rect|line|symbol) role-mark[^"]*"[^>]*>([\s\S]*?)<\/g>/g)];
      expect(marks.length, f.slice(0, 200)).toBeGreaterThan(0);
      expect(marks.some((m) => /<path [^>]*d="M/.test(m[2])), 'a mark with drawn paths').toBe(true);
    }
    expect(figures.some((f) => f.includes('mark-line'))).toBe(true);
    expect(figures.some((f) => f.includes('mark-rect'))).toBe(true);
    // the svgs' ids do not collide
    const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(ids).size).toBe(ids.length);
    // the gallery: inline PNGs, each method's output, steps marked
    expect((html.match(/src="data:image\/png;base64,/g) ?? []).length).toBe(4);
    expect(html).toMatch(/class="(wrong|right)"|<i>\(empty\)<\/i>|<div class="out">/);
    // offline: nothing fetched
    expect(html).not.toMatch(/<script|<link|src="http|url\(http|@import/);
  });

  it('marks wrong steps against the policy and the gold CoT', async () => {
    const view = loadRun(out);
    const s = view.settings[0];
    const r = s.test[0] as t.data.ClevrRecord;
    const policy = s.policies.get(r.policy)!;
    const { highlightSteps } = await import('../../src/trimpi/report/index.js');
    expect(highlightSteps(r.response, r.response, policy)).not.toContain('class="wrong"');
    const bad = r.response.replace('Condition 1:', 'Condition 1.9:');
    expect(highlightSteps(bad, r.response, policy)).toContain('<mark class="wrong" title="Condition 1.9 is not in the policy');
    const html = await renderReport(view, { galleryItems: 1, now: new Date(0) });
    expect((html.match(/src="data:image\/png;base64,/g) ?? []).length).toBe(1);
    expect(html).toContain('generated 1970-01-01 00:00 UTC');
  });

  it('trimpi report DIR writes the page; bad arguments exit 2', () => {
    expect(existsSync(cli), `${cli} is missing: run \`npm run build\` first`).toBe(true);
    const page = join(out, 'report.html');
    const before = statSync(page).mtimeMs;
    const ok = spawnSync(process.execPath, [cli, 'report', out], { encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`wrote ${page}`);
    expect(statSync(page).mtimeMs).toBeGreaterThanOrEqual(before);
    for (const args of [['report'], ['report', join(work, 'missing')], ['report', out, 'extra'], ['eval'], ['eval', join(work, 'missing')], ['eval', base]]) {
      const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toContain('usage: trimpi');
    }
  });
});
