// Dataset export end to end (GPU): byte-identical output for a seed, the files and their contents,
// images that load back as tensors, the temporary-directory rename, and the CLI's errors.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as t from '../../src/index.js';
import {
  ClevrRecord, PolicyRecord, SceneQaRecord, ToolRecord, Tokenizer, decodePng, generateDataset, hashBytes, loadImages,
  parseDataArgs, readJsonl, recheckClevr, runDataCommand, scoreClevr, scoreToolCall,
} from '../../src/trimpi/data/index.js';

const root = mkdtempSync(join(tmpdir(), 'trimpi-data-'));
beforeAll(async () => {
  await t.init();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function tree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), hashBytes(readFileSync(p)));
    }
  };
  walk(dir);
  return out;
}

describe('generateDataset', () => {
  it('writes byte-identical files for the same seed (clevr-m), different ones for another seed', async () => {
    const opts = { setting: 'clevr-m' as const, depth: 2, policies: 2, train: 8, test: 4, batch: 5 };
    const a = await generateDataset({ ...opts, seed: 7, out: join(root, 'a') });
    const b = await generateDataset({ ...opts, seed: 7, out: join(root, 'b') });
    const c = await generateDataset({ ...opts, seed: 8, out: join(root, 'c') });
    const ta = tree(a.out);
    expect([...tree(b.out)]).toEqual([...ta]);
    expect(tree(c.out).get('train.jsonl')).not.toBe(ta.get('train.jsonl'));
    for (const f of ['train.jsonl', 'test.jsonl', 'policies.jsonl', 'vocab.json', 'stats.json', 'stats.txt', 'contact_sheet.png', 'manifest.json']) expect(ta.has(f)).toBe(true);
    expect(readdirSync(root).some((f) => f.includes('.tmp-'))).toBe(false);

    // contents: records agree with their policies and scene graphs; images and crops exist and load
    const policies = readJsonl<PolicyRecord>(join(a.out, 'policies.jsonl'));
    expect(policies).toHaveLength(2);
    const train = readJsonl<ClevrRecord>(join(a.out, 'train.jsonl'));
    const test = readJsonl<ClevrRecord>(join(a.out, 'test.jsonl'));
    expect(train).toHaveLength(16);
    expect(test).toHaveLength(8);
    expect(train.filter((r) => r.cot)).toHaveLength(2); // 1/8 of 8 per policy
    const tok = Tokenizer.load(join(a.out, 'vocab.json'));
    for (const r of [...train, ...test]) {
      const p = policies.find((q) => q.name === r.policy)!;
      expect(recheckClevr(r, p)).toBe(true);
      expect(scoreClevr(r.response, r.case, p.cases).correct).toBe(true);
      expect(tok.decode(tok.encode(r.response))).toBe(r.response);
      expect(ta.has(r.images[0])).toBe(true);
    }
    for (const p of policies) {
      expect(p.images).toHaveLength(p.crops.length);
      expect((p.text.match(/<image>/g) ?? []).length).toBe(p.images.length);
      for (const img of p.images) expect(ta.has(img)).toBe(true);
    }
    const x = loadImages(a.out, test.map((r) => r.images[0]));
    expect(x.shape).toEqual([8, 3, 64, 64]);
    const v = await x.toArray();
    const png = decodePng(readFileSync(join(a.out, test[0].images[0])));
    expect(v[64 * 10 + 20]).toBeCloseTo(png.rgb[3 * (64 * 10 + 20)] / 255, 6);
    x.dispose();
    const sheet = decodePng(readFileSync(join(a.out, 'contact_sheet.png')));
    expect(sheet.width).toBeGreaterThan(128);
    expect(a.stats.counts).toEqual({ policies: 2, train: 16, test: 8, images: 24 + policies.reduce((n, p) => n + p.crops.length, 0) });
    expect(a.stats.tokens.unknown).toBe(0);
    expect(a.stats.policies.every((p) => p.missingTest.length === 0)).toBe(true);
    expect(a.stats.tokens.promptWithPolicy.mean).toBeGreaterThan(a.stats.tokens.prompt.mean);
  });

  it('writes ToolPolicy and SceneQA data whose image names match the files', async () => {
    const tool = await generateDataset({ setting: 'tool', seed: 3, train: 12, test: 4, out: join(root, 'tool') });
    const files = tree(tool.out);
    const recs = readJsonl<ToolRecord>(join(tool.out, 'train.jsonl'));
    expect(recs).toHaveLength(12);
    for (const r of recs) {
      for (const img of r.images) {
        expect(img).toMatch(/^image\/image_\d+\.png$/);
        expect(files.has(img)).toBe(true);
        expect(r.prompt).toContain(`${img} <image>`);
      }
      expect(scoreToolCall(r.response, r.target).score).toBe(1);
    }
    expect(files.has('policy_override.txt')).toBe(true);
    const pol = readJsonl<PolicyRecord>(join(tool.out, 'policies.jsonl'));
    expect(pol[0].name).toBe('ToolPolicy');
    expect(tool.stats.tokens.promptWithPolicy.mean).toBeGreaterThan(tool.stats.tokens.prompt.mean + 500);

    const qa = await generateDataset({ setting: 'sceneqa', seed: 3, train: 4, test: 2, out: join(root, 'qa') });
    const q = readJsonl<SceneQaRecord>(join(qa.out, 'test.jsonl'));
    expect(q.map((r) => r.kind)).toEqual(['count', 'exist', 'query', 'count', 'exist', 'query']);
    for (const r of q) expect(r.response).toBe(`\\boxed{${r.gold}}`);
  });

  it('refuses to overwrite without force and cleans up its temporary directory on failure', async () => {
    const out = join(root, 'a');
    await expect(generateDataset({ setting: 'clevr-t', seed: 1, depth: 2, policies: 1, train: 1, test: 1, out })).rejects.toThrow(/already exists \(use --force/);
    await expect(generateDataset({ setting: 'clevr-t', seed: 1, depth: 3, out: join(root, 'bad') })).rejects.toThrow(/--depth must be one of 2, 4, 6/);
    // fails after the temporary directory was made (the renderer checks its batch size)
    await expect(generateDataset({ setting: 'clevr-t', seed: 1, depth: 2, policies: 1, train: 2, test: 0, batch: 300, out: join(root, 'late') }))
      .rejects.toThrow(/batch must be an integer in \[1, 256\]/);
    expect(existsSync(join(root, 'late'))).toBe(false);
    expect(readdirSync(root).some((f) => f.includes('.tmp-'))).toBe(false);
    const forced = await generateDataset({ setting: 'clevr-t', seed: 1, depth: 2, policies: 1, train: 1, test: 1, out, force: true });
    expect(readJsonl(forced.files.train)).toHaveLength(1);
  });
});

describe('trimpi data (CLI)', () => {
  it('parses options and rejects bad ones with a clear message and exit code 2', async () => {
    const ok = parseDataArgs(['data', '--setting', 'clevr-t', '--depth', '4', '--seed', '3', '--out', 'x', '--size', '0.01', '--objects', '3-8', '--no-shadows', '--image-size=96']);
    expect(ok).toEqual({ quiet: false, opts: { setting: 'clevr-t', depth: 4, seed: 3, out: 'x', size: 0.01, minObjects: 3, maxObjects: 8, shadows: false, imageSize: 96 } });
    const errors: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((m: string) => void errors.push(m));
    try {
      expect(await runDataCommand(['--setting', 'clevr-x', '--seed', '1', '--out', 'y'])).toBe(2);
      expect(errors.pop()).toMatch(/--setting must be one of clevr-t, clevr-m, tool, sceneqa/);
      expect(await runDataCommand(['--setting', 'tool', '--seed', 'abc', '--out', 'y'])).toBe(2);
      expect(errors.pop()).toMatch(/--seed expects an integer, got 'abc'/);
      expect(await runDataCommand(['--setting', 'tool', '--seed', '1'])).toBe(2);
      expect(errors.pop()).toMatch(/--out is required/);
      expect(await runDataCommand(['--setting', 'tool', '--seed', '1', '--out', 'y', '--frobnicate'])).toBe(2);
      expect(errors.pop()).toMatch(/unknown option '--frobnicate'/);
      expect(await runDataCommand(['--setting', 'clevr-t', '--seed', '1', '--out', join(root, 'z'), '--depth', '5', '--quiet'])).toBe(2);
      expect(errors.pop()).toMatch(/--depth must be one of 2, 4, 6, got 5/);
    } finally {
      spy.mockRestore();
    }
  });

  it('generates a small dataset with a progress report', async () => {
    const logs: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((m: string) => void logs.push(m));
    const writes: string[] = [];
    const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (writes.push(String(chunk)), true));
    try {
      const code = await runDataCommand(['data', '--setting', 'random-t', '--depth', '4', '--seed', '2', '--policies', '3', '--train', '4', '--test', '1', '--out', join(root, 'cli')]);
      expect(code).toBe(0);
    } finally {
      spy.mockRestore();
      errSpy.mockRestore();
    }
    expect(writes.join('')).toMatch(/100% 15\/15 images/);
    expect(logs.join('\n')).toMatch(/prompt with policy/);
    expect(readJsonl(join(root, 'cli', 'train.jsonl'))).toHaveLength(12);
  });
});
