// LoRA: a fresh adapter (B = 0) leaves the logits bit for bit; training with the Trainer moves the
// adapters only and the loss falls; merge() reproduces the adapted model; trainable-parameter count;
// argument errors; the gradient of the low-rank path against the float64 reference; checkpoints with
// unmerged adapters.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';
import { TrimpiError } from '../../src/index.js';
import { TOL, expectClose, freshSeed } from '../helpers.js';
import { Ref, Rng } from '../reference/ref.js';
import { Example, makeExamples, microBatches, vmcptLossOf } from './fixtures.js';

const { nn } = t;
const tiny = (o: Partial<t.nn.VlmConfig> = {}): t.nn.VlmConfig => ({ ...nn.preset('tiny', 50).model, ...o });

let root: string;
beforeAll(async () => {
  await t.init();
  root = mkdtempSync(join(tmpdir(), 'trimpi-lora-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const batchOf = (m: t.nn.VisionLanguageModel): t.nn.VlmBatch => m.prepareBatch([[1, 4, 9, 10, 11, 4, 12], [1, 12, 4, 30]]);

/** Eval-mode logits of a fixed two-sequence batch with three images, read back. */
async function logitsOf(m: t.nn.VisionLanguageModel, images: t.Tensor): Promise<Float32Array> {
  m.eval();
  const out = t.noGrad(() => t.tidy(() => m.forward(m.toInputs(batchOf(m), images))));
  const a = (await out.toArray()) as Float32Array;
  out.dispose();
  return a;
}

/** Host copies of every parameter by name. */
async function snapshot(m: t.nn.Module): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [n, p] of m.namedParameters()) out.set(n, (await p.value.toArray()) as Float32Array);
  return out;
}

/** (in, out) of every Linear of the tiny VLM, in module order. */
function tinyLinears(c: t.nn.VlmConfig): [number, number][] {
  const block = (d: number): [number, number][] => [[d, 3 * d], [d, d], [d, c.mlpRatio * d], [c.mlpRatio * d, d]];
  return [
    [c.channels * c.patchSize ** 2, c.visionDim],
    ...Array.from({ length: c.visionLayers }, () => block(c.visionDim)).flat(),
    [c.visionDim, c.dim],
    ...Array.from({ length: c.layers }, () => block(c.dim)).flat(),
  ];
}

describe('LoRA', () => {
  it('a fresh adapter (B = 0) gives exactly the base logits; base frozen, A and B trainable; dispose() restores the base model', async () => {
    const m = new nn.VisionLanguageModel(tiny({ seed: 3, initStd: 0.1 }));
    const images = t.rand([3, 3, 16, 16], { seed: 2 });
    const base = await logitsOf(m, images);
    const names = m.namedParameters().map(([n]) => n);
    const lora = nn.applyLora(m, { rank: 4, seed: 1 });
    expect(await logitsOf(m, images)).toEqual(base);
    const adapted = m.namedParameters();
    expect(adapted.filter(([, p]) => !p.frozen).map(([n]) => n)).toEqual(lora.namedParameters().map(([n]) => n));
    expect(adapted.filter(([, p]) => p.frozen).map(([n]) => n)).toEqual(names);
    expect(lora.namedParameters().slice(0, 2).map(([n]) => n)).toEqual(['vision.patch.proj.lora_A', 'vision.patch.proj.lora_B']);
    expect(nn.loraLayers(m)['decoder.blocks.1.mlp.fc']).toEqual({ rank: 4, alpha: 8 });
    expect(lora.scale).toBe(2);
    // A is random, B is zero
    const [A, B] = lora.parameters();
    expect(((await A.toArray()) as Float32Array).some((v) => v !== 0)).toBe(true);
    expect(((await B.toArray()) as Float32Array).every((v) => v === 0)).toBe(true);
    // the Trainer's groups hold the adapters only
    const groups = nn.parameterGroups(m, 0.1);
    expect(new Set(groups.flatMap((g) => g.params))).toEqual(new Set(lora.parameters()));
    lora.dispose();
    lora.dispose(); // idempotent
    expect(lora.active).toBe(false);
    expect(m.namedParameters().map(([n]) => n)).toEqual(names);
    expect(m.namedParameters().every(([, p]) => !p.frozen)).toBe(true);
    expect(await logitsOf(m, images)).toEqual(base);
    images.dispose();
    m.dispose();
  });

  it('Trainer steps move only A and B (base bit-identical) and the loss falls; memory flat per step', async () => {
    const m = new nn.VisionLanguageModel(tiny({ seed: 7 }));
    const exs = microBatches(m, makeExamples(m, 4, 3), 4);
    const before = await snapshot(m);
    const lora = nn.applyLora(m, { rank: 4, dropout: 0.1, seed: 2 });
    const adaptersBefore = await snapshot(m);
    const tr = new nn.Trainer<Example>(m, { lr: 1e-2, warmupSteps: 0, totalSteps: 30, weightDecay: 0.01, seed: 5 });
    expect(new Set(tr.optimizer.params)).toEqual(new Set(lora.parameters()));
    const losses: number[] = [];
    let bytes = 0;
    for (let s = 0; s < 16; s++) {
      const r = tr.trainStep(exs, vmcptLossOf(m));
      losses.push(await r.loss.item());
      for (const v of Object.values(r)) if (v instanceof t.Tensor) v.dispose(); // loss, gradNorm, ...
      if (s === 2) bytes = t.memoryStats().bytesInUse;
    }
    expect(t.memoryStats().bytesInUse).toBe(bytes);
    console.log('LoRA losses', losses.map((x) => x.toFixed(4)).join(' '));
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] - 0.2); // 3.89 → 3.50 on lavapipe
    const after = await snapshot(m);
    for (const [name, v] of before) expect(after.get(name), name).toEqual(v); // frozen: bit-identical
    for (const [name] of lora.namedParameters()) expect(after.get(name), name).not.toEqual(adaptersBefore.get(name));
    // frozen parameters never got a gradient
    expect(m.decoder.blocks[0].attn.qkv.weight.grad).toBeNull();
    tr.dispose();
    lora.merge();
    expect(m.namedParameters().length).toBe(before.size);
    exs.forEach((e) => e.images?.dispose());
    m.dispose();
  });

  it('merge() gives the logits of the unmerged adapted model (random A and B), frees the adapters, unfreezes the base', async () => {
    const m = new nn.VisionLanguageModel(tiny({ seed: 5, initStd: 0.1 }));
    const images = t.rand([3, 3, 16, 16], { seed: 4 });
    const base = await logitsOf(m, images);
    const bytes = t.memoryStats().bytesInUse;
    const lora = nn.applyLora(m, { rank: 3, alpha: 5, seed: 9 });
    t.noGrad(() => t.tidy(() => lora.parameters().forEach((p, i) => { if (i % 2 === 1) p.assign(t.randn(p.shape, { std: 0.2, seed: 100 + i })); })));
    const adapted = await logitsOf(m, images);
    expect(adapted).not.toEqual(base);
    lora.merge();
    expect(t.memoryStats().bytesInUse).toBe(bytes);
    expectClose('merged logits', await logitsOf(m, images), adapted, { rtol: 1e-4, atol: 1e-5 });
    expect(m.namedParameters().some(([n]) => n.includes('lora'))).toBe(false);
    expect(m.namedParameters().every(([, p]) => !p.frozen)).toBe(true);
    expect(nn.loraLayers(m)).toEqual({});
    expect(() => lora.merge()).toThrow(/LoraHandle.merge: the adapters were already merged or disposed/);
    expect(() => lora.parameters()).toThrow(TrimpiError);
    // a merged model takes a new adapter
    nn.applyLora(m, { rank: 2 }).dispose();
    images.dispose();
    m.dispose();
  });

  it('trainable parameters: rank · (in + out) per adapted Linear; include selects layers', () => {
    const cfg = tiny();
    const m = new nn.VisionLanguageModel(cfg);
    const total = m.numParameters();
    const lora = nn.applyLora(m, { rank: 8 });
    const want = tinyLinears(cfg).reduce((n, [i, o]) => n + 8 * (i + o), 0);
    expect(lora.layers.size).toBe(tinyLinears(cfg).length);
    expect(lora.numParameters).toBe(want);
    expect(lora.parameters().reduce((n, p) => n + p.numel, 0)).toBe(want);
    expect(m.numParameters()).toBe(total + want);
    lora.dispose();
    const dec = nn.applyLora(m, { rank: 2, include: (name) => name.startsWith('decoder.') && name.endsWith('.qkv') });
    expect([...dec.layers.keys()]).toEqual(['decoder.blocks.0.attn.qkv', 'decoder.blocks.1.attn.qkv']);
    expect(dec.numParameters).toBe(2 * 2 * (cfg.dim + 3 * cfg.dim));
    dec.dispose();
    m.dispose();
  });

  it('refuses a bad rank, alpha or dropout, an empty selection and a second application', () => {
    const m = new nn.VisionLanguageModel(tiny());
    expect(() => nn.applyLora(m, { rank: 0 })).toThrow(/applyLora: rank must be a positive integer, got 0/);
    expect(() => nn.applyLora(m, { rank: 2.5 })).toThrow(/applyLora: rank must be a positive integer, got 2.5/);
    expect(() => nn.applyLora(m, { rank: 17 })).toThrow(/applyLora: rank 17 exceeds min\(in, out\) = 16 of 'vision.patch.proj' \(192 → 16\)/);
    expect(() => nn.applyLora(m, { rank: 4, alpha: -1 })).toThrow(/alpha must be a positive number/);
    expect(() => nn.applyLora(m, { rank: 4, dropout: 1 })).toThrow(/dropout must be in \[0, 1\)/);
    expect(() => nn.applyLora(m, { rank: 4, include: () => false })).toThrow(/applyLora: no Linear layer selected/);
    expect(m.namedParameters().every(([, p]) => !p.frozen)).toBe(true); // failed calls changed nothing
    const lora = nn.applyLora(m, { rank: 4 });
    expect(() => nn.applyLora(m, { rank: 4 })).toThrow(/applyLora: the model already has LoRA adapters \(e.g. on 'vision.patch.proj', rank 4\)/);
    expect(() => nn.applyLora(m.decoder, { rank: 2 })).toThrow(TrimpiError);
    lora.dispose();
    m.dispose();
  });

  for (const activation of ['none', 'gelu'] as const) {
    it(`gradient of the low-rank path matches the float64 reference (in 13, out 7, rank 3, activation ${activation})`, async () => {
      const seed = freshSeed();
      const rng = new Rng(seed);
      const label = `seed ${seed}`;
      const [N, I, O, R] = [5, 13, 7, 3];
      const alpha = 5;
      const draw = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal());
      const [x, w, b, a, bb, cot] = [draw(2 * N * I), draw(I * O), draw(O), draw(I * R), draw(R * O), draw(2 * N * O)];
      const lin = new nn.Linear(I, O);
      const lora = nn.applyLora(lin, { rank: R, alpha });
      expect([...lora.layers.keys()]).toEqual(['']);
      expect(lora.namedParameters().map(([n]) => n)).toEqual(['lora_A', 'lora_B']);
      t.noGrad(() => t.tidy(() => {
        lin.weight.assign(t.tensor(w, { shape: [I, O] }));
        lin.bias!.assign(t.tensor(b, { shape: [O] }));
        lin.lora!.A.assign(t.tensor(a, { shape: [I, R] }));
        lin.lora!.B.assign(t.tensor(bb, { shape: [R, O] }));
      }));
      const gx = t.tensor(x, { shape: [2, N, I], requiresGrad: true });
      const y = t.tidy(() => {
        const out = lin.forward(gx, activation);
        out.backward(t.tensor(cot, { shape: out.shape }));
        return out;
      });
      const rx = new Ref(x, [2, N, I], { requiresGrad: true });
      const rA = new Ref(a, [I, R], { requiresGrad: true });
      const rB = new Ref(bb, [R, O], { requiresGrad: true });
      let ry = rx.matmul(new Ref(w, [I, O])).add(new Ref(b, [O])).add(rx.matmul(rA).matmul(rB).mul(alpha / R));
      if (activation === 'gelu') ry = ry.gelu();
      ry.backward(Float64Array.from(cot));
      expectClose(`${label}: forward`, await y.toArray(), ry.data, TOL.f32.forward);
      expectClose(`${label}: grad x`, await gx.grad!.toArray(), rx.grad!, TOL.f32.grad);
      expectClose(`${label}: grad A`, await lin.lora!.A.grad!.toArray(), rA.grad!, TOL.f32.grad);
      expectClose(`${label}: grad B`, await lin.lora!.B.grad!.toArray(), rB.grad!, TOL.f32.grad);
      expect(lin.weight.grad).toBeNull(); // frozen
      expect(lin.bias!.grad).toBeNull();
      // merged: the same function of x, and W + scale · A B against float64
      lora.merge();
      const merged = t.noGrad(() => t.tidy(() => lin.forward(gx, activation)));
      expectClose(`${label}: merged forward`, await merged.toArray(), ry.data, TOL.f32.forward);
      const wm = new Ref(w, [I, O]).add(new Ref(a, [I, R]).matmul(new Ref(bb, [R, O])).mul(alpha / R));
      expectClose(`${label}: merged weight`, await lin.weight.toArray(), wm.data, TOL.f32.forward);
      for (const z of [y, merged, gx]) z.dispose();
      lin.dispose();
    });
  }

  it('checkpoints: unmerged adapters are saved by name and load into a model adapted the same way; mismatches are refused', async () => {
    const m = new nn.VisionLanguageModel(tiny({ seed: 6, initStd: 0.1 }));
    const images = t.rand([3, 3, 16, 16], { seed: 8 });
    const lora = nn.applyLora(m, { rank: 2, seed: 3, include: (n) => n.startsWith('decoder.') });
    t.noGrad(() => t.tidy(() => lora.parameters().forEach((p, i) => { if (i % 2 === 1) p.assign(t.randn(p.shape, { std: 0.2, seed: i })); })));
    const want = await logitsOf(m, images);
    const dir = join(root, 'unmerged');
    const manifest = await nn.saveCheckpoint(dir, m);
    expect(manifest.lora?.['decoder.blocks.0.attn.qkv']).toEqual({ rank: 2, alpha: 4 });
    expect(Object.keys(manifest.lora!).length).toBe(8);
    expect(() => nn.loadVisionLanguageModel(dir)).toThrow(/loadCheckpoint: .* holds unmerged LoRA adapters on 8 layer\(s\) \(rank 2, alpha 4\): applyLora/);
    const m2 = new nn.VisionLanguageModel(tiny({ seed: 1 }));
    const other = nn.applyLora(m2, { rank: 2, alpha: 8, include: (n) => n.startsWith('decoder.') });
    expect(() => nn.loadCheckpoint(dir, m2)).toThrow(/differ from the model's: 'decoder.blocks.0.attn.qkv' rank 2, alpha 4 \(the model: rank 2, alpha 8\)/);
    other.dispose();
    nn.applyLora(m2, { rank: 2, include: (n) => n.startsWith('decoder.') });
    nn.loadCheckpoint(dir, m2);
    expect(await logitsOf(m2, images)).toEqual(want);
    // a plain checkpoint does not load into an adapted model
    lora.merge();
    const plain = join(root, 'merged');
    expect((await nn.saveCheckpoint(plain, m)).lora).toBeNull();
    expect(() => nn.loadCheckpoint(plain, m2)).toThrow(/the model has LoRA adapters on 8 layer\(s\) but .* has none: load the base weights before applyLora/);
    const m3 = nn.loadVisionLanguageModel(plain);
    expectClose('merged checkpoint logits', await logitsOf(m3, images), want, { rtol: 1e-4, atol: 1e-5 });
    for (const z of [m, m2, m3, images]) z.dispose();
  });
});
