import { describe, it, expect } from 'vitest';
import { Ref, Rng, erf, erfc, where, concat, stack, embedding, layerNorm, crossEntropy, split, oneHot, scatterAdd, roundHalfEven } from './ref.js';

// ---------------------------------------------------------------------------------------------
// Finite-difference gradient checker
// ---------------------------------------------------------------------------------------------

/** Base seed; set REF_SEED to run every check with different random inputs. */
const BASE_SEED = Number(process.env.REF_SEED ?? 12345);

/** A distinct, reproducible seed per check (FNV-1a of the check's name, mixed with BASE_SEED). */
function seedFor(name: string): number {
  let h = 2166136261 ^ BASE_SEED;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}

const H = 1e-6;
const RTOL = 1e-7;
const ATOL = 1e-8;

/**
 * L = sum(f(xs) ⊙ C) with a random cotangent C. Compares the analytic gradient of L w.r.t.
 * every input against central differences. Differences of the outputs are taken elementwise
 * before the dot product with C, so unaffected outputs cancel exactly.
 */
function gradcheck(name: string, make: (rng: Rng) => Ref[], f: (xs: Ref[]) => Ref): void {
  it(name, () => {
    const seed = seedFor(name);
    const rng = new Rng(seed);
    const xs = make(rng).map((x) => new Ref(x.data, x.shape, { requiresGrad: true }));
    const out = f(xs);
    expect(out.requiresGrad).toBe(true);
    const C = Ref.randn(out.shape, rng);
    out.mul(C).sum().backward();

    const evalAt = (k: number, i: number, v: number): Float64Array =>
      f(xs.map((x, j) => (j === k ? new Ref(x.data.map((xv, q) => (q === i ? v : xv)), x.shape) : x.detach()))).data;

    let worst = 0;
    let report = '';
    xs.forEach((x, k) => {
      expect(x.grad, `${name}: input ${k} got no grad`).not.toBeNull();
      const grad = x.grad ?? new Float64Array(0);
      for (let i = 0; i < x.numel; i++) {
        const x0 = x.data[i];
        const xp = x0 + H;
        const xm = x0 - H;
        const op = evalAt(k, i, xp);
        const om = evalAt(k, i, xm);
        let d = 0;
        for (let j = 0; j < op.length; j++) d += (op[j] - om[j]) * C.data[j];
        const num = d / (xp - xm);
        const ana = grad[i];
        const ratio = Math.abs(ana - num) / (ATOL + RTOL * Math.max(Math.abs(ana), Math.abs(num)));
        if (!(ratio <= worst)) {
          worst = ratio;
          report = `input ${k} [${i}]: analytic ${ana}, numeric ${num}`;
        }
      }
    });
    expect(worst, `${name} (seed ${seed}): ${report}`).toBeLessThanOrEqual(1);
  });
}

// ----- input generators ----------------------------------------------------------------------

const randn = (shape: number[], scale = 1) => (rng: Rng) => Ref.randn(shape, rng, { std: scale });
const uniform = (shape: number[], low: number, high: number) => (rng: Rng) => Ref.rand(shape, rng, { low, high });

/** Normal samples resampled until at least `margin` away from every kink. */
function awayFrom(shape: number[], kinks: number[], rng: Rng, margin = 0.05): Ref {
  const r = Ref.randn(shape, rng);
  r.data.forEach((_, i) => {
    let v = rng.normal();
    while (kinks.some((k) => Math.abs(v - k) < margin)) v = rng.normal();
    r.data[i] = v;
  });
  return r;
}

/** Several tensors whose entries are all pairwise ≥ 0.01 apart (no ties within or across them). */
function distinct(shapes: number[][], rng: Rng): Ref[] {
  const total = shapes.reduce((a, s) => a + s.reduce((p, q) => p * q, 1), 0);
  const perm = Array.from({ length: total }, (_, i) => i);
  for (let i = total - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  let o = 0;
  return shapes.map((s) => {
    const n = s.reduce((p, q) => p * q, 1);
    const vals = perm.slice(o, o + n).map((p) => (p - total / 2) * 0.05 + rng.uniform(0, 0.03));
    o += n;
    return new Ref(vals, s);
  });
}

const mask01 = (shape: number[], rng: Rng): Ref => Ref.randint(shape, 0, 2, rng);

// ---------------------------------------------------------------------------------------------
// Gradient checks
// ---------------------------------------------------------------------------------------------

describe('gradcheck: unary', () => {
  const smooth = ['neg', 'exp', 'tanh', 'sigmoid', 'silu'] as const;
  for (const op of smooth)
    for (const shape of [[3, 7], [1], []]) gradcheck(`${op} ${JSON.stringify(shape)}`, (r) => [randn(shape, 1.5)(r)], ([x]) => x[op]());
  for (const op of ['log', 'sqrt', 'rsqrt'] as const)
    for (const shape of [[3, 7], [1]]) gradcheck(`${op} ${JSON.stringify(shape)}`, (r) => [uniform(shape, 0.3, 3)(r)], ([x]) => x[op]());
  for (const op of ['relu', 'abs'] as const)
    gradcheck(`${op} [4,9]`, (r) => [awayFrom([4, 9], [0], r)], ([x]) => x[op]());
  for (const approx of ['none', 'tanh'] as const) {
    gradcheck(`gelu ${approx} [5,7]`, (r) => [randn([5, 7], 2)(r)], ([x]) => x.gelu(approx));
    gradcheck(`gelu ${approx} wide range`, () => [new Ref([-7, -4, -2.5, -1, -0.2, 0.3, 1.7, 3.2, 6], [9])], ([x]) => x.gelu(approx));
  }
  gradcheck('unary chain with reused input', (r) => [randn([2, 5])(r)], ([x]) => x.mul(x).add(x.exp()).sub(x.tanh().mul(x)));
});

describe('gradcheck: binary with broadcasting', () => {
  const pairs: [number[], number[]][] = [
    [[3, 7], [3, 7]],
    [[3, 1, 5], [4, 5]],
    [[], [2, 3]],
    [[2, 3], []],
    [[1], [5]],
    [[4, 1], [1, 6]],
  ];
  for (const [sa, sb] of pairs) {
    const tag = `${JSON.stringify(sa)} ${JSON.stringify(sb)}`;
    gradcheck(`add ${tag}`, (r) => [randn(sa)(r), randn(sb)(r)], ([a, b]) => a.add(b));
    gradcheck(`sub ${tag}`, (r) => [randn(sa)(r), randn(sb)(r)], ([a, b]) => a.sub(b));
    gradcheck(`mul ${tag}`, (r) => [randn(sa)(r), randn(sb)(r)], ([a, b]) => a.mul(b));
    gradcheck(`div ${tag}`, (r) => [randn(sa)(r), uniform(sb, 0.5, 2)(r)], ([a, b]) => a.div(b));
    gradcheck(`pow ${tag}`, (r) => [uniform(sa, 0.4, 2.5)(r), randn(sb)(r)], ([a, b]) => a.pow(b));
    gradcheck(`maximum ${tag}`, (r) => distinct([sa, sb], r), ([a, b]) => a.maximum(b));
    gradcheck(`minimum ${tag}`, (r) => distinct([sa, sb], r), ([a, b]) => a.minimum(b));
  }
  gradcheck('div by negative denominators', (r) => [randn([6])(r), awayFrom([6], [0], r, 0.4)], ([a, b]) => a.div(b));
  gradcheck('number operands', (r) => [uniform([3, 4], 0.5, 2)(r)], ([x]) =>
    x.add(1.5).mul(-2).sub(0.25).div(3).add(x.pow(3)).add(x.pow(-0.5)).add(x.maximum(1.234)).add(x.minimum(0.987)),
  );
});

describe('gradcheck: where / clamp / maskedFill / dropout', () => {
  gradcheck('where cond[3,1,5] a[4,5] b[]', (r) => [randn([4, 5])(r), randn([])(r)], ([a, b]) => where(mask01([3, 1, 5], new Rng(7)), a, b));
  gradcheck('where cond[4,1] a[3,4,1] b[1,6]', (r) => [randn([3, 4, 1])(r), randn([1, 6])(r)], ([a, b]) => where(mask01([4, 1], new Rng(8)), a, b));
  gradcheck('where with number branch', (r) => [randn([3, 4])(r)], ([a]) => where(mask01([3, 4], new Rng(9)), a, -2));
  gradcheck('clamp(-0.5, 0.7)', (r) => [awayFrom([5, 6], [-0.5, 0.7], r, 0.01)], ([x]) => x.clamp(-0.5, 0.7));
  gradcheck('clamp(min only)', (r) => [awayFrom([5, 6], [0.2], r, 0.01)], ([x]) => x.clamp(0.2));
  gradcheck('clamp(max only)', (r) => [awayFrom([5, 6], [-0.3], r, 0.01)], ([x]) => x.clamp(undefined, -0.3));
  gradcheck('maskedFill mask[1,5] x[3,5]', (r) => [randn([3, 5])(r)], ([x]) => x.maskedFill(mask01([1, 5], new Rng(10)), 0.3));
  gradcheck('maskedFill mask[2,3,4] x[2,3,4]', (r) => [randn([2, 3, 4])(r)], ([x]) => x.maskedFill(mask01([2, 3, 4], new Rng(11)), -1e9));
  gradcheck('dropoutWithMask p=0.25', (r) => [randn([4, 7])(r)], ([x]) => x.dropoutWithMask(mask01([4, 7], new Rng(12)), 0.25));
});

describe('gradcheck: reductions', () => {
  const axesList: (number | number[] | undefined)[] = [0, 1, -1, [0, 2], [-1, 0], [0, 1, 2], undefined];
  for (const axis of axesList)
    for (const keepdim of [false, true]) {
      const tag = `axis=${JSON.stringify(axis)} keepdim=${keepdim}`;
      gradcheck(`sum ${tag}`, (r) => [randn([3, 4, 5])(r)], ([x]) => x.sum(axis, keepdim));
      gradcheck(`mean ${tag}`, (r) => [randn([3, 4, 5])(r)], ([x]) => x.mean(axis, keepdim));
      gradcheck(`var c=1 ${tag}`, (r) => [randn([3, 4, 5])(r)], ([x]) => x.var(axis, keepdim));
      gradcheck(`var c=0 ${tag}`, (r) => [randn([3, 4, 5])(r)], ([x]) => x.var(axis, keepdim, 0));
      gradcheck(`max ${tag}`, (r) => distinct([[3, 4, 5]], r), ([x]) => x.max(axis, keepdim));
      gradcheck(`min ${tag}`, (r) => distinct([[3, 4, 5]], r), ([x]) => x.min(axis, keepdim));
      gradcheck(`logsumexp ${tag}`, (r) => [randn([3, 4, 5], 2)(r)], ([x]) => x.logsumexp(axis ?? [0, 1, 2], keepdim));
    }
  gradcheck('sum over size-1 axis', (r) => [randn([3, 1, 2])(r)], ([x]) => x.sum(1));
  gradcheck('reductions of a scalar', (r) => [randn([])(r)], ([x]) => x.sum().add(x.max()).add(x.mean()));
  for (const op of ['sum', 'mean', 'var', 'logsumexp'] as const)
    gradcheck(`${op} over 257 elements`, (r) => [randn([257])(r)], ([x]) => (op === 'logsumexp' ? x.logsumexp(0) : x[op]()));
  gradcheck('max over 257 elements', (r) => distinct([[257]], r), ([x]) => x.max());
  gradcheck('min [2,257] axis 1', (r) => distinct([[2, 257]], r), ([x]) => x.min(1));
  gradcheck('var correction 2', (r) => [randn([4, 6])(r)], ([x]) => x.var(1, true, 2));
});

describe('gradcheck: softmax family', () => {
  for (const axis of [0, 1, -1, 2, -2]) {
    gradcheck(`softmax axis ${axis}`, (r) => [randn([3, 4, 5], 2)(r)], ([x]) => x.softmax(axis));
    gradcheck(`logSoftmax axis ${axis}`, (r) => [randn([3, 4, 5], 2)(r)], ([x]) => x.logSoftmax(axis));
  }
  gradcheck('softmax [1,7]', (r) => [randn([1, 7], 3)(r)], ([x]) => x.softmax());
  gradcheck('softmax large logits', (r) => [randn([2, 5], 30)(r)], ([x]) => x.softmax());
  gradcheck('logSoftmax [33]', (r) => [randn([33], 2)(r)], ([x]) => x.logSoftmax());
  gradcheck('logsumexp axis 1 of [2,33,3]', (r) => [randn([2, 33, 3], 2)(r)], ([x]) => x.logsumexp(1));
});

describe('gradcheck: matmul', () => {
  const cases: [number[], number[]][] = [
    [[3, 4], [4, 5]],
    [[2, 3, 4], [4, 5]],
    [[4, 5], [2, 5, 3]],
    [[2, 1, 3, 4], [5, 4, 2]],
    [[4], [4, 5]],
    [[3, 4], [4]],
    [[4], [4]],
    [[2, 3, 4], [4]],
    [[4], [3, 4, 2]],
    [[1, 1], [1, 1]],
    [[7, 33], [33, 1]],
  ];
  for (const [sa, sb] of cases)
    gradcheck(`matmul ${JSON.stringify(sa)} @ ${JSON.stringify(sb)}`, (r) => [randn(sa)(r), randn(sb)(r)], ([a, b]) => a.matmul(b));
  gradcheck('matmul same tensor twice', (r) => [randn([4, 4])(r)], ([a]) => a.matmul(a));
});

describe('gradcheck: layerNorm', () => {
  gradcheck('layerNorm [2,3,6] over [6], no affine', (r) => [randn([2, 3, 6], 2)(r)], ([x]) => layerNorm(x, [6]));
  gradcheck('layerNorm [2,3,6] over [6], weight+bias', (r) => [randn([2, 3, 6], 2)(r), randn([6])(r), randn([6])(r)], ([x, w, b]) =>
    layerNorm(x, [6], w, b),
  );
  gradcheck('layerNorm over [3,6], weight+bias', (r) => [randn([2, 3, 6])(r), randn([3, 6])(r), randn([3, 6])(r)], ([x, w, b]) =>
    layerNorm(x, [3, 6], w, b),
  );
  gradcheck('layerNorm weight only, eps=1e-3', (r) => [randn([4, 5])(r), randn([5])(r)], ([x, w]) => layerNorm(x, [5], w, undefined, 1e-3));
  gradcheck('layerNorm bias only', (r) => [randn([3, 7])(r), randn([7])(r)], ([x, b]) => layerNorm(x, [7], undefined, b));
});

describe('gradcheck: views and shape ops', () => {
  gradcheck('reshape with -1', (r) => [randn([2, 3, 4])(r)], ([x]) => x.reshape([4, -1]));
  gradcheck('permute then reshape', (r) => [randn([2, 3, 4])(r)], ([x]) => x.permute([2, 0, 1]).reshape([4, 6]).mul(x.reshape([4, 6])));
  gradcheck('permute negative dims', (r) => [randn([2, 3, 4])(r)], ([x]) => x.permute([-1, 1, 0]));
  gradcheck('transpose', (r) => [randn([2, 3, 4])(r)], ([x]) => x.transpose(0, -1));
  gradcheck('T', (r) => [randn([3, 5])(r)], ([x]) => x.T);
  gradcheck('slice middle axis', (r) => [randn([2, 7, 3])(r)], ([x]) => x.slice(1, 2, 5));
  gradcheck('slice negative bounds', (r) => [randn([2, 7, 3])(r)], ([x]) => x.slice(1, -4, -1));
  gradcheck('slice clamped', (r) => [randn([5, 3])(r)], ([x]) => x.slice(0, -100, 100).add(x.slice(0, 3, 100).sum()));
  gradcheck('expand [3,1,5] -> [2,3,4,5]', (r) => [randn([3, 1, 5])(r)], ([x]) => x.expand([2, -1, 4, 5]));
  gradcheck('expand scalar', (r) => [randn([])(r)], ([x]) => x.expand([3, 2]));
  gradcheck('unsqueeze/squeeze', (r) => [randn([3, 4])(r)], ([x]) => x.unsqueeze(1).unsqueeze(-1).mul(2).squeeze(1).squeeze());
  gradcheck('squeeze axis', (r) => [randn([3, 1, 4])(r)], ([x]) => x.squeeze(1).squeeze(0));
  gradcheck('flatten', (r) => [randn([2, 3, 4])(r)], ([x]) => x.flatten());
  gradcheck('flatten(1, 2)', (r) => [randn([2, 3, 4, 2])(r)], ([x]) => x.flatten(1, 2));
  gradcheck('contiguous', (r) => [randn([2, 3])(r)], ([x]) => x.transpose(0, 1).contiguous());
  gradcheck('concat middle axis', (r) => [randn([2, 3, 4])(r), randn([2, 1, 4])(r), randn([2, 5, 4])(r)], (xs) => concat(xs, 1));
  gradcheck('concat last axis', (r) => [randn([3, 2])(r), randn([3, 3])(r)], (xs) => concat(xs, -1));
  gradcheck('concat same tensor twice', (r) => [randn([2, 3])(r)], ([x]) => concat([x, x.mul(2), x], 0));
  gradcheck('stack middle axis', (r) => [randn([2, 4])(r), randn([2, 4])(r), randn([2, 4])(r)], (xs) => stack(xs, 1));
  gradcheck('stack last axis', (r) => [randn([2, 4])(r), randn([2, 4])(r)], (xs) => stack(xs, -1));
});

describe('gradcheck: indexing', () => {
  const idx = (vals: number[], shape = [vals.length]) => new Ref(vals, shape, { dtype: 'i32' });
  gradcheck('indexSelect axis 1, repeated', (r) => [randn([3, 4, 2])(r)], ([x]) => x.indexSelect(1, idx([2, 0, 2, 2, 3])));
  gradcheck('indexSelect axis 0', (r) => [randn([5, 3])(r)], ([x]) => x.indexSelect(0, idx([4, 4, 1])));
  gradcheck('indexSelect axis -1', (r) => [randn([2, 6])(r)], ([x]) => x.indexSelect(-1, idx([5, 0, 5])));
  gradcheck('embedding ids [2,4] with repeats', (r) => [randn([5, 3])(r)], ([w]) => embedding(idx([1, 4, 1, 0, 1, 4, 4, 2], [2, 4]), w));
  gradcheck('embedding ids 1-D', (r) => [randn([6, 2])(r)], ([w]) => embedding(idx([5, 5, 0]), w));
  gradcheck('gather axis 1, repeated', (r) => [randn([3, 5])(r)], ([x]) =>
    x.gather(1, idx([0, 0, 4, 4, 2, 1, 1, 1, 3, 0, 4, 0], [3, 4])),
  );
  gradcheck('gather axis 0, smaller index', (r) => [randn([4, 3])(r)], ([x]) => x.gather(0, idx([3, 3, 0, 1, 3, 2], [2, 3])));
  gradcheck('gather 3-D axis -1', (r) => [randn([2, 3, 4])(r)], ([x]) => x.gather(-1, Ref.randint([2, 3, 6], 0, 4, new Rng(3))));
});

describe('gradcheck: crossEntropy', () => {
  const targets = new Ref([2, -100, 0, 4, 4, -100, 1], [7], { dtype: 'i32' });
  const tokenWeight = new Ref([0.5, 2, 1.5, 0.25, 1, 3, 0.75], [7]);
  const weight = new Ref([0.3, 1.7, 0.9, 2.2, 1.1], [5]);
  for (const reduction of ['mean', 'sum', 'none'] as const) {
    gradcheck(`crossEntropy ${reduction}, ignored rows`, (r) => [randn([7, 5], 2)(r)], ([x]) => crossEntropy(x, targets, { reduction }));
    gradcheck(`crossEntropy ${reduction}, token weights + ignored rows`, (r) => [randn([7, 5], 2)(r)], ([x]) =>
      crossEntropy(x, targets, { reduction, tokenWeight }),
    );
    gradcheck(`crossEntropy ${reduction}, class + token weights + ignored rows`, (r) => [randn([7, 5], 2)(r)], ([x]) =>
      crossEntropy(x, targets, { reduction, weight, tokenWeight }),
    );
  }
  gradcheck('crossEntropy custom ignoreIndex', (r) => [randn([4, 3])(r)], ([x]) =>
    crossEntropy(x, new Ref([1, 2, 0, 2], [4], { dtype: 'i32' }), { ignoreIndex: 2 }),
  );
  gradcheck('crossEntropy [2,3,5] logits, [2,3] targets', (r) => [randn([2, 3, 5])(r)], ([x]) =>
    crossEntropy(x, new Ref([0, 4, -100, 2, 2, 1], [2, 3], { dtype: 'i32' })),
  );
  gradcheck('crossEntropy [2,3,5] none', (r) => [randn([2, 3, 5])(r)], ([x]) =>
    crossEntropy(x, new Ref([0, 4, -100, 2, 2, 1], [2, 3], { dtype: 'i32' }), { reduction: 'none' }),
  );
});

describe('gradcheck: everyday ops', () => {
  for (const op of ['log1p', 'expm1', 'logsigmoid', 'erf', 'sin', 'cos'] as const)
    for (const shape of [[3, 7], [1]]) gradcheck(`${op} ${JSON.stringify(shape)}`, (r) => [uniform(shape, -0.9, 3)(r)], ([x]) => x[op]());
  gradcheck('softplus beta 1', (r) => [randn([4, 7], 3)(r)], ([x]) => x.softplus());
  gradcheck('softplus beta 2 threshold 3', (r) => [awayFrom([4, 7], [1.5], r, 0.01)], ([x]) => x.softplus(2, 3));
  gradcheck('lerp tensors, broadcast weight', (r) => [randn([3, 5])(r), randn([3, 5])(r), randn([5])(r)], ([a, b, w]) => a.lerp(b, w));
  gradcheck('lerp number weight', (r) => [randn([4])(r), randn([4])(r)], ([a, b]) => a.lerp(b, 0.3));
  gradcheck('std axis 1', (r) => [randn([3, 6])(r)], ([x]) => x.std(1));
  gradcheck('std all, correction 0', (r) => [randn([2, 5])(r)], ([x]) => x.std(undefined, false, 0));
  gradcheck('prod axis 1', (r) => [uniform([3, 5], -2, 2)(r)], ([x]) => x.prod(1));
  gradcheck('prod axes [0, 2] keepdim', (r) => [uniform([2, 3, 3], -2, 2)(r)], ([x]) => x.prod([0, 2], true));
  gradcheck('prod with a zero', () => [new Ref([1.5, 0, -2, 0.5, 3, 1.1], [2, 3])], ([x]) => x.prod(1));
  gradcheck('prod with two zeros', () => [new Ref([0, 2, 0, 3], [4])], ([x]) => x.prod());
  for (const p of [2, 1, 3, 0.5, Infinity, -Infinity])
    gradcheck(`norm p=${p}`, (r) => distinct([[3, 5]], r), ([x]) => x.norm(p, 1));
  gradcheck('norm all', (r) => [randn([2, 3, 4])(r)], ([x]) => x.norm());
  gradcheck('cumsum axis 0', (r) => [randn([4, 3])(r)], ([x]) => x.cumsum(0));
  gradcheck('cumsum axis -1', (r) => [randn([2, 3, 5])(r)], ([x]) => x.cumsum(-1));
  gradcheck('flip', (r) => [randn([2, 3, 4])(r)], ([x]) => x.flip([0, 2]).mul(x));
  gradcheck('repeat', (r) => [randn([2, 3])(r)], ([x]) => x.repeat([2, 1, 3]));
  gradcheck('tril', (r) => [randn([2, 3, 4])(r)], ([x]) => x.tril());
  gradcheck('triu -1', (r) => [randn([4, 3])(r)], ([x]) => x.triu(-1));
  gradcheck('topk largest', (r) => distinct([[3, 6]], r), ([x]) => x.topk(3, 1).values);
  gradcheck('topk smallest axis 0', (r) => distinct([[5, 2]], r), ([x]) => x.topk(2, 0, false).values);
  gradcheck('maxWithIndices', (r) => distinct([[3, 4]], r), ([x]) => x.maxWithIndices(1).values);
  gradcheck('minWithIndices keepdim', (r) => distinct([[3, 4]], r), ([x]) => x.minWithIndices(0, true).values);
  gradcheck('split', (r) => [randn([7, 2])(r)], ([x]) => concat(split(x, 3).map((p, i) => p.mul(i + 1)), 0));
  gradcheck('scatterAdd', (r) => [randn([4, 3])(r), randn([3, 3])(r)], ([x, src]) =>
    scatterAdd(x, 0, new Ref([3, 0, 3, 1, 1, 0], [2, 3], { dtype: 'i32' }), src));
});

// ---------------------------------------------------------------------------------------------
// Forward values
// ---------------------------------------------------------------------------------------------

const close = (got: ArrayLike<number>, want: number[], tol = 1e-12): void => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(Math.abs(got[i] - w), `index ${i}: ${got[i]} vs ${w}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(w))));
};

describe('forward values', () => {
  it('softmax / logSoftmax / logsumexp of [1,2,3]', () => {
    const x = new Ref([1, 2, 3], [3]);
    close(x.softmax().data, [0.09003057317038046, 0.24472847105479764, 0.6652409557748219]);
    close(x.logsumexp(0).data, [3.4076059644443806]);
    close(x.logSoftmax().data, [-2.4076059644443806, -1.4076059644443806, -0.4076059644443806]);
    close(new Ref([1000, 1001], [2]).softmax().data, [0.2689414213699951, 0.7310585786300049]);
  });
  it('erf / erfc / gelu', () => {
    close([erf(0.5)], [0.5204998778130465], 1e-15);
    close([erf(-1), erf(2), erf(3.5), erf(0)], [-0.8427007929497149, 0.9953222650189527, 0.9999992569016276, 0]);
    close([erfc(4), erfc(-2)], [1.541725790028002e-8, 1.9953222650189527], 1e-13);
    close(new Ref([1, -1], [2]).gelu().data, [0.8413447460685429, -0.15865525393145707]);
    close(new Ref([1], [1]).gelu('tanh').data, [0.8411919906082768]);
  });
  it('var with correction 0 and 1', () => {
    const x = new Ref([1, 2, 3, 4], [4]);
    close(x.var().data, [5 / 3]);
    close(x.var(undefined, false, 0).data, [1.25]);
    const y = new Ref([1, 2, 3, 4, 6, 8], [2, 3]);
    close(y.var(1, true, 0).data, [2 / 3, 8 / 3]);
    expect(y.var(1, true).shape).toEqual([2, 1]);
  });
  it('argmax: first index on ties, i32, axes', () => {
    const a = new Ref([1, 3, 3, 2], [4]).argmax(0);
    expect(a.dtype).toBe('i32');
    expect(a.shape).toEqual([]);
    expect(a.toArray()).toEqual([1]);
    const m = new Ref([5, 1, 5, 2, 7, 7], [2, 3]);
    expect(m.argmax(1).toArray()).toEqual([0, 1]);
    expect(m.argmax(0, true).toArray()).toEqual([0, 1, 1]);
    expect(m.argmax(0, true).shape).toEqual([1, 3]);
    expect(m.argmax().toArray()).toEqual([4]);
  });
  it('reductions shapes and values', () => {
    const x = Ref.fromNested([[[1, 2], [3, 4], [5, 6]]]); // [1,3,2]
    expect(x.shape).toEqual([1, 3, 2]);
    expect(x.sum([0, 2]).toArray()).toEqual([3, 7, 11]);
    expect(x.sum(1, true).shape).toEqual([1, 1, 2]);
    expect(x.sum().shape).toEqual([]);
    expect(x.max(-1).toArray()).toEqual([2, 4, 6]);
    expect(x.min(1).toArray()).toEqual([1, 2]);
    expect(x.mean(undefined, true).shape).toEqual([1, 1, 1]);
    close(x.mean().data, [3.5]);
  });
  it('matmul, including 1-D cases', () => {
    const a = Ref.fromNested([[1, 2], [3, 4]]);
    const b = Ref.fromNested([[5, 6], [7, 8]]);
    expect(a.matmul(b).toArray()).toEqual([19, 22, 43, 50]);
    const v = new Ref([1, 1], [2]);
    expect(a.matmul(v).toArray()).toEqual([3, 7]);
    expect(v.matmul(a).toArray()).toEqual([4, 6]);
    expect(v.matmul(v).shape).toEqual([]);
    expect(new Ref(new Float64Array(2 * 3 * 4), [2, 1, 3, 4]).matmul(Ref.zeros([5, 4, 6])).shape).toEqual([2, 5, 3, 6]);
  });
  it('comparisons, where, clamp, maskedFill', () => {
    const x = new Ref([1, 2, 3], [3]);
    expect(x.eq(2).toArray()).toEqual([0, 1, 0]);
    expect(x.ne(2).toArray()).toEqual([1, 0, 1]);
    expect(x.lt(2).toArray()).toEqual([1, 0, 0]);
    expect(x.le(2).toArray()).toEqual([1, 1, 0]);
    expect(x.gt(new Ref([0, 2, 4], [3])).toArray()).toEqual([1, 0, 0]);
    expect(x.ge(2).dtype).toBe('f32');
    expect(where(x.gt(1.5), x, -1).toArray()).toEqual([-1, 2, 3]);
    expect(x.clamp(1.5, 2.5).toArray()).toEqual([1.5, 2, 2.5]);
    expect(x.maskedFill(new Ref([1, 0, 1], [3]), -5).toArray()).toEqual([-5, 2, -5]);
  });
  it('slice (Python clamping), concat, stack, gather, indexSelect, embedding', () => {
    const x = Ref.arange(6);
    expect(x.slice(0, -2, 100).toArray()).toEqual([4, 5]);
    expect(x.slice(0, 4, 2).shape).toEqual([0]);
    expect(x.slice(0, -100, 2).toArray()).toEqual([0, 1]);
    const m = x.reshape([2, 3]);
    expect(concat([m, m.slice(1, 0, 1)], 1).toArray()).toEqual([0, 1, 2, 0, 3, 4, 5, 3]);
    expect(stack([m, m], 1).shape).toEqual([2, 2, 3]);
    expect(stack([m, m], 1).toArray()).toEqual([0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]);
    const i = new Ref([2, 0, 1, 1], [2, 2], { dtype: 'i32' });
    expect(m.gather(1, i).toArray()).toEqual([2, 0, 4, 4]);
    expect(m.indexSelect(1, new Ref([2, 2], [2], { dtype: 'i32' })).toArray()).toEqual([2, 2, 5, 5]);
    const e = embedding(new Ref([1, 0, 1], [3, 1], { dtype: 'i32' }), m);
    expect(e.shape).toEqual([3, 1, 3]);
    expect(e.toArray()).toEqual([3, 4, 5, 0, 1, 2, 3, 4, 5]);
    expect(m.permute([1, 0]).toArray()).toEqual([0, 3, 1, 4, 2, 5]);
    expect(new Ref([1, 2], [2, 1]).expand([-1, 3]).toArray()).toEqual([1, 1, 1, 2, 2, 2]);
    expect(m.squeeze(0).shape).toEqual([2, 3]);
  });
  it('layerNorm forward', () => {
    const y = layerNorm(new Ref([1, 2, 3, 4], [1, 4]), [4], undefined, undefined, 0);
    const s = Math.sqrt(1.25);
    close(y.data, [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s]);
    const z = layerNorm(new Ref([1, 2, 3, 4], [1, 4]), [4], new Ref([2, 2, 2, 2], [4]), new Ref([1, 1, 1, 1], [4]), 0);
    close(z.data, [1 - 3 / s, 1 - 1 / s, 1 + 1 / s, 1 + 3 / s]);
  });
  it('crossEntropy values', () => {
    const logits = new Ref([1, 2, 3, 1, 2, 3], [2, 3], { requiresGrad: true });
    const t = new Ref([2, 0], [2], { dtype: 'i32' });
    const lse = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    close(crossEntropy(logits, t, { reduction: 'none' }).data, [lse - 3, lse - 1]);
    close(crossEntropy(logits, t, { reduction: 'sum' }).data, [2 * lse - 4]);
    close(crossEntropy(logits, t).data, [lse - 2]);
    const w = new Ref([1, 3], [2]);
    close(crossEntropy(logits, t, { tokenWeight: w }).data, [(lse - 3 + 3 * (lse - 1)) / 4]);
    // class weights: target 2 weighs 0.5, target 0 weighs 2 (PyTorch: Σ w[t_i] l_i / Σ w[t_i])
    const cw = new Ref([2, 1, 0.5], [3]);
    close(crossEntropy(logits, t, { weight: cw }).data, [(0.5 * (lse - 3) + 2 * (lse - 1)) / 2.5]);
    // all rows ignored → 0 with zero gradient
    const allIgnored = crossEntropy(logits, new Ref([-100, -100], [2], { dtype: 'i32' }));
    expect(allIgnored.item()).toBe(0);
    allIgnored.backward();
    expect(Array.from(logits.grad ?? [])).toEqual([0, 0, 0, 0, 0, 0]);
    expect(() => crossEntropy(logits, new Ref([3, 0], [2], { dtype: 'i32' }))).toThrow(/crossEntropy/);
  });
  it('everyday ops: round half to even, cumsum, topk order, flip, repeat, triangles, oneHot, scatterAdd, split', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, 2, -3]);
    expect(new Ref([1, 2, 3, 4], [2, 2]).cumsum(1).toArray()).toEqual([1, 3, 3, 7]);
    const { values, indices } = new Ref([3, 1, 3, 5], [4]).topk(3);
    expect(values.toArray()).toEqual([5, 3, 3]);
    expect(indices.toArray()).toEqual([3, 0, 2]);
    expect(new Ref([3, 1, 3, 5], [4]).topk(2, 0, false).indices.toArray()).toEqual([1, 0]);
    expect(Ref.arange(6).reshape([2, 3]).flip(1).toArray()).toEqual([2, 1, 0, 5, 4, 3]);
    expect(new Ref([1, 2], [2]).repeat([2, 2]).toArray()).toEqual([1, 2, 1, 2, 1, 2, 1, 2]);
    expect(Ref.ones([3, 3]).tril().toArray()).toEqual([1, 0, 0, 1, 1, 0, 1, 1, 1]);
    expect(Ref.ones([2, 3]).triu(1).toArray()).toEqual([0, 1, 1, 0, 0, 1]);
    expect(oneHot(new Ref([2, 0], [2], { dtype: 'i32' }), 3).toArray()).toEqual([0, 0, 1, 1, 0, 0]);
    expect(scatterAdd(Ref.zeros([3]), 0, new Ref([2, 2, 0], [3], { dtype: 'i32' }), new Ref([1, 2, 4], [3])).toArray()).toEqual([4, 0, 3]);
    expect(split(Ref.arange(5), [2, 3]).map((p) => p.toArray())).toEqual([[0, 1], [2, 3, 4]]);
    close(new Ref([3, 4], [2]).norm().data, [5]);
    close(new Ref([1, -2, 3], [3]).prod().data, [-6]);
    close(new Ref([1, 2, 3, 4], [4]).std().data, [Math.sqrt(5 / 3)]);
  });
  it('dropoutWithMask scales kept entries', () => {
    const x = new Ref([1, 2, 3, 4], [4]);
    close(x.dropoutWithMask(new Ref([1, 0, 1, 0], [4]), 0.5).data, [2, 0, 6, 0]);
  });
});

// ---------------------------------------------------------------------------------------------
// Tie-breaking gradients (documented semantics; not checkable by finite differences)
// ---------------------------------------------------------------------------------------------

describe('tie semantics', () => {
  it('max/min reductions split the gradient evenly among ties', () => {
    const x = new Ref([1, 3, 3, 0, 0, 0], [2, 3], { requiresGrad: true });
    x.max(1).backward(new Float64Array([1, 6]));
    expect(Array.from(x.grad ?? [])).toEqual([0, 0.5, 0.5, 2, 2, 2]);
    const y = new Ref([2, 1, 1], [3], { requiresGrad: true });
    y.min().backward();
    expect(Array.from(y.grad ?? [])).toEqual([0, 0.5, 0.5]);
  });
  it('maximum/minimum split 0.5/0.5 on ties', () => {
    const a = new Ref([1, 2, 3], [3], { requiresGrad: true });
    const b = new Ref([1, 5, 0], [3], { requiresGrad: true });
    a.maximum(b).sum().backward();
    expect(Array.from(a.grad ?? [])).toEqual([0.5, 0, 1]);
    expect(Array.from(b.grad ?? [])).toEqual([0.5, 1, 0]);
    a.zeroGrad();
    b.zeroGrad();
    a.minimum(b).sum().backward();
    expect(Array.from(a.grad ?? [])).toEqual([0.5, 1, 0]);
    expect(Array.from(b.grad ?? [])).toEqual([0.5, 0, 1]);
  });
  it('relu/abs have zero gradient at 0; clamp is inclusive', () => {
    const x = new Ref([0, -1, 1], [3], { requiresGrad: true });
    x.relu().add(x.abs()).sum().backward();
    expect(Array.from(x.grad ?? [])).toEqual([0, -1, 2]);
    const c = new Ref([0, 1, 2, 3], [4], { requiresGrad: true });
    c.clamp(1, 2).sum().backward();
    expect(Array.from(c.grad ?? [])).toEqual([0, 1, 1, 0]);
  });
});

// ---------------------------------------------------------------------------------------------
// Autograd mechanics and errors
// ---------------------------------------------------------------------------------------------

describe('autograd mechanics', () => {
  it('backward on a non-scalar without a gradient throws', () => {
    const x = new Ref([1, 2], [2], { requiresGrad: true });
    expect(() => x.mul(2).backward()).toThrow(/backward/);
    expect(() => x.mul(2).backward(new Float64Array(3))).toThrow(/backward/);
  });
  it('gradients accumulate across backward calls', () => {
    const x = new Ref([1, 2, 3], [3], { requiresGrad: true });
    const y = x.mul(x).sum();
    y.backward();
    expect(Array.from(x.grad ?? [])).toEqual([2, 4, 6]);
    y.backward();
    expect(Array.from(x.grad ?? [])).toEqual([4, 8, 12]);
  });
  it('explicit output gradient (Float64Array or Ref)', () => {
    const x = new Ref([1, 2], [2], { requiresGrad: true });
    x.mul(3).backward(new Ref([1, -1], [2]));
    expect(Array.from(x.grad ?? [])).toEqual([3, -3]);
  });
  it('gradient flows only to tensors that require grad', () => {
    const a = new Ref([1, 2], [2], { requiresGrad: true });
    const b = new Ref([3, 4], [2]);
    expect(b.mul(2).requiresGrad).toBe(false);
    a.mul(b).sum().backward();
    expect(Array.from(a.grad ?? [])).toEqual([3, 4]);
    expect(b.grad).toBeNull();
    expect(a.gt(b).requiresGrad).toBe(false);
    expect(a.argmax(0).requiresGrad).toBe(false);
  });
  it('ops never mutate their inputs', () => {
    const x = new Ref([1, -2, 3, 4], [2, 2], { requiresGrad: true });
    const before = x.toArray();
    x.reshape([4]).relu().exp().sum().backward();
    x.contiguous().transpose(0, 1).neg();
    expect(x.toArray()).toEqual(before);
  });
  it('i32 tensors cannot require grad; views keep i32', () => {
    expect(() => new Ref([1], [1], { dtype: 'i32', requiresGrad: true })).toThrow();
    expect(() => new Ref([1.5], [1], { dtype: 'i32' })).toThrow();
    expect(new Ref([1, 2], [2], { dtype: 'i32' }).reshape([1, 2]).dtype).toBe('i32');
  });
  it('deep chains do not overflow the stack', () => {
    const x = new Ref([1], [], { requiresGrad: true });
    let y = x;
    for (let i = 0; i < 20000; i++) y = y.mul(1);
    y.backward();
    expect(x.grad?.[0]).toBe(1);
  });
  it('bad inputs throw errors naming the op and shapes', () => {
    const a = Ref.zeros([2, 3]);
    expect(() => a.add(Ref.zeros([4]))).toThrow(/add.*\[2, 3\].*\[4\]/);
    expect(() => a.matmul(Ref.zeros([2, 3]))).toThrow(/matmul.*\[2, 3\]/);
    expect(() => a.sum(2)).toThrow(/sum: axis 2/);
    expect(() => a.reshape([4, -1])).toThrow(/reshape/);
    expect(() => a.expand([3, 3])).toThrow(/expand/);
    expect(() => concat([a, Ref.zeros([3, 3])], 1)).toThrow(/concat/);
    expect(() => a.indexSelect(1, new Ref([3], [1], { dtype: 'i32' }))).toThrow(/indexSelect/);
    expect(() => layerNorm(a, [2])).toThrow(/layerNorm/);
    expect(() => new Ref([1, 2], [3])).toThrow(/Ref/);
  });
});

describe('reproducible RNG and speed', () => {
  it('same seed, same numbers; different seeds differ', () => {
    expect(Ref.randn([5], new Rng(1)).toArray()).toEqual(Ref.randn([5], new Rng(1)).toArray());
    expect(Ref.rand([5], new Rng(1)).toArray()).not.toEqual(Ref.rand([5], new Rng(2)).toArray());
    const u = Ref.rand([1000], new Rng(3), { low: -2, high: 5 }).data;
    expect(Math.min(...u)).toBeGreaterThanOrEqual(-2);
    expect(Math.max(...u)).toBeLessThan(5);
    const n = Ref.randn([20000], new Rng(4)).data;
    const mean = n.reduce((s, v) => s + v, 0) / n.length;
    const v = n.reduce((s, x) => s + (x - mean) ** 2, 0) / n.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(v - 1)).toBeLessThan(0.05);
  });
  it('300x300 matmul backward: dA = 1 @ B^T (row sums of B)', () => {
    const rng = new Rng(5);
    const a = Ref.randn([300, 300], rng, { requiresGrad: true });
    const b = Ref.randn([300, 300], rng, { requiresGrad: true });
    a.matmul(b).sum().backward();
    const colsum = Array.from({ length: 300 }, (_, k) => b.data.slice(k * 300, k * 300 + 300).reduce((s, q) => s + q, 0));
    close(a.grad?.slice(0, 300) ?? [], colsum, 1e-12);
  });
});
