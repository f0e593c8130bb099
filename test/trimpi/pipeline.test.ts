// The whole TriMPI pipeline at a tiny scale: every method of the table runs from one base checkpoint
// and writes its artifacts; a run SIGKILLed in the middle of an RL stage resumes without redoing
// finished work and ends with exactly the numbers of an uninterrupted run; bad flags exit 2.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const distIndex = resolve(here, '../../dist/src/index.js');
const cli = resolve(here, '../../dist/src/cli.js');
const work = mkdtempSync(join(tmpdir(), 'trimpi-pipeline-'));
const base = join(work, 'base');
const tok = t.data.defaultTokenizer();
/** Writes a JSON file in the work directory and returns its path. */
const writeJson = (name: string, v: unknown): string => {
  const p = join(work, name);
  writeFileSync(p, JSON.stringify(v));
  return p;
};

/** The tiny scale with a few more steps, so that a kill can land inside a stage. */
function config(out: string, methods: t.pipeline.MethodName[] = t.pipeline.METHOD_NAMES): t.pipeline.RunConfig {
  return {
    setting: 'clevr-t', depth: 2, seed: 0, methods, scale: 'tiny', base, out,
    overrides: { rl: { ...t.pipeline.SCALES.tiny.rl, steps: 3 } },
  };
}

beforeAll(async () => {
  await t.init();
  // a random tiny base (the shipped one is the cpu preset; the pipeline does not care)
  const model = new t.nn.VisionLanguageModel(t.nn.preset('tiny', tok.size, { maxPositions: 1024 }).model);
  await t.nn.saveCheckpoint(base, model);
  model.dispose();
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('trimpi run, ToolPolicy (tiny scale)', () => {
  it('runs every method from a rotary-position base loaded with a 2,048-position context (the policy in context outgrows 1,024)', async () => {
    const ropeBase = join(work, 'base-rope');
    const model = new t.nn.VisionLanguageModel(t.nn.preset('tiny', tok.size, { maxPositions: 1024, positionEncoding: 'rope' }).model);
    await t.nn.saveCheckpoint(ropeBase, model);
    model.dispose();
    expect(t.pipeline.contextFor('tool', ropeBase)).toBe(t.pipeline.TOOL_CONTEXT);
    expect(t.pipeline.contextFor('clevr-t', ropeBase)).toBeUndefined();
    expect(t.pipeline.contextFor('tool', base)).toBeUndefined(); // learned positions: the table fixes the context
    const out = join(work, 'tool');
    const r = await t.pipeline.runPipeline({ ...config(out), setting: 'tool', depth: 0, base: ropeBase }, tok, { log: () => undefined, progress: null, suite: false, report: false });
    for (const m of t.pipeline.METHOD_NAMES) {
      expect(r.methods[m]!.n, m).toBe(3); // the tiny scale's test records
      expect(r.methods[m]!.accuracy).toBeGreaterThanOrEqual(0);
    }
    // the in-context row had the rule book in its prompts: over 1,024 positions
    expect(r.methods['in-context']!.promptTokens).toBeGreaterThan(1024);
    const trained = t.nn.readManifest(join(out, 'tool', 'stages', 'cot-sft', 'model')).config as { maxPositions: number };
    expect(trained.maxPositions).toBe(t.pipeline.TOOL_CONTEXT);
  });
});

describe('trimpi run (tiny scale)', () => {
  let uninterrupted: t.pipeline.RunResults;

  it('runs every method of the table and writes each stage, evaluation and the results', async () => {
    const out = join(work, 'full');
    uninterrupted = await t.pipeline.runPipeline(config(out), tok, { log: () => undefined, progress: null });
    const root = join(out, 'clevr-t-d2');
    for (const s of t.pipeline.stagesFor(t.pipeline.METHOD_NAMES)) {
      expect(existsSync(join(root, 'stages', s, 'model', 'config.json')), s).toBe(true);
      expect(existsSync(join(root, 'stages', s, 'done.json')), s).toBe(true);
      expect(existsSync(join(root, 'stages', s, 'resume')), s).toBe(false);
      expect(readFileSync(join(root, 'stages', s, 'metrics.jsonl'), 'utf8').trim().split('\n').length).toBeGreaterThan(0);
    }
    for (const m of t.pipeline.METHOD_NAMES) {
      const r = uninterrupted.methods[m]!;
      expect(r.n, m).toBe(4);
      expect(r.accuracy).toBeGreaterThanOrEqual(0);
      expect(existsSync(join(root, 'eval', `${m}.json`))).toBe(true);
    }
    expect(uninterrupted.methods['in-context']!.withPolicy).toBe(true);
    expect(uninterrupted.methods['trimpi-poro-grpo']!.withPolicy).toBe(false);
    // in-context prompts carry the policy: far longer than the others
    expect(uninterrupted.methods['in-context']!.promptTokens).toBeGreaterThan(3 * uninterrupted.methods['cot-sft']!.promptTokens);
    const saved = JSON.parse(readFileSync(join(root, 'results.json'), 'utf8')) as t.pipeline.RunResults;
    expect(Object.keys(saved.methods).sort()).toEqual([...t.pipeline.METHOD_NAMES].sort());
    expect(saved.stages['trimpi-poro-grpo'].last!.rewardWithPolicy).not.toBeNull();
    expect(t.pipeline.formatResults(saved)).toContain('TriMPI, PoRo-GRPO');
  });

  it('resumes after a SIGKILL inside an RL stage, skipping finished stages, with the same numbers', async () => {
    expect(existsSync(distIndex), `${distIndex} is missing: run \`npm run build\` first`).toBe(true);
    const out = join(work, 'killed');
    const methods: t.pipeline.MethodName[] = ['cot-sft', 'cot-sft-grpo'];
    const metrics = join(out, 'clevr-t-d2', 'stages', 'cot-sft+grpo', 'metrics.jsonl');
    const child = spawn(process.execPath, [join(here, 'run_child.mjs'), pathToFileURL(distIndex).href, JSON.stringify(config(out, methods))], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // kill once the RL stage has logged its first rollout step (and before it ends)
    const killed = await new Promise<boolean>((done) => {
      const poll = setInterval(() => {
        if (existsSync(metrics)) {
          clearInterval(poll);
          child.kill('SIGKILL');
          done(true);
        }
      }, 5);
      child.on('exit', () => {
        clearInterval(poll);
        done(false);
      });
    });
    expect(killed, `the child finished before the kill: ${stderr}`).toBe(true);
    const lines: string[] = [];
    const resumed = await t.pipeline.runPipeline(config(out, methods), tok, { log: (l) => lines.push(l), progress: null });
    expect(lines.some((l) => l.startsWith('stage cot-sft: done'))).toBe(true);
    expect(lines.some((l) => l.startsWith('stage cot-sft+grpo: resuming at rollout step'))).toBe(true);
    const steps = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
    expect(steps).toEqual([0, 1, 2]);
    for (const m of methods) {
      expect(resumed.methods[m]!.accuracy).toBe(uninterrupted.methods[m]!.accuracy);
      const a = JSON.parse(readFileSync(join(out, 'clevr-t-d2', 'eval', `${m}.json`), 'utf8')) as t.evaluation.AccuracyResult;
      const b = JSON.parse(readFileSync(join(work, 'full', 'clevr-t-d2', 'eval', `${m}.json`), 'utf8')) as t.evaluation.AccuracyResult;
      expect(a.items.map((i) => i.output)).toEqual(b.items.map((i) => i.output));
    }
  });

  it('pretrain --recipe reads a JSON recipe over the defaults (flags after it still apply)', async () => {
    const { parsePretrainArgs } = await import('../../src/trimpi/cli.js');
    const recipe = writeJson('recipe.json', { steps: 1400, targets: 'text', model: { positionEncoding: 'rope' }, mixStart: { ...t.stages.STAGE0_DEFAULTS.mixStart, checksText: 0.2 } });
    const r = parsePretrainArgs(['--out', 'x', '--recipe', recipe, '--seed', '3']);
    if ('help' in r) throw new Error('expected a config');
    expect(r.config).toEqual({ ...t.stages.STAGE0_DEFAULTS, steps: 1400, seed: 3, targets: 'text', model: { positionEncoding: 'rope' }, mixStart: { ...t.stages.STAGE0_DEFAULTS.mixStart, checksText: 0.2 } });
  });

  it('refuses bad flags with exit code 2 and the usage, before the GPU starts', () => {
    const cases = [
      ['run', '--setting', 'clevr-x', '--out', 'x'],
      ['run', '--setting', 'clevr-t', '--depth', '3', '--out', 'x'],
      ['run', '--setting', 'clevr-t', '--methods', 'sft,nope', '--out', 'x'],
      ['run', '--setting', 'clevr-t', '--scale', 'huge', '--out', 'x'],
      ['run', '--setting', 'clevr-t'],
      ['run', '--setting', 'tool', '--depth', '4', '--out', 'x', '--base', base],
      ['run', '--setting', 'clevr-t', '--out', 'x', '--base', join(work, 'missing')],
      ['data', '--setting', 'clevr-t', '--seed', '1', '--out', 'x', '--objects', '9-2'],
      ['data', '--setting', 'clevr-t', '--seed', '1', '--out', 'x', '--objects', '11'],
      ['data', '--setting', 'clevr-t', '--seed', '1', '--out', 'x', '--batch', '0'],
      ['pretrain'],
      ['pretrain', '--out', 'x', '--steps', '-3'],
      ['pretrain', '--out', 'x', '--bogus'],
      ['pretrain', '--out', 'x', '--recipe', join(work, 'missing.json')],
      ['pretrain', '--out', 'x', '--recipe', writeJson('bad-key.json', { stpes: 10 })],
      ['pretrain', '--out', 'x', '--recipe', writeJson('bad-type.json', { steps: '10' })],
      ['pretrain', '--out', 'x', '--recipe', writeJson('not-object.json', [1, 2])],
      ['pretrain', '--out', 'x', '--recipe', writeJson('bad-task.json', { mixEnd: { ...t.stages.STAGE0_DEFAULTS.mixEnd, sceneQaText: 0.2 } })],
      ['pretrain', '--out', 'x', '--recipe', writeJson('bad-weight.json', { mixStart: { ...t.stages.STAGE0_DEFAULTS.mixStart, tool: -1 } })],
    ];
    for (const args of cases) {
      const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('usage: trimpi');
    }
  });
});
