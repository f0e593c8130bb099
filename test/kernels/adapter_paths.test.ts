// The code paths other adapters take, run here on lavapipe by overriding what the launchers see:
// no fixed subgroup size (the workgroup-memory reductions of the row, reduce and softmax kernels;
// the tiled matmul), a GPU-like adapter (one row per workgroup, at most 8 register slots per lane,
// constant slot loops), and both. Every op against the float64 reference through the one helper.
import { afterAll, beforeAll, describe, it } from 'vitest';
import * as t from '../../src/index.js';
import * as R from '../reference/ref.js';
import { setAdapterOverride } from '../../src/kernels/kernel.js';
import { helperTestOp, reportChecks } from '../helpers.js';

beforeAll(async () => {
  await t.init();
});
afterAll(() => {
  setAdapterOverride(null);
  reportChecks('adapter paths');
});

const OVERRIDES: [string, Parameters<typeof setAdapterOverride>[0]][] = [
  ['no fixed subgroup size', { subgroups: false }],
  ['GPU-like adapter', { cpu: false }],
  ['GPU-like adapter, no fixed subgroup size', { subgroups: false, cpu: false }],
];

for (const [name, override] of OVERRIDES) {
  describe(name, () => {
    const run = (fn: () => Promise<void>) => async (): Promise<void> => {
      setAdapterOverride(override);
      try {
        await fn();
      } finally {
        setAdapterOverride(null);
      }
    };
    // row lengths: scalar rows, a vec4 row in registers, a vec4 row with a partial last slot, and
    // rows long enough for the online / streaming forms
    const N = [33, 128, 260, 2500];
    it('softmax, log-softmax, logsumexp and their gradients', run(async () => {
      for (const n of N) {
        await helperTestOp(`softmax n=${n}`, [[3, n]], (x) => x.softmax(-1), (x) => x.softmax(-1));
        await helperTestOp(`logSoftmax n=${n}`, [[2, n]], (x) => x.logSoftmax(-1), (x) => x.logSoftmax(-1));
        await helperTestOp(`logsumexp n=${n}`, [[2, n]], (x) => x.logsumexp(-1), (x) => x.logsumexp(-1));
      }
    }));
    it('token log-probs and cross-entropy', run(async () => {
      for (const n of [33, 1188, 2500]) {
        await helperTestOp(`tokenLogProbs n=${n}`, [[3, n], { shape: [3], dtype: 'i32', low: 0, high: n }],
          (l, y) => t.tokenLogProbs(l, y), (l, y) => l.logSoftmax(-1).gather(1, y.unsqueeze(1)).squeeze(1));
      }
      await helperTestOp('crossEntropy', [[5, 64], { shape: [5], dtype: 'i32', low: 0, high: 64 }], (l, y) => t.crossEntropy(l, y), (l, y) => R.crossEntropy(l, y));
    }));
    it('layer norm (and the fused residual add + layer norm) forward and backward', run(async () => {
      for (const D of N) {
        await helperTestOp(`layerNorm D=${D}`, [[3, D], [D], [D]], (x, w, b) => t.layerNorm(x, [D], w, b), (x, w, b) => R.layerNorm(x, [D], w, b));
        await helperTestOp(`addLayerNorm D=${D}`, [[3, D], [3, D], [D], [D]], (x, y, w, b) => { const o = t.addLayerNorm(x, y, w, b); return o.out.add(o.sum.mul(0.37)); },
          (x, y, w, b) => R.layerNorm(x.add(y), [D], w, b).add(x.add(y).mul(0.37)));
      }
    }));
    it('reductions: rows, strided columns, whole tensors, sums of squares', run(async () => {
      for (const shape of [[257, 33], [64, 129], [5, 2500]]) {
        await helperTestOp(`sum axis 0 ${shape}`, [shape], (x) => x.sum(0), (x) => x.sum(0));
        await helperTestOp(`max axis 1 ${shape}`, [shape], (x) => x.max(1), (x) => x.max(1));
        await helperTestOp(`mean all ${shape}`, [shape], (x) => x.mean(), (x) => x.mean());
      }
      await helperTestOp('argmax', [{ shape: [7, 300], noGrad: true }], (x) => x.argmax(1), (x) => x.argmax(1), { grad: false });
      await helperTestOp('argmin', [{ shape: [7, 300], noGrad: true }], (x) => x.argmin(1), (x) => x.argmin(1), { grad: false });
      await helperTestOp('norm', [[7, 300]], (x) => x.norm(2, 1), (x) => x.norm(2, 1));
      await helperTestOp('sumOfSquares', [[300, 301], [33]], (a, b) => t.sumOfSquares([a, b]), (a, b) => a.mul(a).sum().add(b.mul(b).sum()), { grad: false });
    }));
    it('matmul and linear', run(async () => {
      await helperTestOp('matmul', [[37, 65], [65, 29]], (a, b) => a.matmul(b), (a, b) => a.matmul(b), { sumLength: 65 });
      await helperTestOp('linear gelu', [[9, 40], [40, 12], [12]], (x, w, b) => t.linear(x, w, b, 'gelu'), (x, w, b) => x.matmul(w).add(b).gelu(), { sumLength: 40 });
    }));
  });
}
