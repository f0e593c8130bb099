// Generation with a KV cache: the cached decode equals the uncached forward (teacher-forced logits
// and greedy samples, prompts of different lengths with images, left padding), stopping at
// end-of-sequence, seeded sampling, and the GPU sampler's temperature / top-k behaviour.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';
import { expectClose } from '../helpers.js';
import { Rng } from '../reference/ref.js';
import { seededKey, threefry2x32 } from '../../src/kernels/random.js';

const { nn } = t;
const IMG = 4;
const EOS = 2;

let model: t.nn.VisionLanguageModel;
let images: t.Tensor;
// three prompts of different lengths; two carry images (3 images in all)
const prompts = [[1, 10, IMG, 11, 12], [1, 13], [1, IMG, 14, IMG, 15, 16, 17]];

beforeAll(async () => {
  await t.init();
  model = new nn.VisionLanguageModel({ ...nn.preset('tiny', 50).model, initStd: 0.2, seed: 3 });
  const rng = new Rng(9);
  images = t.tensor(Float32Array.from({ length: 3 * 3 * 16 * 16 }, () => rng.uniform(0, 1)), { shape: [3, 3, 16, 16] });
});
afterAll(() => {
  model.dispose();
  images.dispose();
});

/** The images of prompt b (one per <image>), sliced from the batch's image tensor. */
function imagesOf(b: number): t.Tensor | null {
  const before = prompts.slice(0, b).reduce((n, p) => n + p.filter((x) => x === IMG).length, 0);
  const n = prompts[b].filter((x) => x === IMG).length;
  return n ? images.slice(0, before, before + n) : null;
}

/** Uncached logits (T, V) of one sequence on its own (no padding). */
async function soloLogits(tokens: number[], imgs: t.Tensor | null): Promise<Float32Array> {
  const out = t.noGrad(() => t.tidy(() => model.forward(model.toInputs(model.prepareBatch([tokens]), imgs))));
  const data = (await out.toArray()) as Float32Array;
  out.dispose();
  return data;
}

describe('generate', () => {
  it.each(['learned', 'rope'] as const)('cached decode steps give the logits of the uncached forward (teacher forcing, left-padded batch; %s positions)', async (positions) => {
    const saved = model;
    if (positions === 'rope') model = new nn.VisionLanguageModel({ ...nn.preset('tiny', 50).model, initStd: 0.2, seed: 3, positionEncoding: 'rope' });
    try {
        await cachedMatchesUncached();
    } finally {
      if (model !== saved) model.dispose();
      model = saved;
    }
  });

  async function cachedMatchesUncached(): Promise<void> {
    const V = 50;
    const cont = [[20, 21, 22], [23, 24, 25], [26, 27, 28]];
    const batch = model.prepareBatch(prompts, { padSide: 'left' });
    const cache = model.createCache(3, batch.T + 3);
    const stepLogits: Float32Array[] = [];
    model.eval();
    try {
      let logits = t.noGrad(() => t.tidy(() => model.forward(model.toInputs(batch, images), { cache, lastOnly: true })));
      for (let s = 0; s < 3; s++) {
        stepLogits.push((await logits.toArray()) as Float32Array);
        logits.dispose();
        const ids = Int32Array.from(cont, (c) => c[s]);
        const pos = Int32Array.from(batch.layouts, (l) => l.ids.length + s);
        logits = t.noGrad(() => t.tidy(() => model.forward({
          tokens: t.tensor(ids, { shape: [3, 1], dtype: 'i32' }), positions: t.tensor(pos, { shape: [3, 1], dtype: 'i32' }),
          images: null, gatherIndex: null, keyValid: null,
        }, { cache, lastOnly: true })));
      }
      stepLogits.push((await logits.toArray()) as Float32Array);
      logits.dispose();
      expect(cache.length).toBe(batch.T + 3);
    } finally {
      cache.dispose();
    }
    // each sequence alone, uncached, on prompt + continuation
    for (let b = 0; b < 3; b++) {
      const full = [...prompts[b], ...cont[b]];
      const solo = await soloLogits(full, imagesOf(b));
      const L = model.layout(prompts[b]).ids.length;
      for (let s = 0; s <= 3; s++) {
        const row = solo.subarray((L - 1 + s) * V, (L + s) * V);
        expectClose(`sequence ${b}, step ${s}`, stepLogits[s].subarray(b * V, (b + 1) * V), row, { rtol: 1e-4, atol: 2e-5 });
      }
    }
  }

  it('greedy generation equals argmax of the uncached forward, with the model log-probs', async () => {
    const res = await nn.generate(model, prompts, images, { maxNewTokens: 6, temperature: 0 });
    expect(res.tokens.map((r) => r.length)).toEqual([6, 6, 6]);
    expect(res.finished).toEqual([false, false, false]);
    for (let b = 0; b < 3; b++) {
      const full = [...prompts[b], ...res.tokens[b]];
      const solo = await soloLogits(full, imagesOf(b));
      const L = model.layout(prompts[b]).ids.length;
      for (let s = 0; s < 6; s++) {
        const row = solo.subarray((L - 1 + s) * 50, (L + s) * 50);
        let best = 0;
        for (let i = 1; i < 50; i++) if (row[i] > row[best]) best = i;
        expect(res.tokens[b][s], `sequence ${b} step ${s}`).toBe(best);
        const lse = Math.log(row.reduce((a, x) => a + Math.exp(x), 0));
        expect(res.logProbs[b][s]).toBeCloseTo(row[best] - lse, 4);
      }
    }
  });

  it('stops a sequence at end-of-sequence and the others at the length limit', async () => {
    const free = await nn.generate(model, prompts, images, { maxNewTokens: 5, temperature: 0 });
    const eos = free.tokens[1][2]; // pretend the third token of sequence 1 ends it
    const res = await nn.generate(model, prompts, images, { maxNewTokens: 5, temperature: 0, eosId: eos });
    const stopAt = (row: number[]): number => (row.indexOf(eos) < 0 ? row.length : row.indexOf(eos) + 1);
    for (let b = 0; b < 3; b++) {
      expect(res.tokens[b]).toEqual(free.tokens[b].slice(0, stopAt(free.tokens[b])));
      expect(res.finished[b]).toBe(free.tokens[b].includes(eos));
      expect(res.logProbs[b].length).toBe(res.tokens[b].length);
    }
    expect(res.finished[1]).toBe(true);
    expect(res.tokens[1].length).toBeLessThanOrEqual(3);
  });

  it('samples with temperature and top-k reproducibly from a seed, freeing its cache', async () => {
    const before = t.memoryStats().bytesInUse;
    const a = await nn.generate(model, prompts, images, { maxNewTokens: 4, temperature: 1.5, topK: 5, seed: 7, eosId: EOS });
    const b = await nn.generate(model, prompts, images, { maxNewTokens: 4, temperature: 1.5, topK: 5, seed: 7, eosId: EOS });
    expect(b).toEqual(a);
    expect(t.memoryStats().bytesInUse).toBe(before);
    const c = await nn.generate(model, prompts, images, { maxNewTokens: 4, temperature: 1.5, seed: 8 });
    expect(c.tokens).not.toEqual(a.tokens);
    for (const row of a.logProbs) for (const lp of row) expect(lp).toBeLessThan(0);
  });

  it('the GPU sampler: greedy, top-k support, suppressed ids, frequencies of softmax(logits / T), temperature-1 log-probs', async () => {
    const logits = [0.5, 2, 1, 2, -1];
    const lse = Math.log(logits.reduce((a, x) => a + Math.exp(x), 0));
    const n = 20000;
    const rows = t.tensor(Array.from({ length: n }, () => logits), { shape: [n, 5] });
    const draw = async (o: t.nn.SampleOptions, seed: number): Promise<{ counts: number[]; lp: Float32Array | Int32Array }> => {
      const s = nn.sampleTokens(rows, o, seed);
      const ids = await s.ids.toArray();
      const lp = await s.logProbs.toArray();
      s.ids.dispose();
      s.logProbs.dispose();
      const counts = [0, 0, 0, 0, 0];
      for (const id of ids) counts[id]++;
      ids.forEach((id, i) => expect(lp[i]).toBeCloseTo(logits[id] - lse, 5));
      return { counts, lp };
    };
    try {
      expect((await draw({ temperature: 0 }, 1)).counts).toEqual([0, n, 0, 0, 0]); // lowest id on ties
      expect((await draw({ temperature: 0, suppress: [1] }, 1)).counts).toEqual([0, 0, 0, n, 0]);
      // every count within 4.5 standard deviations of n·p (p ∝ exp(x / T) over the allowed ids)
      const expectFrequencies = (counts: number[], weights: number[]): void => {
        const total = weights.reduce((a, b) => a + b, 0);
        counts.forEach((c, i) => {
          const p = weights[i] / total;
          expect(Math.abs(c - n * p), `id ${i}: ${c} draws, expected ${(n * p).toFixed(0)}`).toBeLessThanOrEqual(4.5 * Math.sqrt(n * p * (1 - p)) + 1e-9);
        });
      };
      expectFrequencies((await draw({}, 2)).counts, logits.map((x) => Math.exp(x)));
      const topk = await draw({ topK: 3, temperature: 2 }, 3);
      expect(topk.counts[0] + topk.counts[4]).toBe(0); // outside the top 3
      expectFrequencies(topk.counts, logits.map((x, i) => (i === 0 || i === 4 ? 0 : Math.exp(x / 2))));
      const banned = await draw({ temperature: 0.7, suppress: [3] }, 4);
      expectFrequencies(banned.counts, logits.map((x, i) => (i === 3 ? 0 : Math.exp(x / 0.7))));
      // the same seed draws the same ids
      const again = nn.sampleTokens(rows, { temperature: 0.7, suppress: [3] }, 4);
      const ids = await again.ids.toArray();
      const counts = [0, 0, 0, 0, 0];
      for (const id of ids) counts[id]++;
      expect(counts).toEqual(banned.counts);
      again.ids.dispose();
      again.logProbs.dispose();
    } finally {
      rows.dispose();
    }
  });

  it('the fused decode step (ops.sampleInto) against a float64 Gumbel-max reference and the composed sampleTokens', async () => {
    const rng = new Rng(21);
    const S = 3;
    const { setAdapterOverride } = await import('../../src/kernels/kernel.js');
    // the adapter's own reductions, then the workgroup-memory ones other adapters use, and GPU-style one row per workgroup
    try {
    for (const override of [null, { subgroups: false as const }, { cpu: false }]) for (const [B, V] of [[3, 5], [7, 37], [64, 1188]]) {
      setAdapterOverride(override);
      for (const temperature of [0, 0.7, 1.3]) {
        const seed = rng.int(0, 1e6);
        const x = Array.from({ length: B * V }, () => 2 * rng.normal());
        const suppress = [rng.int(0, V - 1), V + 3]; // an id past V is ignored
        const maskArr = Array.from({ length: V }, (_, j) => (j === suppress[0] ? -Infinity : 0));
        const doneBefore = Array.from({ length: B }, () => (rng.uniform() < 0.3 ? 1 : 0));
        const eos = rng.int(0, V - 1);
        const logits = t.tensor(x, { shape: [B, V] });
        const mask = t.tensor(maskArr, { shape: [V] });
        const state = {
          ids: t.full([B, S], -7, { dtype: 'i32' }), logProbs: t.full([B, S], 9), done: t.tensor(doneBefore, { shape: [B] }), feed: t.full([B, 1], -5, { dtype: 'i32' }),
        };
        const step = 1;
        t.sampleInto(logits, mask, state, { step, temperature, seed, padId: 0, eosId: eos });
        const ids = await state.ids.toArray();
        const lps = await state.logProbs.toArray();
        const done = await state.done.toArray();
        const feed = await state.feed.toArray();
        const composed = nn.sampleTokens(logits, { temperature, suppress }, seed);
        const cids = await composed.ids.toArray();
        const key = seededKey(seed);
        for (let b = 0; b < B; b++) {
          // float64 reference: the scores, the best two, the log-prob
          const scores = Array.from({ length: V }, (_, j) => {
            const v = x[b * V + j] + maskArr[j];
            if (temperature === 0) return v;
            const u = (threefry2x32(b * V + j, 0, key[0], key[1])[0] >>> 8) * 2 ** -24;
            return v / temperature - Math.log(-Math.log(u));
          });
          const order = [...scores.keys()].sort((i, j) => scores[j] - scores[i] || i - j);
          const id = ids[b * S + step];
          const gap = scores[order[0]] - scores[order[1]];
          if (gap > 1e-4) {
            expect(id, `B ${B} V ${V} T ${temperature} row ${b}`).toBe(order[0]);
            expect(cids[b], 'the composed sampler draws the same id').toBe(id);
          } else expect(scores[order[0]] - scores[id]).toBeLessThanOrEqual(1e-4);
          expect(id).not.toBe(suppress[0]);
          const lse = Math.log(x.slice(b * V, b * V + V).reduce((a, v) => a + Math.exp(v), 0));
          expect(lps[b * S + step]).toBeCloseTo(x[b * V + id] - lse, 4);
          // the other columns are untouched; the bookkeeping follows the composed form
          for (const j of [0, 2]) {
            expect(ids[b * S + j]).toBe(-7);
            expect(lps[b * S + j]).toBe(9);
          }
          expect(feed[b]).toBe(doneBefore[b] ? 0 : id);
          expect(done[b]).toBe(doneBefore[b] || id === eos ? 1 : 0);
        }
        for (const v of [logits, mask, composed.ids, composed.logProbs, ...Object.values(state)]) v.dispose();
      }
    }
    } finally {
      setAdapterOverride(null);
    }
    // without eosId, done is left as it was; bad shapes are refused by name
    const logits = t.tensor([[1, 2, 3]]);
    const st = { ids: t.zeros([1, 2], { dtype: 'i32' }), logProbs: t.zeros([1, 2]), done: t.zeros([1]), feed: t.zeros([1, 1], { dtype: 'i32' }) };
    t.sampleInto(logits, null, st, { step: 0, temperature: 0, seed: 1, padId: 0 });
    expect(Array.from(await st.ids.toArray())).toEqual([2, 0]);
    expect(Array.from(await st.done.toArray())).toEqual([0]);
    expect(() => t.sampleInto(logits, null, st, { step: 2, temperature: 0, seed: 1, padId: 0 })).toThrow(/sampleInto: step 2 must index a column of ids/);
    expect(() => t.sampleInto(logits, t.zeros([4]), st, { step: 0, temperature: 0, seed: 1, padId: 0 })).toThrow(/sampleInto: mask must be a contiguous \(3,\) f32/);
    for (const v of [logits, ...Object.values(st)]) v.dispose();
  });

  it('refuses bad options', async () => {
    await expect(nn.generate(model, prompts, images, { maxNewTokens: -1 })).rejects.toThrow(/generate: maxNewTokens must be a non-negative integer/);
    await expect(nn.generate(model, prompts, null, { maxNewTokens: 2 })).rejects.toThrow(/no images were given/);
  });
});
