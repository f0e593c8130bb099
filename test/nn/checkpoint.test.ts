// Checkpoints: the safetensors encoding (read back here and by an independent Python/NumPy reader),
// a model round trip, a resumed run continuing with exactly the losses of an uninterrupted one, and
// bad files refused with messages that say what is wrong.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';
import { Example, makeExamples, microBatches, vmcptLossOf } from './fixtures.js';

const { nn } = t;
const tiny = (o: Partial<t.nn.VlmConfig> = {}): t.nn.VlmConfig => ({ ...nn.preset('tiny', 50).model, ...o });

let root: string;
beforeAll(async () => {
  await t.init();
  root = mkdtempSync(join(tmpdir(), 'trimpi-ckpt-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function hasNumpy(): boolean {
  try {
    execFileSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('safetensors', () => {
  it('encodes the documented layout: LE header length, JSON header padded to 8 bytes, raw LE data', () => {
    const tensors = new Map<string, t.nn.HostTensor>([
      ['a.weight', { dtype: 'f32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, -6.5]) }],
      ['b', { dtype: 'i32', shape: [3], data: Int32Array.from([7, -8, 9]) }],
      ['empty', { dtype: 'f32', shape: [0, 4], data: new Float32Array(0) }],
    ]);
    const bytes = nn.encodeSafetensors(tensors, { step: '3' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString());
    expect(header['a.weight']).toEqual({ dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
    expect(header.b).toEqual({ dtype: 'I32', shape: [3], data_offsets: [24, 36] });
    expect(header.__metadata__).toEqual({ step: '3' });
    const back = nn.decodeSafetensors(bytes);
    expect(back.metadata).toEqual({ step: '3' });
    for (const [k, v] of tensors) expect(back.tensors.get(k)).toEqual(v);
  });

  it('is readable by an independent Python reader (NumPy)', async (ctx) => {
    if (!hasNumpy()) ctx.skip();
    const path = join(root, 'py.safetensors');
    nn.writeSafetensors(path, new Map([
      ['x', { dtype: 'f32' as const, shape: [2, 2], data: Float32Array.from([0.5, -1, 3.25, 1e-3]) }],
      ['ids', { dtype: 'i32' as const, shape: [2], data: Int32Array.from([-5, 123456]) }],
    ]));
    const script = [
      'import json, struct, sys, numpy as np',
      'b = open(sys.argv[1], "rb").read()',
      '(n,) = struct.unpack("<Q", b[:8]); h = json.loads(b[8:8 + n]); data = b[8 + n:]',
      'dt = {"F32": "<f4", "I32": "<i4"}',
      'out = {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype=dt[v["dtype"]]).reshape(v["shape"]).tolist() for k, v in h.items() if k != "__metadata__"}',
      'print(json.dumps(out))',
    ].join('\n');
    const out = JSON.parse(execFileSync('python3', ['-c', script, path]).toString());
    expect(out.x).toEqual([[0.5, -1], [3.25, Math.fround(1e-3)]]);
    expect(out.ids).toEqual([-5, 123456]);
  });

  it('refuses malformed files with the reason', () => {
    const good = nn.encodeSafetensors(new Map([['w', { dtype: 'f32' as const, shape: [4], data: new Float32Array(4) }]]));
    expect(() => nn.decodeSafetensors(good.subarray(0, 5), 'f')).toThrow(/readSafetensors: f: the file is 5 bytes long, too short/);
    expect(() => nn.decodeSafetensors(good.subarray(0, good.length - 4), 'f')).toThrow(/run past the end of the data .*truncated/);
    const huge = Uint8Array.from(good);
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    expect(() => nn.decodeSafetensors(huge, 'f')).toThrow(/header length field says 1099511627776 bytes/);
    const badJson = Uint8Array.from(good);
    badJson[8] = 0x7b + 1; // '|' instead of '{'
    expect(() => nn.decodeSafetensors(badJson, 'f')).toThrow(/the header is not valid JSON/);
    const f16 = Buffer.from(Buffer.from(good).toString('latin1').replace('"F32"', '"F16"'), 'latin1');
    expect(() => nn.decodeSafetensors(f16, 'f')).toThrow(/tensor w has dtype "F16"; supported: F32, I32/);
    const extra = new Uint8Array(good.length + 4);
    extra.set(good);
    expect(() => nn.decodeSafetensors(extra, 'f')).toThrow(/cover 16 bytes but the data section has 20/);
  });
});

describe('checkpoints', () => {
  it('round trip: a model rebuilt from its checkpoint gives the same logits bit for bit; files are replaced atomically', async () => {
    const m = new nn.VisionLanguageModel(tiny({ seed: 2 }));
    const dir = join(root, 'rt');
    await nn.saveCheckpoint(dir, m, { extra: { note: 'first' } });
    await nn.saveCheckpoint(dir, m, { extra: { note: 'second' } }); // over an existing checkpoint
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']); // no temporary files left
    const manifest = nn.readManifest(dir);
    expect(manifest.extra).toEqual({ note: 'second' });
    expect(manifest.config).toEqual(m.config);
    const m2 = nn.loadVisionLanguageModel(dir);
    const batch = m.prepareBatch([[1, 4, 9, 10, 11], [1, 12]]);
    const images = t.rand([1, 3, 16, 16], { seed: 1 });
    const logits = async (model: t.nn.VisionLanguageModel): Promise<Float32Array> => {
      const out = t.noGrad(() => t.tidy(() => model.forward(model.toInputs(batch, images))));
      const a = (await out.toArray()) as Float32Array;
      out.dispose();
      return a;
    };
    expect(await logits(m2)).toEqual(await logits(m));
    images.dispose();
    m.dispose();
    m2.dispose();
  });

  it('a resumed run continues with the same losses as an uninterrupted one (dropout on, AdamW state restored)', async () => {
    const steps = 8;
    const cut = 4;
    const opts = { lr: 5e-3, minLr: 5e-4, warmupSteps: 3, totalSteps: steps, weightDecay: 0.1, seed: 9 };
    const setup = (seed: number): { m: t.nn.VisionLanguageModel; tr: t.nn.Trainer<Example>; exs: Example[] } => {
      const m = new nn.VisionLanguageModel(tiny({ seed, dropout: 0.1 }));
      const exs = microBatches(m, makeExamples(m, 4, 17), 2); // two micro-batches per step
      return { m, tr: new nn.Trainer<Example>(m, opts), exs };
    };
    const run = async (s: ReturnType<typeof setup>, n: number): Promise<number[]> => {
      const losses: number[] = [];
      for (let i = 0; i < n; i++) {
        const r = s.tr.trainStep(s.exs, vmcptLossOf(s.m));
        losses.push(await r.loss.item());
        r.loss.dispose();
        r.gradNorm.dispose();
      }
      return losses;
    };
    const free = (s: ReturnType<typeof setup>): void => {
      s.exs.forEach((e) => e.images?.dispose());
      s.tr.dispose();
      s.m.dispose();
    };
    const a = setup(1);
    const whole = await run(a, steps);
    free(a);

    const b = setup(1);
    const first = await run(b, cut);
    const dir = join(root, 'resume');
    await nn.saveCheckpoint(dir, b.m, { optimizer: b.tr.optimizer, extra: { trainer: { ...opts } } });
    free(b);
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors', 'optimizer.safetensors']);

    const c = setup(99); // different initial weights: everything must come from the checkpoint
    const manifest = nn.loadCheckpoint(dir, c.m, { optimizer: c.tr.optimizer });
    expect(manifest.step).toBe(cut);
    expect(c.tr.step).toBe(cut);
    const rest = await run(c, steps - cut);
    free(c);
    expect([...first, ...rest]).toEqual(whole);
  });

  it('refuses bad checkpoints with a clear message', async () => {
    const m = new nn.VisionLanguageModel(tiny());
    const dir = join(root, 'bad');
    const tr = new nn.Trainer(m, { lr: 1e-3, totalSteps: 10 });
    await nn.saveCheckpoint(dir, m);
    const modelFile = join(dir, 'model.safetensors');
    const pristine = readFileSync(modelFile);
    const edit = (fn: (tensors: Map<string, t.nn.HostTensor>) => void, meta?: Record<string, string>): void => {
      const st = nn.decodeSafetensors(pristine);
      fn(st.tensors);
      writeFileSync(modelFile, nn.encodeSafetensors(st.tensors, meta ?? st.metadata));
    };
    try {
      expect(() => nn.loadCheckpoint(join(root, 'nowhere'), m)).toThrow(/loadCheckpoint: .*nowhere\/config.json does not exist/);

      edit((ts) => ts.set('decoder.blocks.0.attn.qkv.weight', { dtype: 'f32', shape: [64, 192], data: new Float32Array(64 * 192) }));
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/tensor decoder.blocks.0.attn.qkv.weight in .*model.safetensors has shape \[64, 192\] but the model expects \[32, 96\]/);

      edit((ts) => ts.set('decoder.ln_f.bias', { dtype: 'i32', shape: [32], data: new Int32Array(32) }));
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/tensor decoder.ln_f.bias in .* has dtype i32 but the model expects f32/);

      edit((ts) => ts.delete('projector.weight'));
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/missing 1 tensor\(s\) in .*model.safetensors: projector.weight/);

      edit((ts) => ts.set('decoder.lm_head.weight', { dtype: 'f32', shape: [1], data: new Float32Array(1) }));
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/unexpected tensor\(s\) in .* that the model does not have: decoder.lm_head.weight/);

      edit(() => undefined, { trimpi: nn.CHECKPOINT_FORMAT, step: '7' });
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/model.safetensors is from step 7 but config.json says step 0 \(an interrupted save/);

      writeFileSync(modelFile, pristine.subarray(0, pristine.length - 100));
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/readSafetensors: .*model.safetensors: tensor .* run past the end of the data/);

      writeFileSync(modelFile, pristine);
      expect(() => nn.loadCheckpoint(dir, m, { optimizer: tr.optimizer })).toThrow(/has no optimizer state .*cannot resume training from it/);

      const wide = new nn.VisionLanguageModel(tiny({ dim: 64 }));
      expect(() => nn.loadCheckpoint(dir, wide)).toThrow(/was saved from a model with a different config: dim 32 \(the model has 64\)/);
      wide.dispose();

      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, format: 'something-else' }));
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/is not a trimpi-checkpoint manifest/);
      writeFileSync(join(dir, 'config.json'), '{"format": ');
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/config.json is not valid JSON/);
    } finally {
      tr.dispose();
      m.dispose();
    }
  });
});
