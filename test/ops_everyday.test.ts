// The everyday ops added for PyTorch parity (issue 12): forward and gradient of each against the
// float64 reference (test/reference), at odd sizes (1, 7, 33, 257), broadcasts and strided views,
// with fresh random inputs. Every one runs on the GPU (no CPU fallback).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../src/index.js';
import { Tensor } from '../src/index.js';
import * as R from './reference/ref.js';
import { Ref } from './reference/ref.js';
import { helperTestOp, InputSpec, reportChecks } from './helpers.js';

beforeAll(async () => {
  await t.init();
});
afterAll(() => reportChecks('ops_everyday'));

const SHAPES: number[][] = [[1], [7], [33], [257], [7, 33], [3, 5, 7], [2, 1, 257]];
const AXES: [number[], number | number[] | undefined][] = [
  [[1], undefined], [[7], 0], [[33], -1], [[257], undefined], [[7, 33], 0], [[7, 33], 1], [[3, 5, 7], [0, 2]], [[3, 5, 7], 1],
  [[2, 257], -1], [[4, 3, 33], undefined],
];
const idx = (shape: number[], high: number, low = 0): InputSpec => ({ shape, dtype: 'i32', low, high });
const fixed = (values: number[], shape = [values.length]): InputSpec => ({ shape, values });

describe('unary', () => {
  const cases: [string, (x: Tensor) => Tensor, (x: Ref) => Ref, (s: number[]) => InputSpec][] = [
    ['log1p', (x) => x.log1p(), (x) => x.log1p(), (s) => ({ shape: s, low: -0.9, high: 3 })],
    ['expm1', (x) => x.expm1(), (x) => x.expm1(), (s) => s],
    ['logsigmoid', (x) => t.logsigmoid(x), (x) => x.logsigmoid(), (s) => ({ shape: s, low: -30, high: 30 })],
    ['softplus', (x) => t.softplus(x), (x) => x.softplus(), (s) => ({ shape: s, low: -30, high: 30 })],
    ['softplus beta 2 threshold 5', (x) => t.softplus(x, 2, 5), (x) => x.softplus(2, 5), (s) => ({ shape: s, low: -4, high: 4 })],
    ['erf', (x) => x.erf(), (x) => x.erf(), (s) => ({ shape: s, low: -4, high: 4 })],
    ['sin', (x) => x.sin(), (x) => x.sin(), (s) => ({ shape: s, low: -6, high: 6 })],
    ['cos', (x) => x.cos(), (x) => x.cos(), (s) => ({ shape: s, low: -6, high: 6 })],
    ['sign', (x) => x.sign(), (x) => x.sign(), (s) => s],
    ['floor', (x) => x.floor(), (x) => x.floor(), (s) => ({ shape: s, low: -20, high: 20 })],
    ['round', (x) => x.round(), (x) => x.round(), (s) => ({ shape: s, low: -20, high: 20 })],
  ];
  for (const [name, g, r, spec] of cases) {
    it(name, async () => {
      for (const s of SHAPES) await helperTestOp(name, [spec(s)], g, r);
      await helperTestOp(`${name} of transpose`, [spec([7, 33])], (x) => g(x.T), (x) => r(x.T));
    });
  }
  it('log1p and expm1 keep their relative accuracy near 0', async () => {
    const tiny: InputSpec = { shape: [257], low: -1e-3, high: 1e-3 };
    await helperTestOp('log1p near 0', [tiny], (x) => x.log1p(), (x) => x.log1p(), { forwardTol: { rtol: 1e-5, atol: 0 } });
    await helperTestOp('expm1 near 0', [tiny], (x) => x.expm1(), (x) => x.expm1(), { forwardTol: { rtol: 1e-5, atol: 0 } });
    await helperTestOp('log1p across its series bound', [{ shape: [257], low: -0.5, high: 0.6 }], (x) => x.log1p(), (x) => x.log1p(), { forwardTol: { rtol: 2e-6, atol: 0 } });
  });
  it('round halves to even; sign, floor and round of i32 stay i32', async () => {
    const halves = fixed([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.49, -3.51]);
    await helperTestOp('round halves', [halves], (x) => x.round(), (x) => x.round());
    const ints = t.tensor([-3, 0, 4], { dtype: 'i32' });
    for (const op of ['sign', 'floor', 'round'] as const) {
      const y = ints[op]();
      expect(y.dtype).toBe('i32');
      expect([...(await y.toArray())]).toEqual(op === 'sign' ? [-1, 0, 1] : [-3, 0, 4]);
    }
  });
  it('piecewise-constant ops give a zero gradient (as PyTorch)', async () => {
    const x = t.tensor([0.3, -1.7, 2.5], { requiresGrad: true });
    x.sign().add(x.floor()).add(x.round()).sum().backward();
    expect([...(await x.grad!.toArray())]).toEqual([0, 0, 0]);
  });
});

describe('lerp', () => {
  it('broadcasting tensors, number weight, number end', async () => {
    for (const [a, b, w] of [[[7], [7], [7]], [[33, 1], [1, 7], [7]], [[3, 5, 7], [5, 7], [3, 1, 1]], [[1], [257], [1]]]) {
      await helperTestOp('lerp', [a, b, w], (x, y, z) => t.lerp(x, y, z), (x, y, z) => x.lerp(y, z));
    }
    await helperTestOp('lerp number weight', [[7, 33], [7, 33]], (x, y) => x.lerp(y, 0.3), (x, y) => x.lerp(y, 0.3));
    await helperTestOp('lerp number end', [[33], [33]], (x, w) => x.lerp(2, w), (x, w) => x.lerp(2, w));
  });
});

describe('reductions', () => {
  it('std (correction 1 and 0)', async () => {
    for (const [shape, axis] of AXES) {
      if (shape.length === 1 && shape[0] === 1) continue;
      for (const keepdim of [false, true]) {
        await helperTestOp(`std axis ${axis} keepdim ${keepdim}`, [shape], (x) => x.std(axis, keepdim), (x) => x.std(axis, keepdim));
        await helperTestOp(`std biased axis ${axis}`, [shape], (x) => t.std(x, axis, keepdim, 0), (x) => x.std(axis, keepdim, 0));
      }
    }
  });
  it('argmin (first index on ties), argmax/argmin over the flattened tensor', async () => {
    for (const [shape] of AXES) {
      for (let axis = 0; axis < shape.length; axis++) {
        await helperTestOp('argmin', [{ shape, noGrad: true }], (x) => x.argmin(axis), (x) => x.argmin(axis), { grad: false });
        await helperTestOp('argmin keepdim', [{ shape, noGrad: true }], (x) => x.argmin(axis, true), (x) => x.argmin(axis, true), { grad: false });
      }
      await helperTestOp('argmin flat', [{ shape, noGrad: true }], (x) => x.argmin(), (x) => x.argmin(), { grad: false });
      await helperTestOp('argmax flat keepdim', [{ shape, noGrad: true }], (x) => t.argmax(x, undefined, true), (x) => x.argmax(undefined, true), { grad: false });
    }
    await helperTestOp('argmin ties', [{ ...fixed([1, 0, 0, 3, 2, 2, 2, 2], [2, 4]), noGrad: true }], (x) => x.argmin(1), (x) => x.argmin(1), { grad: false });
  });
  it('maxWithIndices / minWithIndices: values (gradient to the index) and indices', async () => {
    for (const [shape] of AXES) {
      for (let axis = 0; axis < shape.length; axis++) {
        for (const keepdim of [false, true]) {
          await helperTestOp('maxWithIndices values', [shape], (x) => x.maxWithIndices(axis, keepdim).values, (x) => x.maxWithIndices(axis, keepdim).values);
          await helperTestOp('minWithIndices values', [shape], (x) => t.minWithIndices(x, axis, keepdim).values, (x) => x.minWithIndices(axis, keepdim).values);
          await helperTestOp('maxWithIndices indices', [{ shape, noGrad: true }], (x) => x.maxWithIndices(axis, keepdim).indices,
            (x) => x.maxWithIndices(axis, keepdim).indices, { grad: false });
        }
      }
    }
    // ties: the whole gradient goes to the first index (max() splits it instead)
    await helperTestOp('maxWithIndices ties', [fixed([1, 3, 3, 0, 2, 2, 2, 2], [2, 4])], (x) => x.maxWithIndices(1).values, (x) => x.maxWithIndices(1).values);
  });
  it('prod over axes, with exact gradients through zeros', async () => {
    for (const [shape, axis] of AXES) {
      for (const keepdim of [false, true]) {
        await helperTestOp(`prod axis ${axis} keepdim ${keepdim}`, [{ shape, low: 0.6, high: 1.5 }], (x) => x.prod(axis, keepdim), (x) => x.prod(axis, keepdim));
      }
    }
    await helperTestOp('prod of a permuted view', [{ shape: [5, 7, 3], low: -1.5, high: 1.5 }], (x) => t.prod(x.permute([2, 0, 1]), [0, 2]), (x) => x.permute([2, 0, 1]).prod([0, 2]));
    await helperTestOp('prod with zeros', [fixed([1.5, 0, -2, 0.5, 3, 1.25, 0, 0, 2, -1, 4, 0.5], [3, 4])], (x) => x.prod(1), (x) => x.prod(1));
    const i = t.tensor([[2, -3], [4, 5]], { dtype: 'i32' }).prod(1);
    expect(i.dtype).toBe('i32');
    expect([...(await i.toArray())]).toEqual([-6, 20]);
  });
  it('norm: p = 2 (one pass), 1, 3, 0.5, ±Infinity, 0; zero vectors get a zero gradient', async () => {
    for (const [shape, axis] of AXES) {
      for (const keepdim of [false, true]) {
        await helperTestOp(`norm axis ${axis} keepdim ${keepdim}`, [shape], (x) => x.norm(2, axis, keepdim), (x) => x.norm(2, axis, keepdim));
      }
    }
    for (const p of [1, 3, 0.5, Infinity, -Infinity]) {
      await helperTestOp(`norm p=${p}`, [{ shape: [7, 33], awayFromZero: 0.05 }], (x) => t.norm(x, p, 1), (x) => x.norm(p, 1));
    }
    await helperTestOp('norm p=0', [fixed([0, 1, -2, 0, 0, 3], [2, 3])], (x) => x.norm(0, 1), (x) => x.norm(0, 1), { grad: false });
    await helperTestOp('norm of a transpose', [[33, 7]], (x) => x.T.norm(2, -1), (x) => x.T.norm(2, -1));
    const z = t.zeros([2, 3], { requiresGrad: true });
    z.norm(2, 1).sum().backward();
    expect([...(await z.grad!.toArray())]).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

describe('cumsum and topk', () => {
  it('cumsum along every axis, strided views, i32', async () => {
    for (const shape of SHAPES) {
      for (let axis = -1; axis < shape.length; axis++) {
        await helperTestOp(`cumsum axis ${axis}`, [shape], (x) => x.cumsum(axis), (x) => x.cumsum(axis));
      }
    }
    await helperTestOp('cumsum of a transpose', [[7, 33]], (x) => x.T.cumsum(1), (x) => x.T.cumsum(1));
    await helperTestOp('cumsum of a slice', [[5, 40]], (x) => t.cumsum(x.slice(1, 3, 36), 1), (x) => x.slice(1, 3, 36).cumsum(1));
    await helperTestOp('cumsum i32', [idx([3, 33], 10, -10)], (x) => x.cumsum(1), (x) => x.cumsum(1), { grad: false });
  });
  it('topk values (with gradient) and indices, largest and smallest, every axis', async () => {
    for (const shape of [[7], [33], [257], [7, 33], [3, 5, 7]]) {
      for (let axis = 0; axis < shape.length; axis++) {
        const n = shape[axis];
        for (const k of [...new Set([1, Math.min(3, n), n])]) {
          for (const largest of [true, false]) {
            const tag = `topk k=${k} axis ${axis} ${largest ? 'largest' : 'smallest'} ${JSON.stringify(shape)}`;
            await helperTestOp(`${tag} values`, [shape], (x) => x.topk(k, axis, largest).values, (x) => x.topk(k, axis, largest).values);
            await helperTestOp(`${tag} indices`, [{ shape, noGrad: true }], (x) => t.topk(x, k, axis, largest).indices, (x) => x.topk(k, axis, largest).indices, { grad: false });
          }
        }
      }
    }
    await helperTestOp('topk ties: lower index first', [fixed([2, 5, 2, 5, 1, 5])], (x) => x.topk(4).values, (x) => x.topk(4).values);
    await helperTestOp('topk ties indices', [{ ...fixed([2, 5, 2, 5, 1, 5]), noGrad: true }], (x) => x.topk(4).indices, (x) => x.topk(4).indices, { grad: false });
    await helperTestOp('topk of a transpose', [[33, 7]], (x) => x.T.topk(5, 1).values, (x) => x.T.topk(5, 1).values);
    const e = t.topk(t.ones([3, 4]), 0, 1);
    expect(e.values.shape).toEqual([3, 0]);
  });
  it('topk counts NaN as the largest', async () => {
    const x = t.tensor([1, NaN, 3, -2]);
    expect([...(await x.topk(2).indices.toArray())]).toEqual([1, 2]);
    expect([...(await x.topk(2, -1, false).indices.toArray())]).toEqual([3, 0]);
  });
});

describe('views, copies and joins', () => {
  it('split and chunk (views; gradient through each piece)', async () => {
    await helperTestOp('split size', [[7, 33]], (x) => t.concat(t.split(x, 3).map((p, i) => p.mul(i + 1)), 0),
      (x) => R.concat(R.split(x, 3).map((p, i) => p.mul(i + 1)), 0));
    await helperTestOp('split sections axis 1', [[7, 33]], (x) => t.concat(x.split([1, 20, 12], 1).map((p, i) => p.mul(i - 1)), 1),
      (x) => R.concat(R.split(x, [1, 20, 12], 1).map((p, i) => p.mul(i - 1)), 1));
    await helperTestOp('chunk', [[257]], (x) => t.concat(x.chunk(4).map((p, i) => p.mul(i + 1)), 0),
      (x) => R.concat(R.split(x, 65).map((p, i) => p.mul(i + 1)), 0));
    expect(t.chunk(t.zeros([7]), 3).map((p) => p.shape[0])).toEqual([3, 3, 1]);
    expect(t.split(t.zeros([2, 5]), [2, 3], 1).map((p) => p.shape)).toEqual([[2, 2], [2, 3]]);
  });
  it('flip along one or several axes, of strided views', async () => {
    await helperTestOp('flip 1-D', [[257]], (x) => x.flip(0), (x) => x.flip(0));
    await helperTestOp('flip [0, 2]', [[3, 5, 7]], (x) => x.flip([0, 2]), (x) => x.flip([0, 2]));
    await helperTestOp('flip -1 of transpose', [[7, 33]], (x) => t.flip(x.T, -1), (x) => x.T.flip(-1));
    await helperTestOp('flip times itself', [[2, 1, 257]], (x) => x.flip([1, 2]).mul(x), (x) => x.flip([1, 2]).mul(x));
    // innermost dims that are multiples of 4: the map kernel's runs of 4 step by the negative stride
    await helperTestOp('flip runs of 4', [[3, 8]], (x) => x.flip(1), (x) => x.flip(1));
    await helperTestOp('flip runs of 4, outer axis', [[5, 12]], (x) => x.flip([0, 1]), (x) => x.flip([0, 1]));
    const i = t.tensor([1, 2, 3], { dtype: 'i32' }).flip(0);
    expect([...(await i.toArray())]).toEqual([3, 2, 1]);
  });
  it('repeat and tile', async () => {
    await helperTestOp('repeat', [[3, 5]], (x) => x.repeat([2, 3]), (x) => x.repeat([2, 3]));
    await helperTestOp('repeat new dims', [[7]], (x) => x.repeat([3, 1, 2]), (x) => x.repeat([3, 1, 2]));
    await helperTestOp('repeat transpose', [[7, 3]], (x) => t.repeat(x.T, [1, 2]), (x) => x.T.repeat([1, 2]));
    await helperTestOp('tile short dims', [[2, 3, 5]], (x) => x.tile([2]), (x) => x.repeat([1, 1, 2]));
  });
  it('tril and triu with diagonals, batched, i32', async () => {
    for (const d of [-2, 0, 1, 40]) {
      await helperTestOp(`tril ${d}`, [[3, 7, 33]], (x) => x.tril(d), (x) => x.tril(d));
      await helperTestOp(`triu ${d}`, [[7, 8]], (x) => t.triu(x, d), (x) => x.triu(d));
    }
    await helperTestOp('tril of transpose', [[33, 7]], (x) => x.T.tril(), (x) => x.T.tril());
    expect([...(await t.ones([2, 2], { dtype: 'i32' }).triu().toArray())]).toEqual([1, 1, 0, 1]);
  });
});

describe('indexing', () => {
  it('oneHot', async () => {
    for (const [shape, C] of [[[7], 5], [[3, 11], 33], [[1], 1], [[2, 3], 4]] as [number[], number][]) {
      await helperTestOp(`oneHot ${C}`, [idx(shape, C)], (i) => t.oneHot(i, C), (i) => R.oneHot(i, C), { grad: false });
    }
    await helperTestOp('oneHot of a transposed index', [idx([4, 3], 6)], (i) => t.oneHot(i.T, 6), (i) => R.oneHot(i.T, 6), { grad: false });
    const f = t.oneHot(t.tensor([1], { dtype: 'i32' }), 3, { dtype: 'f32' });
    expect(f.dtype).toBe('f32');
    expect([...(await f.toArray())]).toEqual([0, 1, 0]);
    t.oneHot(t.tensor([3], { dtype: 'i32' }), 3);
    await expect(t.zeros([1]).toArray()).rejects.toThrow(/oneHot: an index was outside \[0, 3\)/);
  });
  it('scatterAdd with repeated indices, index smaller than src, along axis 0 and 1', async () => {
    await helperTestOp('scatterAdd axis 0', [[7, 5], idx([9, 5], 7), [9, 5]], (x, i, s) => t.scatterAdd(x, 0, i, s), (x, i, s) => R.scatterAdd(x, 0, i, s));
    await helperTestOp('scatterAdd axis 1, small index', [[4, 33], idx([3, 40], 33), [5, 41]], (x, i, s) => x.scatterAdd(1, i, s), (x, i, s) => R.scatterAdd(x, 1, i, s));
    await helperTestOp('scatterAdd 1-D', [[7], idx([257], 7), [257]], (x, i, s) => x.scatterAdd(0, i, s), (x, i, s) => R.scatterAdd(x, 0, i, s));
    t.scatterAdd(t.zeros([3]), 0, t.tensor([3], { dtype: 'i32' }), t.ones([1]));
    await expect(t.zeros([1]).toArray()).rejects.toThrow(/scatterAdd: an index was outside \[0, /);
  });
  it('embedding takes (ids, weight) as PyTorch', async () => {
    await helperTestOp('embedding', [idx([4, 9], 11), [11, 33]], (i, w) => t.embedding(i, w), (i, w) => R.embedding(i, w));
  });
});
