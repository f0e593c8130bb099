// Every op of the engine, forward and gradient, against the float64 reference (test/reference),
// at sizes 1, 7, 33, 257, broadcasting cases and strided views, with fresh random inputs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../src/index.js';
import { Tensor, TrimpiError } from '../src/index.js';
import * as R from './reference/ref.js';
import { Ref, Rng } from './reference/ref.js';
import { helperTestOp, InputSpec } from './helpers.js';
import { reportChecks } from './helpers.js';
import { setSoftmaxOnline } from '../src/kernels/softmax.js';

beforeAll(async () => {
  await t.init();
});
afterAll(() => reportChecks('ops'));

const SIZES = [1, 7, 33, 257];
const SHAPES: number[][] = [[1], [7], [33], [257], [7, 33], [3, 5, 7], [2, 1, 257]];

const pos = (shape: number[]): InputSpec => ({ shape, low: 0.2, high: 3 });
const away = (shape: number[]): InputSpec => ({ shape, awayFromZero: 1e-2 });

describe('unary', () => {
  const cases: [string, (x: Tensor) => Tensor, (x: Ref) => Ref, (s: number[]) => InputSpec][] = [
    ['neg', (x) => x.neg(), (x) => x.neg(), (s) => s],
    ['exp', (x) => x.exp(), (x) => x.exp(), (s) => s],
    ['log', (x) => x.log(), (x) => x.log(), pos],
    ['sqrt', (x) => x.sqrt(), (x) => x.sqrt(), pos],
    ['rsqrt', (x) => x.rsqrt(), (x) => x.rsqrt(), pos],
    ['tanh', (x) => x.tanh(), (x) => x.tanh(), (s) => s],
    ['sigmoid', (x) => x.sigmoid(), (x) => x.sigmoid(), (s) => s],
    ['relu', (x) => x.relu(), (x) => x.relu(), away],
    ['gelu', (x) => x.gelu(), (x) => x.gelu(), (s) => s],
    ['gelu tanh', (x) => x.gelu('tanh'), (x) => x.gelu('tanh'), (s) => s],
    ['silu', (x) => x.silu(), (x) => x.silu(), (s) => s],
    ['abs', (x) => x.abs(), (x) => x.abs(), away],
  ];
  for (const [name, g, r, spec] of cases) {
    it(name, async () => {
      for (const s of SHAPES) await helperTestOp(name, [spec(s)], g, r);
      // on a strided (transposed) view
      await helperTestOp(`${name} of transpose`, [spec([7, 33])], (x) => g(x.T), (x) => r(x.T));
    });
  }
  it('unary on large |x| stays finite', async () => {
    await helperTestOp('tanh/sigmoid/gelu wide', [{ shape: [257], low: -60, high: 60 }],
      (x) => x.tanh().add(x.sigmoid()).add(x.gelu()).add(x.silu()), (x) => x.tanh().add(x.sigmoid()).add(x.gelu()).add(x.silu()));
  });
});

describe('binary with broadcasting', () => {
  const PAIRS: [number[], number[]][] = [
    [[1], [1]], [[7], [7]], [[33], [1]], [[257], [257]], [[3, 1, 5], [4, 5]], [[7, 33], [33]], [[1], [7, 33]], [[2, 3, 4], [2, 1, 4]],
  ];
  const ops: [string, (a: Tensor, b: Tensor) => Tensor, (a: Ref, b: Ref) => Ref, (s: number[]) => InputSpec, (s: number[]) => InputSpec][] = [
    ['add', (a, b) => a.add(b), (a, b) => a.add(b), (s) => s, (s) => s],
    ['sub', (a, b) => a.sub(b), (a, b) => a.sub(b), (s) => s, (s) => s],
    ['mul', (a, b) => a.mul(b), (a, b) => a.mul(b), (s) => s, (s) => s],
    ['div', (a, b) => a.div(b), (a, b) => a.div(b), (s) => s, (s) => ({ shape: s, low: 0.5, high: 2 })],
    ['pow', (a, b) => a.pow(b), (a, b) => a.pow(b), pos, (s) => ({ shape: s, low: -2, high: 2 })],
    ['maximum', (a, b) => a.maximum(b), (a, b) => a.maximum(b), (s) => s, (s) => s],
    ['minimum', (a, b) => a.minimum(b), (a, b) => a.minimum(b), (s) => s, (s) => s],
  ];
  for (const [name, g, r, sa, sb] of ops) {
    it(name, async () => {
      for (const [a, b] of PAIRS) await helperTestOp(name, [sa(a), sb(b)], g, r);
      await helperTestOp(`${name} scalar`, [sa([7, 33])], (a) => g(a, t.tensor(2.5)), (a) => r(a, Ref.scalar(2.5)));
    });
  }
  it('scalar operands (numbers) on either side', async () => {
    await helperTestOp('x*3-1/x', [{ shape: [33], low: 0.5, high: 2 }], (x) => t.sub(x.mul(3), t.div(1, x)), (x) => x.mul(3).sub(Ref.scalar(1).div(x)));
    await helperTestOp('x^2', [[257]], (x) => x.pow(2), (x) => x.pow(2));
    await helperTestOp('x^3 negative base', [{ shape: [33], low: -2, high: -0.5 }], (x) => x.pow(3), (x) => x.pow(3));
    await helperTestOp('2^x', [[33]], (x) => t.pow(2, x), (x) => Ref.scalar(2).pow(x));
  });
  it('maximum/minimum ties split the gradient', async () => {
    await helperTestOp('maximum ties', [{ shape: [7], values: [1, 2, 3, 4, 5, 6, 7] }, { shape: [7], values: [1, 0, 3, 9, 5, 0, 7] }],
      (a, b) => a.maximum(b), (a, b) => a.maximum(b));
  });
  it('comparisons (no gradient, f32 0/1)', async () => {
    const cmp: [string, (a: Tensor, b: Tensor) => Tensor, (a: Ref, b: Ref) => Ref][] = [
      ['eq', (a, b) => a.eq(b), (a, b) => a.eq(b)], ['ne', (a, b) => a.ne(b), (a, b) => a.ne(b)],
      ['lt', (a, b) => a.lt(b), (a, b) => a.lt(b)], ['le', (a, b) => a.le(b), (a, b) => a.le(b)],
      ['gt', (a, b) => a.gt(b), (a, b) => a.gt(b)], ['ge', (a, b) => a.ge(b), (a, b) => a.ge(b)],
    ];
    for (const [name, g, r] of cmp) {
      for (const [a, b] of PAIRS) {
        // small integers so that equality happens
        await helperTestOp(name, [{ shape: a, low: 0, high: 3, noGrad: true }, { shape: b, low: 0, high: 3, noGrad: true }],
          (x, y) => g(x.cast('i32').cast('f32'), y.cast('i32').cast('f32')), (x, y) => r(floor(x), floor(y)), { grad: false });
      }
    }
  });
  it('where', async () => {
    for (const [a, b] of PAIRS) {
      await helperTestOp('where', [{ shape: a, low: -1, high: 1, noGrad: true }, a, b],
        (c, x, y) => t.where(c.gt(0), x, y), (c, x, y) => R.where(c.gt(0), x, y));
    }
    await helperTestOp('where scalar', [{ shape: [33], noGrad: true }, [33]], (c, x) => t.where(c.gt(0), x, 0), (c, x) => R.where(c.gt(0), x, 0));
  });
  it('clamp', async () => {
    for (const n of SIZES) {
      await helperTestOp('clamp', [{ shape: [n], low: -3, high: 3 }], (x) => x.clamp(-1, 1.5), (x) => x.clamp(-1, 1.5));
      await helperTestOp('clamp min', [[n]], (x) => x.clamp(0.1), (x) => x.clamp(0.1));
      await helperTestOp('clamp max', [[n]], (x) => x.clamp(undefined, -0.2), (x) => x.clamp(undefined, -0.2));
    }
  });
  it('maskedFill', async () => {
    await helperTestOp('maskedFill', [[7, 33], { shape: [1, 33], low: -1, high: 1, noGrad: true }],
      (x, m) => x.maskedFill(m.gt(0), -1e4), (x, m) => x.maskedFill(m.gt(0), -1e4));
    await helperTestOp('maskedFill causal', [[5, 5]], (x) => x.maskedFill(t.tensor(causal(5), { shape: [5, 5] }), -1e9),
      (x) => x.maskedFill(new Ref(causal(5), [5, 5]), -1e9));
  });
});

function floor(x: Ref): Ref {
  return new Ref(x.data.map(Math.floor), x.shape);
}
function causal(n: number): number[] {
  return Array.from({ length: n * n }, (_, k) => (k % n > Math.floor(k / n) ? 1 : 0));
}

describe('reductions', () => {
  const AXES: [number[], number | number[] | undefined][] = [
    [[1], undefined], [[7], 0], [[33], -1], [[257], undefined], [[7, 33], 0], [[7, 33], 1], [[3, 5, 7], [0, 2]], [[3, 5, 7], 1],
    [[2, 257], -1], [[4, 3, 33], undefined], [[300, 7], 0],
  ];
  const reds: [string, (x: Tensor, a: number | number[] | undefined, k: boolean) => Tensor, (x: Ref, a: number | number[] | undefined, k: boolean) => Ref][] = [
    ['sum', (x, a, k) => x.sum(a, k), (x, a, k) => x.sum(a, k)],
    ['mean', (x, a, k) => x.mean(a, k), (x, a, k) => x.mean(a, k)],
    ['max', (x, a, k) => x.max(a, k), (x, a, k) => x.max(a, k)],
    ['min', (x, a, k) => x.min(a, k), (x, a, k) => x.min(a, k)],
    ['var', (x, a, k) => x.var(a, k), (x, a, k) => x.var(a, k)],
    ['var biased', (x, a, k) => x.var(a, k, 0), (x, a, k) => x.var(a, k, 0)],
  ];
  for (const [name, g, r] of reds) {
    it(name, async () => {
      for (const [shape, axis] of AXES) {
        if (name.startsWith('var') && shape.length === 1 && shape[0] === 1) continue;
        for (const keepdim of [false, true]) await helperTestOp(`${name} axis ${axis} keepdim ${keepdim}`, [shape], (x) => g(x, axis, keepdim), (x) => r(x, axis, keepdim));
      }
      await helperTestOp(`${name} of permuted view`, [[5, 7, 3]], (x) => g(x.permute([2, 0, 1]), [0, 2], false), (x) => r(x.permute([2, 0, 1]), [0, 2], false));
    });
  }
  it('max gradient split among ties', async () => {
    await helperTestOp('max ties', [{ shape: [2, 4], values: [1, 3, 3, 0, 2, 2, 2, 2] }], (x) => x.max(1), (x) => x.max(1));
  });
  it('argmax (first index on ties)', async () => {
    for (const [shape] of AXES) {
      for (let axis = 0; axis < shape.length; axis++) {
        await helperTestOp('argmax', [{ shape, noGrad: true }], (x) => x.argmax(axis), (x) => x.argmax(axis), { grad: false });
        await helperTestOp('argmax keepdim', [{ shape, noGrad: true }], (x) => x.argmax(axis, true), (x) => x.argmax(axis, true), { grad: false });
      }
    }
    await helperTestOp('argmax ties', [{ shape: [2, 4], values: [1, 3, 3, 0, 2, 2, 2, 2], noGrad: true }], (x) => x.argmax(1), (x) => x.argmax(1), { grad: false });
  });
});

/**
 * The sumLength option of a matmul check (see helperTestOp): its longest sum, forward (K) or gradients
 * (M, N, times the broadcast batch dims), bounded by the largest matrix dim times every batch dim.
 */
function sums(...shapes: number[][]): { sumLength: number } {
  const matrixDims = shapes.flatMap((s) => s.slice(-2));
  const batch = shapes.flatMap((s) => s.slice(0, -2)).reduce((a, b) => a * b, 1);
  return { sumLength: Math.max(...matrixDims) * batch };
}

describe('row sums in the vec4 form', () => {
  // row mode (reductions longer than 32) over a contiguous, aligned block of reduced elements
  it('sum and mean over contiguous rows, several trailing axes, whole tensors and an aligned slice', async () => {
    await helperTestOp('row sum [3, 64]', [[3, 64]], (x) => x.sum(1), (x) => x.sum(1));
    await helperTestOp('row mean [2, 5, 1000]', [[2, 5, 1000]], (x) => x.mean(-1), (x) => x.mean(-1));
    await helperTestOp('sum of everything [16, 36]', [[16, 36]], (x) => x.sum(), (x) => x.sum());
    await helperTestOp('sum over axes [1, 2] of [3, 4, 12]', [[3, 4, 12]], (x) => x.sum([1, 2]), (x) => x.sum([1, 2]));
    await helperTestOp('row sum of a slice (offset 4, row stride 80)', [[3, 80]], (x) => x.slice(1, 4, 68).sum(1), (x) => x.slice(1, 4, 68).sum(1));
  });
});

describe('column sums in the vec4 form', () => {
  // thread mode (short reductions, or >= 64 strided columns on CPU adapters) with aligned columns
  it('sum and mean over rows of 16-byte aligned columns, incl. a strided slice', async () => {
    await helperTestOp('column sum [5, 16]', [[5, 16]], (x) => x.sum(0), (x) => x.sum(0));
    await helperTestOp('column sum [33, 64]', [[33, 64]], (x) => x.sum(0), (x) => x.sum(0));
    await helperTestOp('column mean [257, 96] keepdim', [[257, 96]], (x) => x.mean(0, true), (x) => x.mean(0, true));
    await helperTestOp('column sum of a slice (offset 4, row stride 80)', [[5, 80]], (x) => x.slice(1, 4, 68).sum(0), (x) => x.slice(1, 4, 68).sum(0));
  });
});

describe('sumOfSquares (gradient norms)', () => {
  it('sum over tensors of sum(x²): contiguous, strided and one-element tensors, large and small', async () => {
    await helperTestOp('sumOfSquares', [[7, 33], [257], [1], [5, 9]], (a, b, c, d) => t.sumOfSquares([a, b, c, d.T]),
      (a, b, c, d) => R.concat([a.reshape([-1]), b, c, d.T.reshape([-1])], 0).mul(R.concat([a.reshape([-1]), b, c, d.T.reshape([-1])], 0)).sum(), { grad: false });
    // large contiguous tensors are split into rows (4 x 22,575; 64 x 1,408), strided ones are not
    await helperTestOp('sumOfSquares large', [[300, 301], [128, 704]], (a, b) => t.sumOfSquares([a, b, a.T]),
      (a, b) => a.mul(a).sum().mul(2).add(b.mul(b).sum()), { grad: false });
  });
});

describe('matmul', () => {
  const CASES: [number[], number[]][] = [
    [[1, 1], [1, 1]], [[7, 33], [33, 1]], [[33, 7], [7, 33]], [[257, 33], [33, 7]], [[5, 257], [257, 3]], [[64, 64], [64, 64]],
    [[2, 7, 33], [2, 33, 5]], [[3, 1, 7, 9], [4, 9, 6]], [[7, 9], [3, 9, 2]], [[33], [33, 7]], [[7, 33], [33]], [[33], [33]],
  ];
  it('shapes, batches, broadcasting and 1-D operands', async () => {
    for (const [a, b] of CASES) await helperTestOp('matmul', [a, b], (x, y) => x.matmul(y), (x, y) => x.matmul(y), sums(a, b));
  });
  it('transposed operands (strided views, no copies)', async () => {
    await helperTestOp('matmul a^T b', [[33, 7], [33, 5]], (x, y) => x.T.matmul(y), (x, y) => x.T.matmul(y), sums([33, 7, 5]));
    await helperTestOp('matmul a b^T', [[7, 33], [5, 33]], (x, y) => x.matmul(y.T), (x, y) => x.matmul(y.T), sums([7, 33, 5]));
    // the shapes of a linear layer's dX = dY W^T (N % 4 == 0, M >= 16)
    await helperTestOp('matmul a b^T, N % 4 == 0', [[20, 33], [12, 33]], (x, y) => x.matmul(y.T), (x, y) => x.matmul(y.T), sums([20, 33, 12]));
    await helperTestOp('linear backward dX = dY W^T', [[3, 24, 16], [16, 8], [8]], (x, w, b) => t.linear(x, w, b), (x, w, b) => x.matmul(w).add(b), sums([72, 16, 8]));
    await helperTestOp('matmul slices', [[9, 40], [40, 12]], (x, y) => x.slice(1, 3, 36).matmul(y.slice(0, 3, 36)), (x, y) => x.slice(1, 3, 36).matmul(y.slice(0, 3, 36)), sums([9, 40, 12]));
  });
});

describe('matmul kernel variants (forced), odd sizes, transposes, split-K, fused epilogue', () => {
  const SHAPES: [number[], number[]][] = [
    [[1, 1], [1, 1]], [[7, 33], [33, 5]], [[33, 7], [7, 33]], [[257, 33], [33, 7]], [[5, 257], [257, 3]], [[64, 64], [64, 64]],
    [[3, 9, 16], [3, 16, 12]], [[2, 1, 7, 9], [3, 9, 6]], [[3, 1030], [1030, 5]],
  ];
  const VARIANTS: t.MatmulConfig['variant'][] = ['simd', 'tiled', 'gemv'];
  afterAll(() => t.setMatmulConfig(null));
  for (const variant of VARIANTS) {
    it(`${variant}`, async () => {
      try {
      t.setMatmulConfig({ variant });
      for (const [a, b] of SHAPES) {
        if (variant === 'gemv' && a[a.length - 2] > 4) continue;
        await helperTestOp(`matmul ${variant}`, [a, b], (x, y) => x.matmul(y), (x, y) => x.matmul(y), sums(a, b));
      }
      if (variant !== 'gemv') {
        await helperTestOp(`matmul ${variant} a^T b`, [[33, 7], [33, 12]], (x, y) => x.T.matmul(y), (x, y) => x.T.matmul(y), sums([33, 7, 12]));
        await helperTestOp(`matmul ${variant} a b^T`, [[7, 32], [12, 32]], (x, y) => x.matmul(y.T), (x, y) => x.matmul(y.T), sums([7, 32, 12]));
        await helperTestOp(`matmul ${variant} slices`, [[9, 40], [40, 12]], (x, y) => x.slice(1, 3, 36).matmul(y.slice(0, 3, 36)), (x, y) => x.slice(1, 3, 36).matmul(y.slice(0, 3, 36)), sums([9, 40, 12]));
        t.setMatmulConfig({ variant, splits: 3 });
        await helperTestOp(`matmul ${variant} split-K`, [[6, 301], [301, 10]], (x, y) => x.matmul(y), (x, y) => x.matmul(y), sums([6, 301, 10]));
        await helperTestOp(`linear ${variant} split-K gelu`, [[6, 301], [301, 10], [10]], (x, w, b) => t.noGrad(() => t.linear(x, w, b, 'gelu')),
          (x, w, b) => x.matmul(w).add(b).gelu(), { grad: false, ...sums([6, 301, 10]) });
      }
      for (const rb of variant === 'simd' ? [1, 4] : [1]) {
        t.setMatmulConfig({ variant, rb, tnc: 1 });
        await helperTestOp(`matmul ${variant} rb ${rb}`, [[37, 20], [20, 44]], (x, y) => x.matmul(y), (x, y) => x.matmul(y), sums([37, 20, 44]));
      }
      } finally {
        t.setMatmulConfig(null);
      }
    });
  }
  it('linear: fused bias + GELU forward (no grad) and the recorded path with gradients', async () => {
    for (const [x, K, N] of [[[7, 33], 33, 5], [[2, 3, 16], 16, 12], [[1, 8], 8, 1]] as [number[], number, number][]) {
      await helperTestOp('linear gelu', [x, [K, N], [N]], (a, w, b) => t.linear(a, w, b, 'gelu'), (a, w, b) => a.matmul(w).add(b).gelu());
      await helperTestOp('linear no bias', [x, [K, N]], (a, w) => t.linear(a, w), (a, w) => a.matmul(w));
      await helperTestOp('linear fused (no grad)', [x, [K, N], [N]], (a, w, b) => t.noGrad(() => t.linear(a, w, b, 'gelu')),
        (a, w, b) => a.matmul(w).add(b).gelu(), { grad: false });
    }
    await helperTestOp('linear of transposed x', [[16, 7], [16, 5], [5]], (a, w, b) => t.linear(a.T, w, b), (a, w, b) => a.T.matmul(w).add(b));
  });
});

describe('softmax family', () => {
  const CASES: [number[], number][] = [[[1], -1], [[7], 0], [[33, 257], -1], [[7, 33], 0], [[3, 5, 7], 1], [[2, 1000], -1]];
  for (const [name, g, r] of [
    ['softmax', (x: Tensor, a: number) => x.softmax(a), (x: Ref, a: number) => x.softmax(a)],
    ['logSoftmax', (x: Tensor, a: number) => x.logSoftmax(a), (x: Ref, a: number) => x.logSoftmax(a)],
    ['logsumexp', (x: Tensor, a: number) => x.logsumexp(a), (x: Ref, a: number) => x.logsumexp(a)],
  ] as const) {
    it(name, async () => {
      for (const [shape, axis] of CASES) await helperTestOp(`${name} axis ${axis}`, [shape], (x) => g(x, axis), (x) => r(x, axis));
      await helperTestOp(`${name} large logits`, [{ shape: [4, 33], low: -80, high: 80 }], (x) => g(x, -1), (x) => r(x, -1));
    });
  }
  it('logsumexp over several axes, keepdim', async () => {
    await helperTestOp('logsumexp [0,2]', [[3, 5, 7]], (x) => x.logsumexp([0, 2], true), (x) => x.logsumexp([0, 2], true));
    await helperTestOp('logsumexp all', [[4, 33]], (x) => x.logsumexp([0, 1]), (x) => x.logsumexp([0, 1]));
  });
  it('both kernel forms: rows in registers (vec4 or scalar) and the online form for long rows', async () => {
    // on lavapipe rows up to 2,048 take the register form, on GPUs up to 1,024; 2,500 is online on both
    const forms: [string, boolean][] = [['registers', false], ['online (forced)', true]];
    for (const [form, online] of forms) {
      setSoftmaxOnline(online);
      try {
        for (const n of [8, 33, 1188, 2500]) {
          await helperTestOp(`softmax ${form} n=${n}`, [[3, n]], (x) => x.softmax(-1), (x) => x.softmax(-1));
          await helperTestOp(`logSoftmax ${form} n=${n}`, [[2, n]], (x) => x.logSoftmax(-1), (x) => x.logSoftmax(-1));
          await helperTestOp(`logsumexp ${form} n=${n}`, [[2, n]], (x) => x.logsumexp(-1), (x) => x.logsumexp(-1));
          await helperTestOp(`tokenLogProbs ${form} n=${n}`, [[3, n], { shape: [3], dtype: 'i32', low: 0, high: n }],
            (l, y) => t.tokenLogProbs(l, y), (l, y) => l.logSoftmax(-1).gather(1, y.unsqueeze(1)).squeeze(1));
        }
        // a row view at an offset that is not a multiple of 4 (scalar loads even though n % 4 == 0)
        await helperTestOp(`softmax ${form} offset 1`, [[25]], (x) => x.slice(0, 1, 25).reshape([3, 8]).softmax(-1),
          (x) => x.slice(0, 1, 25).reshape([3, 8]).softmax(-1));
      } finally {
        setSoftmaxOnline(false);
      }
    }
  });
  it('fully masked rows give no NaN in softmax', async () => {
    await helperTestOp('softmax masked', [[3, 7]], (x) => x.maskedFill(t.tensor([0, 1, 0], { shape: [3, 1] }), -Infinity).softmax(-1).mul(1),
      (x) => R.where(new Ref([0, 1, 0], [3, 1]), 0, x.softmax(-1)).mul(R.where(new Ref([0, 1, 0], [3, 1]), 0, 1)), { grad: false });
  });
});

describe('layerNorm', () => {
  it('with and without affine, odd sizes, 2-D normalized shape', async () => {
    for (const D of SIZES.filter((d) => d > 1)) {
      await helperTestOp(`layerNorm D=${D}`, [[5, D], [D], [D]], (x, w, b) => t.layerNorm(x, [D], w, b), (x, w, b) => R.layerNorm(x, [D], w, b));
      await helperTestOp(`layerNorm no affine D=${D}`, [[3, 2, D]], (x) => t.layerNorm(x, [D]), (x) => R.layerNorm(x, [D]));
    }
    await helperTestOp('layerNorm 2-D shape', [[4, 3, 11], [3, 11], [3, 11]], (x, w, b) => t.layerNorm(x, [3, 11], w, b), (x, w, b) => R.layerNorm(x, [3, 11], w, b));
    // D = 128, 260: the register form with vec4 rows (no tail / a partial last slot); 2500: the
    // streaming form (too long for the registers)
    for (const D of [128, 260, 2500]) {
      await helperTestOp(`layerNorm D=${D}`, [[3, D], [D], [D]], (x, w, b) => t.layerNorm(x, [D], w, b), (x, w, b) => R.layerNorm(x, [D], w, b));
    }
    await helperTestOp('layerNorm weight only', [[6, 33], [33]], (x, w) => t.layerNorm(x, [33], w), (x, w) => R.layerNorm(x, [33], w));
    await helperTestOp('layerNorm of transpose', [[33, 6], [33], [33]], (x, w, b) => t.layerNorm(x.T, [33], w, b), (x, w, b) => R.layerNorm(x.T, [33], w, b));
  });

  it('addLayerNorm (residual add + layer norm in one kernel): both outputs and their gradients, against the reference and the unfused ops', async () => {
    // the loss reads both outputs, so the gradient flows through the norm and around it (the residual stream)
    const both = (o: { sum: t.Tensor; out: t.Tensor }): t.Tensor => o.out.add(o.sum.mul(0.37));
    // 7, 33: odd rows; 128, 260: the register form with vec4 rows; 2500: the streaming form
    for (const D of [7, 33, 128, 260, 2500]) {
      await helperTestOp(`addLayerNorm D=${D}`, [[2, 3, D], [2, 3, D], [D], [D]], (x, y, w, b) => both(t.addLayerNorm(x, y, w, b)),
        (x, y, w, b) => R.layerNorm(x.add(y), [D], w, b).add(x.add(y).mul(0.37)));
    }
    await helperTestOp('addLayerNorm no affine, transposed x', [[33, 5], [5, 33]], (x, y) => both(t.addLayerNorm(x.T, y, null, null)),
      (x, y) => R.layerNorm(x.T.add(y), [33]).add(x.T.add(y).mul(0.37)));
    // the fused kernel computes what add then layerNorm compute, bit for bit
    for (const D of [33, 128, 2500]) {
      const [x, y, w, b] = [t.randn([4, D]), t.randn([4, D]), t.randn([D]), t.randn([D])];
      const fused = t.addLayerNorm(x, y, w, b, 1e-5);
      const sum = t.add(x, y);
      const out = t.layerNorm(sum, [D], w, b, 1e-5);
      expect(await fused.sum.toArray()).toEqual(await sum.toArray());
      expect(await fused.out.toArray()).toEqual(await out.toArray());
      for (const z of [x, y, w, b, fused.sum, fused.out, sum, out]) z.dispose();
    }
    const x = t.randn([2, 8]);
    expect(() => t.addLayerNorm(x, t.randn([2, 4]), null, null)).toThrow(/addLayerNorm: x and y must have one shape \(no broadcasting\)/);
    expect(() => t.addLayerNorm(x, x, t.randn([4]), null)).toThrow(/addLayerNorm: weight of shape \[4\] must be \[8\]/);
  });
});

describe('rope (rotary position embedding)', () => {
  // tables from arbitrary angles (not only position · θ): cos (B, 1, T, D/2), sinSigned (B, 1, T, 2, D/2)
  const tables = (B: number, T: number, half: number, seed: number): { cos: number[]; sin: number[] } => {
    const r = new Rng(seed);
    const angles = Array.from({ length: B * T * half }, () => r.uniform(-4, 4));
    return { cos: angles.map(Math.cos), sin: angles.map(Math.sin) };
  };
  const gpuTables = (B: number, T: number, half: number, tb: { cos: number[]; sin: number[] }): { cos: t.Tensor; sinSigned: t.Tensor } => {
    const signed: number[] = [];
    for (let i = 0; i < B * T; i++) for (const sg of [-1, 1]) for (let j = 0; j < half; j++) signed.push(sg * tb.sin[i * half + j]);
    return { cos: t.tensor(tb.cos, { shape: [B, 1, T, half] }), sinSigned: t.tensor(signed, { shape: [B, 1, T, 2, half] }) };
  };
  // the reference: halves x₁, x₂ of D → (x₁ cos − x₂ sin, x₂ cos + x₁ sin)
  const refRope = (x: Ref, B: number, T: number, half: number, tb: { cos: number[]; sin: number[] }): Ref => {
    const c = new Ref(tb.cos, [B, 1, T, half]);
    const sn = new Ref(tb.sin, [B, 1, T, half]);
    const [x1, x2] = R.split(x, half, 3);
    return R.concat([x1.mul(c).sub(x2.mul(sn)), x2.mul(c).add(x1.mul(sn))], 3);
  };

  it('forward and gradient against the reference: contiguous, a strided view of a fused projection, odd sizes', async () => {
    for (const [B, H, T, D] of [[1, 1, 1, 2], [2, 3, 5, 8], [3, 2, 7, 34], [1, 4, 33, 64]]) {
      const half = D / 2;
      const tb = tables(B, T, half, B * 100 + D);
      await helperTestOp(`rope ${[B, H, T, D]}`, [[B, H, T, D]], (x) => {
        const g = gpuTables(B, T, half, tb);
        return t.rope(x, g.cos, g.sinSigned);
      }, (x) => refRope(x, B, T, half, tb));
      // as the attention uses it: heads sliced out of a (B, T, 3·H·D) projection and permuted (strides, an offset)
      await helperTestOp(`rope of a qkv slice ${[B, H, T, D]}`, [[B, T, 3 * H * D]], (qkv) => {
        const g = gpuTables(B, T, half, tb);
        const k = t.permute(t.reshape(t.slice(qkv, 2, H * D, 2 * H * D), [B, T, H, D]), [0, 2, 1, 3]);
        return t.rope(k, g.cos, g.sinSigned);
      }, (qkv) => refRope(qkv.slice(2, H * D, 2 * H * D).reshape([B, T, H, D]).permute([0, 2, 1, 3]), B, T, half, tb));
    }
  });

  it('ropeInto writes the rotation into a strided view (a KV cache\'s slots) and leaves the rest alone', async () => {
    const [B, H, T, D, cap] = [2, 3, 4, 8, 7];
    const g = gpuTables(B, T, D / 2, tables(B, T, D / 2, 9));
    const x = t.permute(t.randn([B, T, H, D]), [0, 2, 1, 3]);
    const cache = t.randn([2, B, H, cap, D]);
    const before = await cache.toArray();
    const slots = t.reshape(t.slice(t.slice(cache, 0, 0, 1), 3, 2, 2 + T), [B, H, T, D]);
    t.noGrad(() => t.ropeInto(slots, x, g.cos, g.sinSigned));
    const want = await t.rope(x, g.cos, g.sinSigned).toArray();
    const after = await cache.toArray();
    let k = 0;
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let p = 0; p < cap; p++) for (let d = 0; d < D; d++) {
      const i = (((0 * B + b) * H + h) * cap + p) * D + d;
      if (p >= 2 && p < 2 + T) expect(after[i]).toBe(want[((b * H + h) * T + (p - 2)) * D + d]);
      else expect(after[i]).toBe(before[i]);
      k++;
    }
    // the values' half of the cache is untouched
    expect(Array.from(after.slice(B * H * cap * D))).toEqual(Array.from(before.slice(B * H * cap * D)));
    expect(k).toBe(B * H * cap * D);
    const learn = t.randn([B, H, T, D]);
    learn.requiresGrad = true;
    expect(() => t.ropeInto(slots, learn, g.cos, g.sinSigned)).toThrow(/ropeInto: an in-place write is not recorded for backward/);
    expect(() => t.ropeInto(t.randn([B, H, T, 4]), x, g.cos, g.sinSigned)).toThrow(/ropeInto: dst .* must have the shape of x/);
  });

  it('refuses odd head sizes, mismatched tables and tables that require a gradient', () => {
    const x = t.randn([2, 3, 4, 8]);
    const g = gpuTables(2, 4, 4, tables(2, 4, 4, 1));
    expect(() => t.rope(t.randn([2, 3, 4, 7]), g.cos, g.sinSigned)).toThrow(/rope: x must be \(B, H, T, D\) with D even/);
    expect(() => t.rope(x, t.randn([2, 1, 4, 3]), g.sinSigned)).toThrow(/rope: cos must be \(B, 1, T, D\/2\) = \[2, 1, 4, 4\]/);
    expect(() => t.rope(x, g.cos, t.randn([2, 1, 4, 4]))).toThrow(/rope: sinSigned must be \(B, 1, T, 2, D\/2\) = \[2, 1, 4, 2, 4\]/);
    const learnt = t.randn([2, 1, 4, 4]);
    learnt.requiresGrad = true;
    expect(() => t.rope(x, learnt, g.sinSigned)).toThrow(/rope: the rotary tables are constants/);
  });
});

describe('views and joins', () => {
  it('reshape, permute, transpose, slice, expand, squeeze, unsqueeze, flatten, contiguous', async () => {
    await helperTestOp('reshape', [[6, 35]], (x) => x.reshape([5, -1, 7]).mul(1), (x) => x.reshape([5, -1, 7]).mul(1));
    await helperTestOp('permute+reshape', [[3, 5, 7]], (x) => x.permute([2, 0, 1]).reshape([7, 15]).mul(1), (x) => x.permute([2, 0, 1]).reshape([7, 15]).mul(1));
    await helperTestOp('transpose', [[7, 33]], (x) => x.transpose(0, 1).contiguous(), (x) => x.transpose(0, 1));
    await helperTestOp('slice', [[7, 33]], (x) => x.slice(1, 3, -5).mul(2), (x) => x.slice(1, 3, -5).mul(2));
    await helperTestOp('slice of slice', [[257]], (x) => x.slice(0, 10, 200).slice(0, -50).exp(), (x) => x.slice(0, 10, 200).slice(0, -50, 190).exp());
    await helperTestOp('expand', [[3, 1, 7]], (x) => x.expand([2, 3, 5, 7]).mul(1), (x) => x.expand([2, 3, 5, 7]).mul(1));
    await helperTestOp('squeeze/unsqueeze', [[3, 1, 7]], (x) => x.squeeze(1).unsqueeze(0).mul(1), (x) => x.squeeze(1).unsqueeze(0).mul(1));
    await helperTestOp('flatten', [[3, 5, 7]], (x) => x.T.flatten().mul(1), (x) => x.T.flatten().mul(1));
  });
  it('contiguous maps in the vec4 form: binary, scalar and number operands, i32 casts, aligned and unaligned offsets', async () => {
    await helperTestOp('vec4: binary', [[4, 8], [4, 8]], (a, b) => a.mul(b).add(a), (a, b) => a.mul(b).add(a));
    await helperTestOp('vec4: broadcast scalar and number', [[12], [1]], (a, b) => a.sub(b).div(3).gelu(), (a, b) => a.sub(b).div(3).gelu());
    await helperTestOp('vec4: i32 operand cast to f32', [[16], { shape: [16], dtype: 'i32', low: -5, high: 5 }], (a, k) => a.mul(k), (a, k) => a.mul(k));
    await helperTestOp('vec4: where on an i32 mask', [{ shape: [8], dtype: 'i32', low: 0, high: 2 }, [8], [8]], (c, a, b) => t.where(c, a, b), (c, a, b) => R.where(c, a, b));
    await helperTestOp('vec4: aligned slice (offset 4)', [[20]], (x) => x.slice(0, 4, 20).exp(), (x) => x.slice(0, 4, 20).exp());
    await helperTestOp('vec4: unaligned slice (offset 1, scalar form)', [[17]], (x) => x.slice(0, 1, 17).exp(), (x) => x.slice(0, 1, 17).exp());
    expect([...(await t.arange(0, 8).toArray())]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]); // reads its offset o0: scalar form
  });
  it('strided maps in runs of 4 along the innermost dim (transposes, broadcasts, slices, strided outputs)', async () => {
    await helperTestOp('runs: transpose', [[8, 12]], (x) => x.T.mul(2), (x) => x.T.mul(2));
    await helperTestOp('runs: broadcast add', [[5, 1], [1, 8]], (a, b) => a.add(b), (a, b) => a.add(b));
    await helperTestOp('runs: last-dim slice (offset 2, row stride 12)', [[6, 12]], (x) => x.slice(1, 2, 10).exp(), (x) => x.slice(1, 2, 10).exp());
    await helperTestOp('runs: permute + contiguous operand', [[4, 6, 8], [6, 4, 8]], (a, b) => a.permute([1, 0, 2]).mul(b), (a, b) => a.permute([1, 0, 2]).mul(b));
    // the slice's gradient is written into a strided region of zeros (a strided output)
    await helperTestOp('runs: slice backward', [[5, 16]], (x) => x.slice(1, 4, 12).square(), (x) => x.slice(1, 4, 12).mul(x.slice(1, 4, 12)));
    await helperTestOp('runs: rank 4 with a 4-wide innermost dim', [[3, 2, 5, 4]], (x) => x.permute([2, 0, 1, 3]).contiguous(), (x) => x.permute([2, 0, 1, 3]));
  });
  it('concat and stack', async () => {
    await helperTestOp('concat axis 0', [[1, 7], [7, 7], [33, 7]], (a, b, c) => t.concat([a, b, c], 0), (a, b, c) => R.concat([a, b, c], 0));
    await helperTestOp('concat middle', [[2, 3, 5], [2, 7, 5]], (a, b) => t.concat([a, b], 1), (a, b) => R.concat([a, b], 1));
    await helperTestOp('concat last, strided', [[5, 3], [4, 5]], (a, b) => t.concat([a, b.T], -1), (a, b) => R.concat([a, b.T], -1));
    await helperTestOp('stack', [[3, 5], [3, 5], [3, 5]], (a, b, c) => t.stack([a, b, c], 1), (a, b, c) => R.stack([a, b, c], 1));
  });
});

describe('indexing', () => {
  it('indexSelect with repeated indices (scatter-add backward)', async () => {
    for (const [shape, axis, n] of [[[7, 33], 0, 20], [[5, 257], 1, 300], [[3, 4, 5], 1, 9], [[1, 1], 0, 5]] as [number[], number, number][]) {
      await helperTestOp(`indexSelect axis ${axis}`, [shape, { shape: [n], dtype: 'i32', low: 0, high: shape[axis] }],
        (x, i) => x.indexSelect(axis, i), (x, i) => x.indexSelect(axis, i));
    }
  });
  it('embedding', async () => {
    await helperTestOp('embedding', [[11, 33], { shape: [4, 9], dtype: 'i32', low: 0, high: 11 }], (w, i) => t.embedding(i, w), (w, i) => R.embedding(i, w));
  });
  it('gather', async () => {
    await helperTestOp('gather axis 1', [[5, 7], { shape: [5, 9], dtype: 'i32', low: 0, high: 7 }], (x, i) => x.gather(1, i), (x, i) => x.gather(1, i));
    await helperTestOp('gather axis 0 smaller', [[7, 6], { shape: [3, 4], dtype: 'i32', low: 0, high: 7 }], (x, i) => x.gather(0, i), (x, i) => x.gather(0, i));
  });
});

describe('losses and dropout', () => {
  it('crossEntropy with ignore_index and weights, every reduction', async () => {
    for (const reduction of ['mean', 'sum', 'none'] as const) {
      for (const [N, C] of [[1, 7], [33, 7], [7, 257]]) {
        const targets: InputSpec = { shape: [N], dtype: 'i32', values: Array.from({ length: N }, (_, i) => (i % 5 === 3 ? -100 : (i * 7) % C)) };
        await helperTestOp(`crossEntropy ${reduction} ${N}x${C}`, [[N, C], targets], (l, y) => t.crossEntropy(l, y, { reduction }),
          (l, y) => R.crossEntropy(l, y, { reduction }));
        await helperTestOp(`crossEntropy token-weighted ${reduction}`, [[N, C], targets, { shape: [N], low: 0.1, high: 2, noGrad: true }],
          (l, y, w) => t.crossEntropy(l, y, { reduction, tokenWeight: w }), (l, y, w) => R.crossEntropy(l, y, { reduction, tokenWeight: w }));
        await helperTestOp(`crossEntropy class-weighted ${reduction}`, [[N, C], targets, { shape: [C], low: 0.1, high: 2, noGrad: true }],
          (l, y, w) => t.crossEntropy(l, y, { reduction, weight: w }), (l, y, w) => R.crossEntropy(l, y, { reduction, weight: w }));
        await helperTestOp(`crossEntropy class- and token-weighted ${reduction}`,
          [[N, C], targets, { shape: [C], low: 0.1, high: 2, noGrad: true }, { shape: [N], low: 0.1, high: 2, noGrad: true }],
          (l, y, w, tw) => t.crossEntropy(l, y, { reduction, weight: w, tokenWeight: tw }),
          (l, y, w, tw) => R.crossEntropy(l, y, { reduction, weight: w, tokenWeight: tw }));
      }
    }
    await helperTestOp('crossEntropy [B,T,C] ignore 0', [[2, 3, 11], { shape: [2, 3], dtype: 'i32', values: [0, 4, 5, 0, 0, 10] }],
      (l, y) => t.crossEntropy(l, y, { ignoreIndex: 0 }), (l, y) => R.crossEntropy(l, y, { ignoreIndex: 0 }));
    await helperTestOp('crossEntropy all ignored', [[3, 5], { shape: [3], dtype: 'i32', values: [-100, -100, -100] }],
      (l, y) => t.crossEntropy(l, y), (l, y) => R.crossEntropy(l, y));
  });
  it('tokenLogProbs', async () => {
    await helperTestOp('tokenLogProbs', [[2, 5, 33], { shape: [2, 5], dtype: 'i32', low: 0, high: 33 }],
      (l, y) => t.tokenLogProbs(l, y), (l, y) => l.logSoftmax(-1).gather(2, y.unsqueeze(2)).squeeze(2));
  });
  it('dropout matches the reference given the mask it drew', async () => {
    for (const n of [7, 257, 4099]) {
      const x = t.randn([n], { requiresGrad: true });
      const y = x.dropout(0.3);
      const xs = await x.toArray();
      const ys = await y.toArray();
      const keep = Array.from(ys, (v) => (v !== 0 ? 1 : 0));
      const rx = new Ref(xs, [n], { requiresGrad: true });
      await helperTestOp('dropout vs dropoutWithMask', [{ shape: [n], values: xs }], (a) => {
        t.manualSeed(0);
        return a.mul(1);
      }, (a) => a.mul(1));
      const ry = rx.dropoutWithMask(new Ref(keep, [n]), 0.3);
      const cot = t.randn([n]);
      y.backward(cot);
      ry.backward(Float64Array.from(await cot.toArray()));
      const { expectClose, TOL } = await import('./helpers.js');
      expectClose('dropout forward', ys, ry.data, TOL.f32.forward);
      expectClose('dropout grad', await x.grad!.toArray(), rx.grad!, TOL.f32.grad);
      for (const z of [x, y, cot]) z.dispose();
    }
  });
});

// ---- issue 11: NaN and infinities as PyTorch, reductions at every size -------------------------------

describe('NaN and infinities follow PyTorch (checked against the float64 reference)', () => {
  const { expectClose } = { expectClose: (name: string, got: ArrayLike<number>, want: ArrayLike<number>) => {
    expect(got.length, name).toBe(want.length);
    for (let i = 0; i < want.length; i++) {
      const ok = Number.isNaN(want[i]) ? Number.isNaN(got[i]) : got[i] === Math.fround(want[i]) || Math.abs(got[i] - want[i]) <= 1e-5 + 1e-4 * Math.abs(want[i]);
      expect(ok, `${name}: element ${i}: got ${got[i]}, want ${want[i]}`).toBe(true);
    }
  } };
  /** Runs fn on the GPU and rf on the reference with the same (special) values; compares every output. */
  async function same(name: string, data: number[], shape: number[], fn: (x: Tensor) => Tensor | Tensor[], rf: (x: Ref) => Ref | Ref[]): Promise<void> {
    const x = t.tensor(data, { shape });
    const out = t.tidy(() => fn(x));
    const gots = Array.isArray(out) ? out : [out];
    const wants = [rf(new Ref(Float64Array.from(data, Math.fround), shape))].flat();
    for (let k = 0; k < wants.length; k++) {
      expect([...gots[k].shape], `${name}: shape`).toEqual(wants[k].shape);
      expectClose(`${name} [${data.join(', ')}] output ${k}`, await gots[k].toArray(), wants[k].data);
    }
    for (const g of gots) g.dispose();
    x.dispose();
  }

  it('max, min, argmax, argmin and their indices propagate NaN, in every reduce kernel form', async () => {
    const { setAdapterOverride } = await import('../src/kernels/kernel.js');
    try {
      for (const override of [null, { subgroups: false as const }, { cpu: false }]) {
        setAdapterOverride(override);
        for (const n of [5, 100, 3000]) {
          const data = Array.from({ length: 2 * n }, (_, i) => Math.sin(i * 1.7) * 3);
          data[Math.floor(n / 3)] = NaN; // row 0 holds two NaNs, row 1 none
          data[n - 1] = NaN;
          data[n + Math.min(7, n - 1)] = Infinity;
          for (const [name, f, rf] of [
            ['max', (x: Tensor) => x.max(1), (x: Ref) => x.max(1)],
            ['min', (x: Tensor) => x.min(1), (x: Ref) => x.min(1)],
            ['argmax', (x: Tensor) => x.argmax(1), (x: Ref) => x.argmax(1)],
            ['argmin', (x: Tensor) => x.argmin(1), (x: Ref) => x.argmin(1)],
            ['max all', (x: Tensor) => x.max(), (x: Ref) => x.max()],
            ['argmax flat', (x: Tensor) => x.argmax(), (x: Ref) => x.argmax()],
            ['maxWithIndices', (x: Tensor) => { const r = x.maxWithIndices(1); return [r.values, r.indices]; }, (x: Ref) => { const r = x.maxWithIndices(1); return [r.values, r.indices]; }],
            ['minWithIndices', (x: Tensor) => { const r = x.minWithIndices(1); return [r.values, r.indices]; }, (x: Ref) => { const r = x.minWithIndices(1); return [r.values, r.indices]; }],
          ] as const) {
            await same(`${name} n=${n} ${JSON.stringify(override)}`, data, [2, n], f as (x: Tensor) => Tensor, rf as (x: Ref) => Ref);
          }
        }
      }
    } finally {
      setAdapterOverride(null);
    }
    expect(await t.tensor([1, NaN, 3]).max().item()).toBeNaN();
    expect(await t.tensor([1, NaN, 3]).argmax().item()).toBe(1);
  });

  it('element-wise ops: relu, clamp, maximum/minimum, sign, pow, where, maskedFill, comparisons, cast', async () => {
    const specials = [NaN, Infinity, -Infinity, 0, -0, 1.5, -2, 1, -1];
    const other = [2, NaN, -Infinity, -3, 0.5, Infinity, NaN, NaN, Infinity];
    const both = (f: (a: Tensor, b: Tensor) => Tensor, rf: (a: Ref, b: Ref) => Ref) => [
      (x: Tensor) => f(x, t.tensor(other)), (x: Ref) => rf(x, new Ref(other, [other.length])),
    ] as const;
    const cases: [string, (x: Tensor) => Tensor, (x: Ref) => Ref][] = [
      ['relu', (x) => x.relu(), (x) => x.relu()],
      ['clamp', (x) => x.clamp(-1, 1), (x) => x.clamp(-1, 1)],
      ['clamp max only', (x) => x.clamp(undefined, 1), (x) => x.clamp(undefined, 1)],
      ['clamp min only', (x) => x.clamp(-1), (x) => x.clamp(-1)],
      ['sign', (x) => x.sign(), (x) => x.sign()],
      ['maximum', ...both((a, b) => a.maximum(b), (a, b) => a.maximum(b))],
      ['minimum', ...both((a, b) => a.minimum(b), (a, b) => a.minimum(b))],
      ['pow', ...both((a, b) => a.pow(b), (a, b) => a.pow(b))],
      ['pow reversed', ...both((a, b) => b.pow(a), (a, b) => b.pow(a))],
      ['ne', ...both((a, b) => a.ne(b), (a, b) => a.ne(b))],
      ['eq', ...both((a, b) => a.eq(b), (a, b) => a.eq(b))],
      ['lt', ...both((a, b) => a.lt(b), (a, b) => a.lt(b))],
      ['ge', ...both((a, b) => a.ge(b), (a, b) => a.ge(b))],
      ['where (NaN cond is true)', (x) => t.where(x, 1, 2), (x) => R.where(x, 1, 2)],
      ['where i32 operands, f32 cond', (x) => t.where(x, t.tensor([7], { dtype: 'i32' }), 2), (x) => R.where(x, 7, 2)],
      ['maskedFill (NaN mask is true)', (x) => t.ones([9]).maskedFill(x, 5), (x) => Ref.ones([9]).maskedFill(x, 5)],
      ['exp', (x) => x.exp(), (x) => x.exp()],
      ['tanh', (x) => x.tanh(), (x) => x.tanh()],
      ['sigmoid', (x) => x.sigmoid(), (x) => x.sigmoid()],
    ];
    for (const [name, f, rf] of cases) await same(name, specials, [specials.length], f, rf);
    // cast: truncation toward zero, saturating, NaN -> 0
    const c = t.tensor([NaN, Infinity, -Infinity, 3e9, -3e9, 2.7, -2.7]).cast('i32');
    expect([...await c.toArray()]).toEqual([0, 2147483647, -2147483648, 2147483647, -2147483648, 2, -2]);
    expect(await t.tensor([NaN]).relu().item()).toBeNaN();
    expect(await t.tensor([NaN]).clamp(-1, 1).item()).toBeNaN();
  });

  it('softmax, logSoftmax, logsumexp, tokenLogProbs and crossEntropy with inf and NaN rows, in both kernel forms', async () => {
    const rows = [[Infinity, 1, 2, 0], [NaN, 1, 2, 0], [-Infinity, 1, 2, 0], [-Infinity, -Infinity, -Infinity, -Infinity],
      [Infinity, Infinity, 1, 0], [NaN, Infinity, 0, 0], [1, 2, 3, 4]];
    const data = rows.flat();
    const shape = [rows.length, 4];
    for (const online of [false, true]) {
      setSoftmaxOnline(online);
      try {
        await same(`softmax online=${online}`, data, shape, (x) => x.softmax(-1), (x) => x.softmax(-1));
        await same(`logSoftmax online=${online}`, data, shape, (x) => x.logSoftmax(-1), (x) => x.logSoftmax(-1));
        await same(`logsumexp online=${online}`, data, shape, (x) => x.logsumexp(-1), (x) => x.logsumexp(-1));
        const tg = [1, 1, 1, 0, 2, 2, 3];
        await same(`tokenLogProbs online=${online}`, data, shape, (x) => t.tokenLogProbs(x, t.tensor(tg, { dtype: 'i32' })),
          (x) => x.logSoftmax(-1).gather(1, new Ref(tg, [tg.length, 1], { dtype: 'i32' })).squeeze(1));
        await same(`crossEntropy none online=${online}`, data, shape, (x) => t.crossEntropy(x, t.tensor(tg, { dtype: 'i32' }), { reduction: 'none' }),
          (x) => R.crossEntropy(x, new Ref(tg, [tg.length], { dtype: 'i32' }), { reduction: 'none' }));
      } finally {
        setSoftmaxOnline(false);
      }
    }
    expect(await t.tensor([Infinity, 1]).logsumexp(0).item()).toBe(Infinity);
    // an ignored target contributes 0 even when its row is NaN (PyTorch)
    const ce = t.crossEntropy(t.tensor([[NaN, 1], [0, 1]]), t.tensor([-100, 1], { dtype: 'i32' }), { reduction: 'sum' });
    expect(await ce.item()).toBeCloseTo(Math.log(1 + Math.E) - 1, 5);
  });
});

describe('reductions at every size', () => {
  it('0-d tensors: an axis of 0 or -1 reduces nothing (PyTorch), results are 0-d', async () => {
    const x = t.tensor(5);
    for (const axis of [0, -1, [0], [-1], [], undefined] as const) {
      for (const keepdim of [false, true]) {
        for (const [name, r] of [['sum', x.sum(axis as number, keepdim)], ['mean', x.mean(axis as number, keepdim)], ['max', x.max(axis as number, keepdim)],
          ['min', x.min(axis as number, keepdim)], ['prod', x.prod(axis as number, keepdim)], ['logsumexp', x.logsumexp(axis as number, keepdim)]] as const) {
          expect([...r.shape], `${name}(${String(axis)}, ${keepdim})`).toEqual([]);
          expect(await r.item(), `${name}(${String(axis)}, ${keepdim})`).toBeCloseTo(5, 5);
          r.dispose();
        }
      }
    }
    for (const axis of [0, -1]) {
      expect(await x.argmax(axis).item()).toBe(0);
      expect(await x.cumsum(axis).item()).toBe(5);
      expect(await x.softmax(axis).item()).toBe(1);
      const { values, indices } = x.maxWithIndices(axis);
      expect([await values.item(), await indices.item()]).toEqual([5, 0]);
    }
    for (const f of [() => x.sum(1), () => x.sum(-2), () => x.argmax(1), () => x.softmax(2), () => x.slice(0, 0, 1), () => t.concat([x, x])]) {
      expect(f).toThrow(TrimpiError);
    }
    // the gradient through a 0-d reduction
    const w = t.tensor(3, { requiresGrad: true });
    w.mul(w).sum(0).backward();
    expect(await w.grad!.item()).toBe(6);
  });

  it('a sum of 163,840,000 ones through an expanded view is exact (blocked f32 accumulation)', async () => {
    const n = 4096 * 40000; // > 2^27: 8 lanes of f32 running sums of ones would stall at 2^24 each
    const s = t.ones([1, 1]).expand([4096, 40000]).sum();
    expect(await s.item()).toBe(n);
    const m = t.ones([1, 1]).expand([4096, 40000]).mean();
    expect(await m.item()).toBe(1);
  }, 60_000);

  it('sizes past the kernels\' 32-bit index math are refused with the op and the limit', () => {
    const big = t.ones([1, 1]).expand([65536, 65537]); // 2^32 + 2^16 elements, no memory
    for (const [op, f] of [['sum', () => big.sum()], ['mean', () => big.mean()], ['max', () => big.max()], ['argmax', () => big.argmax()],
      ['sumOfSquares', () => t.sumOfSquares([big])]] as const) {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err, op).toBeInstanceOf(TrimpiError);
      expect((err as TrimpiError).op).toBe(op);
      expect((err as TrimpiError).message).toMatch(/2\^31/);
    }
    expect(() => t.matmul(t.ones([1, 1]).expand([1, 2 ** 32]), t.ones([1, 1]).expand([2 ** 32, 1]))).toThrow(/matmul: .*32-bit/);
  });
});
