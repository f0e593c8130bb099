// The one helper every op test goes through (in the spirit of tinygrad's helper_test_op): run an op
// on the GPU and on the float64 CPU reference with the same fresh random inputs, then compare the
// outputs and the gradients of every input against a random cotangent.
import { expect } from 'vitest';
import * as t from '../src/index.js';
import { Ref, Rng } from './reference/ref.js';

/** Tolerances, in one place: |gpu - ref| <= atol + rtol * |ref|. */
export const TOL = {
  f32: {
    forward: { rtol: 1e-4, atol: 1e-5 },
    grad: { rtol: 1e-3, atol: 1e-4 },
  },
} as const;

/** How one input is drawn. */
export type InputSpec =
  | readonly number[] // f32 normal(0, 1) of this shape
  | {
      shape: readonly number[];
      dtype?: 'f32' | 'i32';
      /** f32: uniform in [low, high) instead of normal; i32: integers in [low, high). */
      low?: number;
      high?: number;
      /** f32: keep |x| >= this (away from kinks at 0). */
      awayFromZero?: number;
      /** no gradient for this input */
      noGrad?: boolean;
      /** explicit values (for index inputs that must hit specific rows) */
      values?: ArrayLike<number>;
    };

let seedCounter = 0;
/** A fresh seed per call (different every run unless REF_SEED is set), printed on failure. */
export function freshSeed(): number {
  const base = process.env.REF_SEED ? Number(process.env.REF_SEED) : (Date.now() ^ (Math.random() * 2 ** 31)) >>> 0;
  return (base + 7919 * ++seedCounter) >>> 0;
}

function draw(spec: InputSpec, rng: Rng): { data: Float32Array | Int32Array; shape: number[]; dtype: 'f32' | 'i32'; grad: boolean } {
  const s = Array.isArray(spec) ? { shape: spec as readonly number[] } : (spec as Exclude<InputSpec, readonly number[]>);
  const n = s.shape.reduce((a, b) => a * b, 1);
  const dtype = s.dtype ?? 'f32';
  if (s.values) return { data: dtype === 'i32' ? Int32Array.from(s.values) : Float32Array.from(s.values), shape: [...s.shape], dtype, grad: dtype === 'f32' && !s.noGrad };
  if (dtype === 'i32') {
    return { data: Int32Array.from({ length: n }, () => rng.int(s.low ?? 0, s.high ?? 10)), shape: [...s.shape], dtype, grad: false };
  }
  const data = Float32Array.from({ length: n }, () => {
    let v = s.low !== undefined ? rng.uniform(s.low, s.high ?? s.low + 1) : rng.normal();
    if (s.awayFromZero && Math.abs(v) < s.awayFromZero) v = Math.sign(v || 1) * (s.awayFromZero + Math.abs(v));
    // never exactly zero
    return v === 0 ? 0.5 : v;
  });
  return { data, shape: [...s.shape], dtype, grad: !s.noGrad };
}

/** |got - want| <= atol + rtol * |want| (+ extra[i], a per-element rounding allowance) everywhere. */
export function expectClose(name: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: { rtol: number; atol: number; extra?: ArrayLike<number> }): void {
  expect(got.length, `${name}: length`).toBe(want.length);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < want.length; i++) {
    const w = want[i];
    const g = got[i];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (w === g) continue; // also equal infinities
    const excess = Math.abs(g - w) - (tol.atol + tol.rtol * Math.abs(w) + (tol.extra ? tol.extra[i] : 0));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    const extra = tol.extra ? `, rounding allowance ${tol.extra[worst]}` : '';
    expect.fail(`${name}: element ${worst}: got ${got[worst]}, want ${want[worst]} (rtol ${tol.rtol}, atol ${tol.atol}${extra})`);
  }
}

export interface OpTestOptions {
  /** Compare gradients too (default true). */
  grad?: boolean;
  /** Override TOL.f32 for this op, e.g. for long accumulations. */
  forwardTol?: { rtol: number; atol: number };
  gradTol?: { rtol: number; atol: number };
  /**
   * For sums of products (matmul, linear): the length n of the longest sum. The op's reference is run
   * a second time on |inputs| and |cotangent|, which gives each output and gradient element its
   * magnitude m = sum of |terms|; the tolerance grows by ROUNDING.lambda * sqrt(n) * u * m, the bound
   * an f32 sum of n terms stays under with probability >= 1 - 2 exp(-lambda^2 / 2) (Higham & Mary,
   * 2019). Without it a sum that cancels to near zero fails atol on rounding alone.
   */
  sumLength?: number;
}

/** Rounding model for sumLength: f32 unit roundoff, and lambda = 6 (failure odds 3e-8 per element). */
export const ROUNDING = { u: 2 ** -24, lambda: 6 } as const;

/** Tolerance plus a per-element allowance (the rounding bound of a long sum). */
function withAllowance(tol: { rtol: number; atol: number }, allowance: ArrayLike<number> | null): { rtol: number; atol: number; extra?: ArrayLike<number> } {
  return allowance ? { ...tol, extra: allowance } : tol;
}

/**
 * Runs gpuFn on GPU tensors and refFn on Refs with the same random inputs; compares output values,
 * shape and dtype, and (unless opts.grad === false) every f32 input's gradient for a random cotangent.
 * Returns the number of comparisons made (forward + gradients).
 */
export async function helperTestOp(
  name: string,
  inputs: readonly InputSpec[],
  gpuFn: (...xs: t.Tensor[]) => t.Tensor,
  refFn: (...xs: Ref[]) => Ref,
  opts: OpTestOptions = {},
): Promise<number> {
  const seed = freshSeed();
  const rng = new Rng(seed);
  const label = `${name} ${JSON.stringify(inputs.map((s) => (Array.isArray(s) ? s : (s as { shape: number[] }).shape)))} seed ${seed}`;
  const drawn = inputs.map((s) => draw(s, rng));
  const wantGrad = opts.grad !== false;
  const refs = drawn.map((d) => new Ref(d.data, d.shape, { dtype: d.dtype, requiresGrad: wantGrad && d.grad }));
  const rout = refFn(...refs);
  const anyGrad = wantGrad && rout.requiresGrad;
  const cot = anyGrad ? Float32Array.from({ length: rout.numel }, () => rng.normal()) : null;

  // the same reference on |inputs| and |cotangent|: each element's sum of |terms| (see sumLength)
  let magnitude: { out: ArrayLike<number>; grads: (ArrayLike<number> | null)[] } | null = null;
  if (opts.sumLength !== undefined) {
    const k = ROUNDING.lambda * Math.sqrt(opts.sumLength) * ROUNDING.u;
    const absRefs = drawn.map((d) => new Ref(d.data.map(Math.abs), d.shape, { dtype: d.dtype, requiresGrad: wantGrad && d.grad }));
    const mout = refFn(...absRefs);
    if (cot) mout.backward(Float64Array.from(cot, Math.abs));
    magnitude = { out: mout.data.map((m) => k * m), grads: absRefs.map((r) => (r.grad ? r.grad.map((m) => k * m) : null)) };
  }

  checkCount.calls++;
  const gins = drawn.map((d) => t.tensor(d.data, { shape: d.shape, dtype: d.dtype, requiresGrad: wantGrad && d.grad }));
  let checks = 0;
  try {
    const gout = t.tidy(() => {
      const o = gpuFn(...gins);
      if (cot) o.backward(t.tensor(cot, { shape: o.shape }));
      return o;
    });
    expect([...gout.shape], `${label}: shape`).toEqual(rout.shape);
    expect(gout.dtype, `${label}: dtype`).toBe(rout.dtype);
    expectClose(`${label}: forward`, await gout.toArray(), rout.data, withAllowance(opts.forwardTol ?? TOL.f32.forward, magnitude?.out ?? null));
    checks++;
    gout.dispose();
    if (cot) {
      rout.backward(Float64Array.from(cot));
      for (let i = 0; i < gins.length; i++) {
        if (!refs[i].requiresGrad) continue;
        const want = refs[i].grad ?? new Float64Array(refs[i].numel);
        const g = gins[i].grad;
        const got = g ? await g.toArray() : new Float32Array(refs[i].numel);
        if (g) expect([...g.shape], `${label}: grad ${i} shape`).toEqual(refs[i].shape);
        expectClose(`${label}: grad of input ${i}`, got, want, withAllowance(opts.gradTol ?? TOL.f32.grad, magnitude?.grads[i] ?? null));
        checks++;
      }
    }
  } finally {
    for (const g of gins) g.dispose();
  }
  checkCount.comparisons += checks;
  return checks;
}

/** helperTestOp calls and output/gradient comparisons made in this test file (printed after it). */
export const checkCount = { calls: 0, comparisons: 0 };

/** Prints this file's check count (call from afterAll). */
export function reportChecks(file: string): void {
  console.log(`${file}: ${checkCount.calls} reference checks, ${checkCount.comparisons} forward/gradient comparisons`);
}
