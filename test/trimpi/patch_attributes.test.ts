// Stage 0's patch-attribute loss: which object each patch shows (hand-made boxes), and the loss and
// its gradients (patch tokens and word embeddings) against a float64 reference on random inputs.
import { beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';
import { TrimpiError } from '../../src/index.js';
import { Rng } from '../reference/ref.js';
import { logSoftmax } from './reference.js';

const L = t.losses;

beforeAll(async () => {
  await t.init();
});

type Box = [number, number, number, number];
function scene(objects: { box: Box; depth: number; color?: t.data.ColorName }[], size = 32): t.data.Scene {
  const base = t.data.sampleScene(t.data.rng(0, 'patch-test'), { width: size, height: size });
  return {
    ...base,
    objects: objects.map((o, i) => ({ shape: 'cube', color: o.color ?? 'red', size: 'small', material: 'metal', x: i, z: 0, rotation: 0, box: o.box, depth: o.depth })),
  };
}

describe('patchOwners', () => {
  it('labels a patch with the nearest object covering a quarter of the smaller of patch and box', () => {
    // 32 × 32 image, 8 × 8 patches (a 4 × 4 grid)
    const s = scene([
      { box: [0, 0, 8, 8], depth: 10 }, // exactly patch 0
      { box: [4, 4, 12, 12], depth: 5 }, // 16 of its 64 pixels in each of patches 0, 1, 4, 5: a quarter
      { box: [25, 25, 27, 27], depth: 1 }, // a 2 × 2 speck inside patch 15
      { box: [16, 16, 20, 19], depth: 20 }, // 12 pixels, inside patch 10
    ]);
    const owners = Array.from(t.losses.patchOwners(s, 8));
    expect(owners).toEqual([
      1, 1, -1, -1,
      1, 1, -1, -1,
      -1, -1, 3, -1,
      -1, -1, -1, 2,
    ]);
    // stricter cover: the second object no longer reaches patches 1, 4, 5; patch 0 falls to the first
    expect(Array.from(t.losses.patchOwners(s, 8, 0.3)).slice(0, 6)).toEqual([0, -1, -1, -1, -1, -1]);
    expect(() => t.losses.patchOwners(s, 5)).toThrow(TrimpiError);
  });

  it('gives the targets of several images as rows into the flattened (N·P) patch tokens', () => {
    const a = scene([{ box: [0, 0, 8, 8], depth: 1, color: 'blue' }]);
    const b = scene([{ box: [24, 24, 32, 32], depth: 1, color: 'yellow' }]);
    const tg = t.losses.patchAttributeTargets([a, b], 8);
    expect(Array.from(tg.rows)).toEqual([0, 16 + 15]);
    const color = t.data.ATTRIBUTE_TYPES.indexOf('color');
    expect(Array.from(tg.labels[color])).toEqual([t.data.COLORS.indexOf('blue'), t.data.COLORS.indexOf('yellow')]);
  });
});

describe('patchAttributeLoss', () => {
  it('equals the float64 reference, with its gradients w.r.t. the patch tokens and the word embeddings', async () => {
    const r = new Rng(Date.now() % 100000);
    const [N, P, C, V] = [3, 5, 7, 13];
    const types = t.data.ATTRIBUTE_TYPES;
    const sizes = types.map((a) => t.data.ATTRIBUTE_VALUES[a].length);
    const wordIds = sizes.map((n) => Array.from({ length: n }, () => r.int(0, V)));
    const K = 9;
    const rows = Int32Array.from({ length: K }, () => r.int(0, N * P));
    const labels = sizes.map((n) => Int32Array.from({ length: K }, () => r.int(0, n)));
    const h = Array.from({ length: N * P * C }, () => r.normal());
    const E = Array.from({ length: V * C }, () => r.normal() * 0.5);
    // float64 reference: L = mean_a mean_k −log softmax(h_k · E_words)[y]; dL/dh_k = (1/4K) Σ_a (softmax − onehot) E_words,
    // dL/dE_w = (1/4K) Σ_a Σ_k (softmax − onehot)_w h_k
    let ref = 0;
    const grad = new Float64Array(N * P * C);
    const gradE = new Float64Array(V * C);
    sizes.forEach((n, a) => {
      for (let k = 0; k < K; k++) {
        const row = rows[k];
        const logits = wordIds[a].map((w) => {
          let s = 0;
          for (let c = 0; c < C; c++) s += h[row * C + c] * E[w * C + c];
          return s;
        });
        const lsm = logSoftmax(logits);
        ref -= lsm[labels[a][k]] / (K * types.length);
        lsm.forEach((l, j) => {
          const g = (Math.exp(l) - (j === labels[a][k] ? 1 : 0)) / (K * types.length);
          for (let c = 0; c < C; c++) {
            grad[row * C + c] += g * E[wordIds[a][j] * C + c];
            gradE[wordIds[a][j] * C + c] += g * h[row * C + c];
          }
        });
      }
    });
    const tokens = t.tensor(h, { shape: [N, P, C], requiresGrad: true });
    const emb = t.tensor(E, { shape: [V, C], requiresGrad: true });
    try {
      const out = t.tidy(() => {
        const res = L.patchAttributeLoss(tokens, emb, wordIds, { rows, labels });
        res.loss.backward();
        return res;
      });
      expect(out.metrics.patches).toBe(K);
      expect(await out.loss.item()).toBeCloseTo(ref, 4);
      const g = await tokens.grad!.toArray();
      grad.forEach((v, i) => expect(g[i]).toBeCloseTo(v, 4));
      const gE = await emb.grad!.toArray();
      gradE.forEach((v, i) => expect(gE[i]).toBeCloseTo(v, 4));
      const acc = await out.metrics.accuracy.toArray();
      expect(acc.length).toBe(4);
      acc.forEach((x) => expect(x >= 0 && x <= 1).toBe(true));
      out.loss.dispose();
      out.metrics.accuracy.dispose();
    } finally {
      tokens.dispose();
      emb.dispose();
    }
  });

  it('refuses mismatched shapes, missing labels and rows outside the tokens', () => {
    const tokens = t.zeros([2, 4, 3]);
    const emb = t.zeros([10, 3]);
    const ids = t.data.ATTRIBUTE_TYPES.map((a) => t.data.ATTRIBUTE_VALUES[a].map((_, j) => j));
    const one = { rows: Int32Array.of(1), labels: ids.map(() => Int32Array.of(0)) };
    try {
      expect(() => t.tidy(() => L.patchAttributeLoss(tokens, t.zeros([10, 4]), ids, one))).toThrow(/patchAttributeLoss/);
      expect(() => L.patchAttributeLoss(tokens, emb, ids, { rows: Int32Array.of(8), labels: one.labels })).toThrow(/outside/);
      expect(() => L.patchAttributeLoss(tokens, emb, ids, { rows: new Int32Array(0), labels: ids.map(() => new Int32Array(0)) })).toThrow(/no labelled patch/);
      expect(() => L.patchAttributeLoss(tokens, emb, ids.slice(1), one)).toThrow(/attribute types/);
    } finally {
      tokens.dispose();
      emb.dispose();
    }
  });
});
