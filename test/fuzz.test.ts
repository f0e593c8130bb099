// The fuzz suite: a seeded generator of bad (and some good) inputs across the public API: ops
// (wrong types, shapes, dtypes, axes, NaN/inf values, empty and 0-d tensors, views, out-of-range
// indices), nn modules (bad constructor arguments, wrong input shapes), generate (bad options), the
// Trainer (bad options), the losses (wrong shapes and dtypes), checkpoint files (truncated,
// bit-flipped, lying headers and configs) and CLI flags.
//
// Every case must end in one of:
//   refused      a TrimpiError, thrown by the call (for the CLI: exit status 2 with the usage)
//   refused-gpu  a TrimpiError from the GPU-side range check, raised at the next (unrelated) readback
//                and naming the op that received the bad index
//   matched      a result equal to the float64 reference (test/reference/ref.ts), NaN and inf included
//   accepted     a valid call without a float64 reference (random draws, generation, module
//                construction), checked for its invariants (shapes, ranges, finite log-probs)
// and after every case a canary computation must still be right, and no GPU memory may have leaked
// (memoryStats().liveStorages before and after). No case may crash or hang (each has a deadline).
//
// Seeds: the run's base seed is random unless REF_SEED is set (as test/helpers.ts); case i uses
// seed (base + 7919 i) >>> 0 and a failure prints it. FUZZ_SEED=<case seed> runs that one case
// (in every category; the category is part of the printed name), FUZZ_SCALE=<x> scales the counts.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../src/index.js';
import { TrimpiError } from '../src/index.js';
import * as R from './reference/ref.js';
import { Ref, Rng } from './reference/ref.js';
import { TOL } from './helpers.js';
import { refParams, refVlmLogits } from './nn/ref_vlm.js';

const BASE_SEED = process.env.REF_SEED !== undefined ? Number(process.env.REF_SEED) >>> 0 : (Date.now() ^ (Math.random() * 2 ** 31)) >>> 0;
const ONLY = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : null;
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const CASE_TIMEOUT_MS = 20_000;
const ROOT = join(import.meta.dirname, '..');

type Outcome = 'refused' | 'refused-gpu' | 'matched' | 'accepted';
const counts = new Map<string, Map<Outcome, number>>();
const failures: string[] = [];
let totalCases = 0;
/** Cases whose inputs were bad: refused ones, and accepted ones with NaN/inf values, empty or 0-d tensors or views. */
let badInputs = 0;
const started = Date.now();

function tally(category: string, o: Outcome): void {
  let m = counts.get(category);
  if (!m) counts.set(category, (m = new Map()));
  m.set(o, (m.get(o) ?? 0) + 1);
}

/** Thrown by a case's checks: the case failed (the message says how). */
class CaseFailure extends Error {}
function fail(msg: string): never {
  throw new CaseFailure(msg);
}

// ---- values and tensors ---------------------------------------------------------------------------

const SPECIALS = [NaN, Infinity, -Infinity, 0, -0, 1e-30, -1e-30];

function draw(rng: Rng, n: number, dtype: 'f32' | 'i32', special: boolean, low = -3, high = 6): number[] {
  return Array.from({ length: n }, () => {
    if (dtype === 'i32') return rng.int(low, high);
    if (special && rng.next() < 0.3) return SPECIALS[rng.int(0, SPECIALS.length)];
    return Math.fround(rng.normal());
  });
}

/** How a tensor argument is made: data of a base shape, then an optional view giving `shape`. */
interface TensorSpec {
  shape: number[];
  dtype: 'f32' | 'i32';
  view: 'none' | 'T' | 'slice' | 'expand';
  base: number[];
  data: number[];
  disposed: boolean;
}

// few shapes and ranks: every new (op, rank, layout) compiles a pipeline (~0.2 s each on lavapipe
// without Mesa's shader cache), and the cases are about values and arguments, not sizes
const SHAPES: number[][] = [[], [5], [2, 3], [0], [2, 0], [4, 4], [1], [2, 1, 3]];

function tensorSpec(rng: Rng, shape: number[], dtype: 'f32' | 'i32', o: { special?: boolean; low?: number; high?: number; views?: boolean } = {}): TensorSpec {
  let view: TensorSpec['view'] = 'none';
  let base = [...shape];
  const v = o.views === false ? 1 : rng.next();
  if (v < 0.1 && shape.length >= 2) {
    view = 'T';
    base = [...shape].reverse();
  } else if (v < 0.18 && shape.length >= 1) {
    view = 'slice';
    base = [shape[0] + 1, ...shape.slice(1)];
  } else if (v < 0.26 && shape.length >= 1 && shape.some((d) => d > 1)) {
    view = 'expand';
    const ax = shape.findIndex((d) => d > 1);
    base = shape.map((d, i) => (i === ax ? 1 : d));
  }
  const n = base.reduce((a, b) => a * b, 1);
  return { shape, dtype, view, base, data: draw(rng, n, dtype, o.special ?? true, o.low, o.high), disposed: false };
}

function gpuTensor(s: TensorSpec): t.Tensor {
  const base = t.tensor(s.dtype === 'i32' ? Int32Array.from(s.data) : Float32Array.from(s.data), { shape: s.base, dtype: s.dtype });
  let x = base;
  if (s.view === 'T') x = base.T;
  else if (s.view === 'slice') x = base.slice(0, 1);
  else if (s.view === 'expand') x = base.expand(s.shape);
  if (s.disposed) {
    x.dispose();
    if (x !== base) base.dispose();
  }
  return x;
}

function refTensor(s: TensorSpec): Ref {
  const base = new Ref(Float64Array.from(s.dtype === 'f32' ? s.data.map(Math.fround) : s.data), s.base, { dtype: s.dtype });
  if (s.view === 'T') return base.permute([...s.base.keys()].reverse());
  if (s.view === 'slice') return base.slice(0, 1, s.base[0]);
  if (s.view === 'expand') return base.expand(s.shape);
  return base;
}

const hasNonFinite = (s: TensorSpec): boolean => s.data.some((v) => !Number.isFinite(v));

// ---- arguments ------------------------------------------------------------------------------------

/** An argument of a fuzzed call: a tensor spec (built for both sides) or a plain JS value. */
type Arg = { tensor: TensorSpec } | { value: unknown };
const isT = (a: Arg): a is { tensor: TensorSpec } => 'tensor' in a;

/** Values of the wrong type for any argument. */
const GARBAGE: unknown[] = ['x', null, {}, [], true, () => 1, NaN, 1.5, -1, 1e10, [1, 'a'], Infinity, 2 ** 40];

function garbage(rng: Rng): unknown {
  return GARBAGE[rng.int(0, GARBAGE.length)];
}

/** A description of the args for failure messages. */
function show(args: Arg[]): string {
  return args.map((a) => {
    if (!isT(a)) {
      const v = a.value;
      return typeof v === 'function' ? 'fn' : typeof v === 'number' || v === undefined ? String(v) : JSON.stringify(v) ?? String(v);
    }
    const s = a.tensor;
    const d = s.data.length <= 24 ? ` [${s.data.map((v) => (Object.is(v, -0) ? '-0' : String(v))).join(',')}]` : '';
    return `T(${s.dtype} ${JSON.stringify(s.shape)}${s.view !== 'none' ? ' ' + s.view : ''}${s.disposed ? ' disposed' : ''}${d})`;
  }).join(', ');
}

// ---- comparison ---------------------------------------------------------------------------------

function closeTo(g: number, w: number, tol: { rtol: number; atol: number }): boolean {
  if (Number.isNaN(w)) return Number.isNaN(g);
  const wf = Math.fround(w);
  if (!Number.isFinite(wf)) return g === wf;
  if (g === w || g === wf) return true;
  return Math.abs(g - w) <= tol.atol + tol.rtol * Math.abs(w);
}

interface Result {
  shape: readonly number[];
  data: ArrayLike<number>;
}

async function readResults(out: unknown): Promise<Result[]> {
  const list: t.Tensor[] = out instanceof t.Tensor ? [out] : Array.isArray(out) ? (out as t.Tensor[]) : Object.values(out as Record<string, t.Tensor>);
  const res: Result[] = [];
  for (const x of list) res.push({ shape: [...x.shape], data: await x.toArray() });
  return res;
}

function refResults(out: unknown): Result[] {
  const list: Ref[] = out instanceof Ref ? [out] : Array.isArray(out) ? (out as Ref[]) : Object.values(out as Record<string, Ref>);
  return list.map((r) => ({ shape: r.shape, data: r.data }));
}

function compare(got: Result[], want: Result[], tol: { rtol: number; atol: number } = TOL.f32.forward): void {
  if (got.length !== want.length) fail(`${got.length} results, the reference has ${want.length}`);
  got.forEach((g, k) => {
    const w = want[k];
    if (JSON.stringify([...g.shape]) !== JSON.stringify([...w.shape])) fail(`result ${k}: shape ${JSON.stringify(g.shape)}, the reference ${JSON.stringify(w.shape)}`);
    for (let i = 0; i < w.data.length; i++) {
      if (!closeTo(g.data[i], w.data[i], tol)) fail(`result ${k} element ${i}: got ${g.data[i]}, the reference ${w.data[i]}`);
    }
  });
}

// ---- the case runner ------------------------------------------------------------------------------

let canaryInput: t.Tensor;

/** A computation that must stay right after every case; returns the error it raised, if any. */
async function canary(): Promise<unknown> {
  const y = t.tidy(() => canaryInput.mul(2).sum());
  try {
    const v = await y.item();
    if (v !== 12) fail(`canary computed ${v}, expected 12`);
    return null;
  } catch (e) {
    if (e instanceof CaseFailure) throw e;
    return e;
  } finally {
    y.dispose();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => {
    timer = setTimeout(() => reject(new CaseFailure(`${what} did not finish within ${ms} ms (hang)`)), ms);
  })]).finally(() => clearTimeout(timer));
}

/**
 * What a case does. `run` performs the call and returns its outcome; a TrimpiError it throws counts
 * as 'refused'. `gpuOp`: when set, a TrimpiError raised by the canary's readback right after the case
 * is the GPU-side check and must name this op ('refused-gpu').
 */
interface CaseBody {
  name: string;
  run: () => Promise<Outcome>;
  gpuOp?: string;
  /** The case must be refused (a TrimpiError): an accepted call fails it. */
  mustRefuse?: boolean;
  /** The inputs hold edge values (NaN/inf, empty or 0-d tensors, views) even if the call is valid. */
  edge?: boolean;
}

/** Runs `count` cases of a category; `make(rng, i)` builds case i from its seeded rng. */
async function fuzz(category: string, count: number, make: (rng: Rng, i: number) => CaseBody): Promise<void> {
  const n = Math.max(1, Math.round(count * SCALE));
  for (let i = 0; i < n; i++) {
    const seed = (BASE_SEED + 7919 * (i + 1) + hashName(category)) >>> 0;
    if (ONLY !== null && seed !== ONLY) continue;
    totalCases++;
    let body: CaseBody | null = null;
    try {
      body = make(new Rng(seed), i);
      const before = t.memoryStats().liveStorages;
      let outcome: Outcome;
      try {
        outcome = await withTimeout(body.run(), CASE_TIMEOUT_MS, body.name);
      } catch (e) {
        if (e instanceof CaseFailure) throw e;
        if (!(e instanceof TrimpiError)) fail(`threw ${(e as Error)?.constructor?.name ?? typeof e} instead of a TrimpiError: ${(e as Error)?.stack ?? String(e)}`);
        outcome = 'refused';
      }
      if (body.mustRefuse && outcome !== 'refused') fail(`expected a TrimpiError, the call was accepted (${outcome})`);
      // the canary: a GPU-side check of this case surfaces here, and must name the case's op
      const err = await withTimeout(canary(), CASE_TIMEOUT_MS, 'the canary');
      if (err) {
        if (!(err instanceof TrimpiError)) fail(`the canary threw ${String(err)}`);
        if (!body.gpuOp) fail(`the canary raised an error that no op of this case should: ${err.message}`);
        if (err.op !== body.gpuOp) fail(`the GPU-side check was reported as op '${err.op}', expected '${body.gpuOp}': ${err.message}`);
        if (outcome === 'matched') fail(`a result matched the reference but the GPU-side check also fired: ${err.message}`);
        outcome = 'refused-gpu';
        const again = await canary();
        if (again) fail(`the canary still fails after the GPU-side error was reported: ${String(again)}`);
      }
      const after = t.memoryStats().liveStorages;
      if (after !== before) fail(`leaked ${after - before} GPU storage(s)`);
      tally(category, outcome);
      if (outcome === 'refused' || outcome === 'refused-gpu' || body.edge) badInputs++;
    } catch (e) {
      const what = body ? body.name : '(building the case)';
      failures.push(`${category} case ${i} seed ${seed} (REF_SEED=${BASE_SEED}, or FUZZ_SEED=${seed} for this case alone): ${what}: ${e instanceof Error ? e.message : String(e)}`);
      // keep going on a clean slate: drop any pending GPU error
      try {
        await canary();
      } catch {
        // reported above
      }
    }
  }
}

function hashName(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/**
 * A call on tensors and values, compared with the float64 reference: builds the args on both sides
 * (GPU inside a tidy), runs the op; a TrimpiError is 'refused'; otherwise the reference must accept the
 * same args and agree. `valid` says whether the args are well-typed for the op (else the call must be
 * refused and the reference is not consulted); `ref` null: no reference, only `invariants` are checked.
 * `unrelatedReadFirst`: the call may hold an out-of-range index; an unrelated readback comes first and
 * must report it under `gpuOp`.
 */
function opCase(name: string, args: Arg[], gpu: (...xs: unknown[]) => unknown, ref: ((...xs: unknown[]) => unknown) | null,
  o: { valid?: boolean; gpuOp?: string; tol?: { rtol: number; atol: number }; unrelatedReadFirst?: boolean; invariants?: (got: Result[]) => void } = {}): CaseBody {
  const valid = o.valid ?? true;
  const edge = args.some((a) => isT(a) && (hasNonFinite(a.tensor) || a.tensor.shape.length === 0 || a.tensor.shape.includes(0) || a.tensor.view !== 'none'));
  return {
    name: `${name}(${show(args)})`,
    gpuOp: o.gpuOp,
    mustRefuse: !valid,
    edge,
    run: async () => {
      const out = t.tidy(() => {
        const xs = args.map((a) => (isT(a) ? gpuTensor(a.tensor) : a.value));
        return gpu(...xs);
      });
      let got: Result[];
      try {
        if (o.unrelatedReadFirst) {
          // a possibly bad index whose result is not read yet: an unrelated readback must report it,
          // naming the op that received it
          const err = (await canary()) as Error | null;
          if (err) {
            if (!(err instanceof TrimpiError) || err.op !== o.gpuOp) fail(`the GPU-side check was reported as ${err instanceof TrimpiError ? `op '${err.op}'` : String(err)}, expected op '${o.gpuOp}': ${err.message}`);
            return 'refused-gpu';
          }
        }
        got = await readResults(out);
      } finally {
        disposeAll(out);
      }
      if (!valid) return 'matched'; // mustRefuse turns this into a failure
      if (ref === null) {
        o.invariants?.(got);
        return 'accepted';
      }
      let want: Result[];
      try {
        want = refResults(ref(...args.map((a) => (isT(a) ? refTensor(a.tensor) : a.value))));
      } catch (e) {
        return fail(`the engine accepted arguments the reference refuses (${(e as Error).message})`);
      }
      compare(got, want, o.tol);
      return 'matched';
    },
  };
}

function disposeAll(out: unknown): void {
  if (out instanceof t.Tensor) out.dispose();
  else if (Array.isArray(out)) out.forEach(disposeAll);
  else if (out && typeof out === 'object') Object.values(out).forEach(disposeAll);
}

// ---- ops --------------------------------------------------------------------------------------------

const UNARY = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'sigmoid', 'relu', 'silu', 'abs', 'log1p', 'expm1', 'logsigmoid', 'erf',
  'sin', 'cos', 'sign', 'floor', 'round'] as const;
const BINARY = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
const REDUCE = ['sum', 'mean', 'max', 'min', 'prod'] as const;

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(0, xs.length)];
const shapeOf = (rng: Rng): number[] => [...pick(rng, SHAPES)];
/** A shape that broadcasts with `s` (trailing dims kept or set to 1), or an unrelated one. */
function partner(rng: Rng, s: number[]): number[] {
  if (rng.next() < 0.2) return shapeOf(rng);
  const k = rng.int(0, s.length + 1);
  return s.slice(s.length - k).map((d) => (rng.next() < 0.3 ? 1 : d));
}
/**
 * A tensor argument: usually f32 of `shape`; sometimes i32, disposed, or garbage. For an `optional`
 * argument (layerNorm's weight) a garbage null or undefined means "none" and is valid.
 */
function tensorArg(rng: Rng, shape: number[], o: { dtype?: 'f32' | 'i32'; wrong?: number; special?: boolean; low?: number; high?: number; optional?: boolean } = {}): { arg: Arg; ok: boolean } {
  const r = rng.next();
  const wrong = o.wrong ?? 0.12;
  if (r < wrong * 0.5) {
    const value = garbage(rng);
    return { arg: { value }, ok: o.optional === true && (value === null || value === undefined) };
  }
  if (r < wrong * 0.75) {
    const s = tensorSpec(rng, shape, o.dtype ?? 'f32');
    s.disposed = true;
    return { arg: { tensor: s }, ok: false };
  }
  const dtype = o.dtype ?? (r < wrong ? 'i32' : 'f32');
  return { arg: { tensor: tensorSpec(rng, shape, dtype, { special: o.special, low: o.low, high: o.high }) }, ok: true };
}
/** An axis argument: usually in range for `rank`, sometimes out of range or of the wrong type. */
/** Whether `v` is a valid axis for `rank` dims (a 0-d tensor takes 0 and -1, as in PyTorch). */
const axisValid = (v: unknown, rank: number): boolean =>
  typeof v === 'number' && Number.isInteger(v) && v >= -Math.max(rank, 1) && v < Math.max(rank, 1);
/** Whether `v` is a valid axes argument: undefined, an axis, or a list of distinct axes ([] = all). */
function axesValid(v: unknown, rank: number): boolean {
  if (v === undefined || axisValid(v, rank)) return true;
  if (!Array.isArray(v) || !v.every((a) => axisValid(a, rank))) return false;
  const norm = v.map((a: number) => (a < 0 ? a + Math.max(rank, 1) : a));
  return new Set(norm).size === norm.length;
}
/** An axis argument: usually in range for `rank`, sometimes out of range or of the wrong type. */
function axisArg(rng: Rng, rank: number): { arg: Arg; ok: boolean } {
  const lim = Math.max(rank, 1);
  const v = rng.next() < 0.08 ? garbage(rng) : rng.int(-lim - 1, lim + 1);
  return { arg: { value: v }, ok: axisValid(v, rank) };
}
function axesArg(rng: Rng, rank: number): { arg: Arg; ok: boolean } {
  const r = rng.next();
  let v: unknown;
  if (r < 0.25) v = undefined;
  else if (r < 0.35 && rank > 1) v = [...Array(rank).keys()].filter(() => rng.next() < 0.5);
  else if (r < 0.4) v = [0, -Math.max(rank, 1)]; // a repeated axis (for rank 1 and 0-d)
  else v = (axisArg(rng, rank).arg as { value: unknown }).value;
  return { arg: { value: v }, ok: axesValid(v, rank) };
}
const boolArg = (rng: Rng): { arg: Arg; ok: boolean } => (rng.next() < 0.08 ? { arg: { value: pick(rng, ['yes', 1, null]) }, ok: false } : { arg: { value: rng.next() < 0.5 }, ok: true });

/** Whether an axisArg drawn for rank `rank` is in range for `lim` dims (stack takes rank + 1). */
function axisOk(ax: { arg: Arg; ok: boolean }, lim: number): boolean {
  const v = (ax.arg as { value: unknown }).value;
  return typeof v === 'number' && Number.isInteger(v) && v >= -Math.max(lim, 1) && v < Math.max(lim, 1);
}

/** The reference of an axis op on a 0-d tensor: PyTorch treats it as a row of one. */
function scalarAware(f: (x: Ref, axis: number | number[] | undefined, ...rest: unknown[]) => unknown) {
  return (x: unknown, axis: unknown, ...rest: unknown[]): unknown => {
    const r = x as Ref;
    if (r.ndim > 0) return f(r, axis as number, ...rest);
    const out = f(r.reshape([1]), axis === undefined ? undefined : 0, ...rest);
    const toScalar = (o: Ref): Ref => (o.ndim === 1 || (o.ndim === 0) ? o.reshape([]) : o);
    if (out instanceof Ref) return toScalar(out);
    if (Array.isArray(out)) return out.map(toScalar);
    return Object.fromEntries(Object.entries(out as Record<string, Ref>).map(([k, v]) => [k, toScalar(v)]));
  };
}

/** One random op call. */
function opFuzzCase(rng: Rng): CaseBody {
  const kind = rng.int(0, 100);
  const shape = shapeOf(rng);
  const rank = shape.length;
  if (kind < 18) {
    const op = pick(rng, UNARY);
    const x = tensorArg(rng, shape);
    return opCase(op, [x.arg], (a) => (t as unknown as Record<string, (x: unknown) => t.Tensor>)[op](a),
      (a) => (a as unknown as Record<string, () => Ref>)[op](), { valid: x.ok || (x.arg as { tensor?: TensorSpec }).tensor?.dtype === 'i32' });
  }
  if (kind < 34) {
    const op = pick(rng, BINARY);
    const a = tensorArg(rng, shape);
    const bShape = partner(rng, shape);
    const bNum = rng.next() < 0.2;
    const b = bNum ? { arg: { value: pick(rng, [2, -1.5, 0, NaN, Infinity, 3]) } as Arg, ok: true } : tensorArg(rng, bShape);
    // any number is a valid operand (a garbage draw of 1.5 or Infinity included)
    const iOk = (p: { arg: Arg; ok: boolean }): boolean => p.ok || (isT(p.arg) && !p.arg.tensor.disposed) || (!isT(p.arg) && typeof p.arg.value === 'number');
    return opCase(op, [a.arg, b.arg], (x, y) => (t as unknown as Record<string, (x: unknown, y: unknown) => t.Tensor>)[op](x, y),
      (x, y) => (Ref.lift(x as Ref | number) as unknown as Record<string, (y: unknown) => Ref>)[op](y), { valid: iOk(a) && iOk(b) });
  }
  if (kind < 48) {
    const op = pick(rng, REDUCE);
    const x = tensorArg(rng, shape, { dtype: op === 'mean' ? 'f32' : undefined });
    const ax = axesArg(rng, rank);
    const kd = boolArg(rng);
    return opCase(op, [x.arg, ax.arg, kd.arg], (a, b, c) => (t as unknown as Record<string, (...xs: unknown[]) => t.Tensor>)[op](a, b, c),
      scalarAware((a, b, c) => (a as unknown as Record<string, (...xs: unknown[]) => Ref>)[op](b, c)),
      { valid: (x.ok || (op !== 'mean' && isT(x.arg) && !x.arg.tensor.disposed)) && ax.ok && kd.ok });
  }
  if (kind < 54) {
    const op = pick(rng, ['argmax', 'argmin'] as const);
    const x = tensorArg(rng, shape);
    const ax = rng.next() < 0.3 ? { arg: { value: undefined } as Arg, ok: true } : axisArg(rng, rank);
    const kd = boolArg(rng);
    return opCase(op, [x.arg, ax.arg, kd.arg], (a, b, c) => t[op](a as t.Tensor, b as number, c as boolean),
      scalarAware((a, b, c) => (a as Ref)[op](b as number, c as boolean)), { valid: (x.ok || (isT(x.arg) && !x.arg.tensor.disposed)) && ax.ok && kd.ok });
  }
  if (kind < 60) {
    const op = pick(rng, ['softmax', 'logSoftmax'] as const);
    const x = tensorArg(rng, shape, { dtype: 'f32' });
    const ax = axisArg(rng, rank);
    return opCase(op, [x.arg, ax.arg], (a, b) => t[op](a as t.Tensor, b as number),
      scalarAware((a, b) => (a as Ref)[op](b as number)), { valid: x.ok && ax.ok });
  }
  if (kind < 63) {
    const x = tensorArg(rng, shape, { dtype: 'f32' });
    const ax = axesArg(rng, rank);
    return opCase('logsumexp', [x.arg, ax.arg], (a, b) => t.logsumexp(a as t.Tensor, b as number),
      scalarAware((a, b) => (a as Ref).logsumexp(b as number)), { valid: x.ok && ax.ok });
  }
  if (kind < 67) {
    const x = tensorArg(rng, shape, { dtype: 'f32' });
    const lo = rng.next() < 0.1 ? NaN : rng.next() < 0.3 ? undefined : rng.normal();
    const hi = rng.next() < 0.3 ? undefined : (lo ?? 0) + Math.abs(rng.normal()) * (rng.next() < 0.1 ? -1 : 1);
    const ok = x.ok && !Number.isNaN(lo) && (lo === undefined || hi === undefined || lo <= hi);
    return opCase('clamp', [x.arg, { value: lo }, { value: hi }], (a, b, c) => t.clamp(a as t.Tensor, b as number, c as number),
      (a, b, c) => (a as Ref).clamp(b as number, c as number), { valid: ok });
  }
  if (kind < 71) {
    const c = tensorArg(rng, partner(rng, shape), { special: true });
    const a = tensorArg(rng, shape);
    const b = rng.next() < 0.3 ? { arg: { value: 7 } as Arg, ok: true } : tensorArg(rng, partner(rng, shape));
    const okT = (p: { arg: Arg; ok: boolean }): boolean => p.ok || (isT(p.arg) && !p.arg.tensor.disposed);
    const okOperand = (p: { arg: Arg; ok: boolean }): boolean => okT(p) || (!isT(p.arg) && typeof p.arg.value === 'number');
    return opCase('where', [c.arg, a.arg, b.arg], (x, y, z) => t.where(x as t.Tensor, y as t.Tensor, z as t.Tensor),
      (x, y, z) => R.where(x as Ref, y as Ref, z as Ref), { valid: okT(c) && okOperand(a) && okOperand(b) });
  }
  if (kind < 74) {
    const x = tensorArg(rng, shape, { dtype: 'f32' });
    const m = tensorArg(rng, partner(rng, shape), { special: true });
    const v = rng.next() < 0.1 ? 'x' : pick(rng, [0, -Infinity, NaN, 5]);
    return opCase('maskedFill', [x.arg, m.arg, { value: v }], (a, b, c) => t.maskedFill(a as t.Tensor, b as t.Tensor, c as number),
      (a, b, c) => (a as Ref).maskedFill(b as Ref, c as number), { valid: x.ok && (m.ok || (isT(m.arg) && !m.arg.tensor.disposed)) && typeof v === 'number' });
  }
  if (kind < 78) {
    // matmul: compatible shapes most of the time
    const M = rng.int(0, 4), K = rng.int(0, 4), N = rng.int(1, 4);
    const aShape = rng.next() < 0.2 ? [K] : [M, K];
    const bShape = rng.next() < 0.2 ? [K] : rng.next() < 0.15 ? [K + 1, N] : [K, N];
    const a = tensorArg(rng, aShape, { dtype: 'f32' });
    const b = tensorArg(rng, bShape, { dtype: 'f32' });
    return opCase('matmul', [a.arg, b.arg], (x, y) => t.matmul(x as t.Tensor, y as t.Tensor), (x, y) => (x as Ref).matmul(y as Ref), { valid: a.ok && b.ok });
  }
  if (kind < 84) return viewCase(rng, shape);
  if (kind < 92) return indexCase(rng);
  if (kind < 96) return creationCase(rng);
  return miscCase(rng, shape);
}

function viewCase(rng: Rng, shape: number[]): CaseBody {
  const rank = shape.length;
  const x = tensorArg(rng, shape, { wrong: 0.08 });
  const okX = x.ok || (isT(x.arg) && !x.arg.tensor.disposed);
  const which = rng.int(0, 9);
  if (which === 0) {
    const n = shape.reduce((a, b) => a * b, 1);
    const wrongSize = rng.next() < 0.3;
    const to = wrongSize ? [n + 1] : rng.next() < 0.5 ? [-1] : [1, -1];
    return opCase('reshape', [x.arg, { value: to }], (a, b) => t.reshape(a as t.Tensor, b as number[]), (a, b) => (a as Ref).reshape(b as number[]), { valid: okX && !wrongSize });
  }
  if (which === 1) {
    const ax = axisArg(rng, rank);
    const s = rng.int(-3, 4), e = rng.next() < 0.3 ? undefined : rng.int(-3, 5);
    return opCase('slice', [x.arg, ax.arg, { value: s }, { value: e }], (a, b, c, d) => t.slice(a as t.Tensor, b as number, c as number, d as number),
      (a, b, c, d) => {
        const r = a as Ref;
        if (r.ndim === 0) throw new Error('0-d');
        const axis = (b as number) < 0 ? (b as number) + r.ndim : (b as number);
        const n = r.shape[axis];
        const cl = (i: number): number => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
        const st = cl(c as number);
        return r.slice(b as number, st, Math.max(st, cl((d as number | undefined) ?? n)));
      }, { valid: okX && ax.ok && rank > 0 });
  }
  if (which === 2) {
    const dims = rng.next() < 0.2 ? [0, 0] : [...Array(rank).keys()].reverse();
    return opCase('permute', [x.arg, { value: dims }], (a, b) => t.permute(a as t.Tensor, b as number[]), (a, b) => (a as Ref).permute(b as number[]),
      { valid: okX && dims.length === rank && new Set(dims).size === rank });
  }
  if (which === 3) {
    const ax = axisArg(rng, rank + 1);
    return opCase('unsqueeze', [x.arg, ax.arg], (a, b) => t.unsqueeze(a as t.Tensor, b as number), (a, b) => (a as Ref).unsqueeze(b as number), { valid: okX && ax.ok && (ax.arg as { value: number }).value >= -(rank + 1) });
  }
  if (which === 4) {
    const n = rng.int(1, 4);
    const xs = Array.from({ length: n }, () => tensorArg(rng, rng.next() < 0.8 ? shape : shapeOf(rng), { wrong: 0.05 }));
    const ax = axisArg(rng, rank);
    const stack = rng.next() < 0.4;
    // shapes that differ off the axis: the reference refuses, and so must the engine
    return opCase(stack ? 'stack' : 'concat', [...xs.map((p) => p.arg), ax.arg], (...a) => (stack ? t.stack : t.concat)(a.slice(0, -1) as t.Tensor[], a[a.length - 1] as number),
      (...a) => {
        const rs = a.slice(0, -1) as Ref[];
        if (!stack && rs[0].ndim === 0) throw new Error('0-d concat');
        return (stack ? R.stack : R.concat)(rs, a[a.length - 1] as number);
      // the axis is judged against the first operand's own rank (a fifth of the operands take another shape)
      }, { valid: xs.every((p) => p.ok || (isT(p.arg) && !p.arg.tensor.disposed)) && axisOk(ax, (isT(xs[0].arg) ? xs[0].arg.tensor.shape.length : rank) + (stack ? 1 : 0)) });
  }
  if (which === 5) {
    const axes = axesArg(rng, rank);
    return opCase('flip', [x.arg, axes.arg], (a, b) => t.flip(a as t.Tensor, b as number), scalarAware((a, b) => (a as Ref).flip(b as number)),
      { valid: okX && axes.ok && (axes.arg as { value: unknown }).value !== undefined });
  }
  if (which === 6) {
    const sizes = rng.next() < 0.15 ? [-1] : [...Array(rank + rng.int(0, 2))].map(() => rng.int(0, 3));
    return opCase('repeat', [x.arg, { value: sizes }], (a, b) => t.repeat(a as t.Tensor, b as number[]), (a, b) => (a as Ref).repeat(b as number[]),
      { valid: okX && sizes.length >= rank && sizes.every((s) => s >= 0) });
  }
  if (which === 7) {
    const ax = axisArg(rng, rank);
    return opCase('cumsum', [x.arg, ax.arg], (a, b) => t.cumsum(a as t.Tensor, b as number), scalarAware((a, b) => (a as Ref).cumsum(b as number)), { valid: okX && ax.ok });
  }
  const to = rng.next() < 0.5 ? [3, ...shape] : shape.map((d) => (d === 1 ? 4 : d));
  return opCase('expand', [x.arg, { value: to }], (a, b) => t.expand(a as t.Tensor, b as number[]), (a, b) => (a as Ref).expand(b as number[]), { valid: okX });
}

function indexCase(rng: Rng): CaseBody {
  const which = rng.int(0, 6);
  const V = rng.int(1, 6);
  const D = rng.int(1, 4);
  const bad = rng.next() < 0.25; // out-of-range ids: the GPU-side check
  const n = rng.int(0, 5);
  const ids = (shape: number[]): { arg: Arg; ok: boolean } => tensorArg(rng, shape, { dtype: 'i32', low: bad ? -2 : 0, high: bad ? V + 3 : V, wrong: 0.1 });
  const wrongType = (p: { arg: Arg; ok: boolean }): boolean => !p.ok;
  if (which === 0) {
    const i = ids(rng.next() < 0.3 ? [2, n] : [n]);
    const w = tensorArg(rng, [V, D], { dtype: 'f32', wrong: 0.05 });
    return opCase('embedding', [i.arg, w.arg], (a, b) => t.embedding(a as t.Tensor, b as t.Tensor), (a, b) => R.embedding(a as Ref, b as Ref),
      { valid: !wrongType(i) && !wrongType(w), gpuOp: 'embedding', unrelatedReadFirst: bad });
  }
  if (which === 1) {
    const x = tensorArg(rng, [V, D], { wrong: 0.05 });
    const i = ids([n]);
    const ax = rng.next() < 0.8 ? { arg: { value: 0 } as Arg, ok: true } : axisArg(rng, 2);
    return opCase('indexSelect', [x.arg, ax.arg, i.arg], (a, b, c) => t.indexSelect(a as t.Tensor, b as number, c as t.Tensor),
      (a, b, c) => (a as Ref).indexSelect(b as number, c as Ref), { valid: !wrongType(i) && (x.ok || (isT(x.arg) && !x.arg.tensor.disposed)) && ax.ok, gpuOp: 'indexSelect', unrelatedReadFirst: bad });
  }
  if (which === 2) {
    const x = tensorArg(rng, [V, D], { dtype: 'f32', wrong: 0.05 });
    const i = ids([rng.int(0, 3), D]);
    return opCase('gather', [x.arg, { value: 0 }, i.arg], (a, b, c) => t.gather(a as t.Tensor, b as number, c as t.Tensor),
      (a, b, c) => (a as Ref).gather(b as number, c as Ref), { valid: !wrongType(i) && x.ok, gpuOp: 'gather', unrelatedReadFirst: bad });
  }
  if (which === 3) {
    const i = ids([n]);
    const k = rng.next() < 0.1 ? 0 : V;
    return opCase('oneHot', [i.arg, { value: k }], (a, b) => t.oneHot(a as t.Tensor, b as number), (a, b) => R.oneHot(a as Ref, b as number),
      { valid: !wrongType(i) && k >= 1, gpuOp: 'oneHot', unrelatedReadFirst: bad });
  }
  if (which === 4) {
    const x = tensorArg(rng, [V, D], { dtype: 'f32', wrong: 0.05 });
    const i = ids([2, D]);
    const src = tensorArg(rng, [2, D], { dtype: 'f32', wrong: 0.05 });
    return opCase('scatterAdd', [x.arg, { value: 0 }, i.arg, src.arg], (a, b, c, d) => t.scatterAdd(a as t.Tensor, b as number, c as t.Tensor, d as t.Tensor),
      (a, b, c, d) => R.scatterAdd(a as Ref, b as number, c as Ref, d as Ref), { valid: !wrongType(i) && x.ok && src.ok, gpuOp: 'scatterAdd', unrelatedReadFirst: bad });
  }
  // crossEntropy
  const rows = rng.int(1, 4);
  const logits = tensorArg(rng, [rows, V], { dtype: 'f32', wrong: 0.05 });
  const tg = rng.next() < 0.1 ? tensorArg(rng, [rows + 1], { dtype: 'i32' }) : ids([rows]);
  const red = pick(rng, ['mean', 'sum', 'none', 'mean', 'avg']);
  return opCase('crossEntropy', [logits.arg, tg.arg, { value: red }], (a, b, c) => t.crossEntropy(a as t.Tensor, b as t.Tensor, { reduction: c as 'mean' }),
    (a, b, c) => {
      if (c === 'avg') throw new Error('bad reduction');
      return R.crossEntropy(a as Ref, b as Ref, { reduction: c as 'mean' });
    }, { valid: logits.ok && !wrongType(tg) && red !== 'avg', gpuOp: 'crossEntropy', unrelatedReadFirst: bad });
}

function creationCase(rng: Rng): CaseBody {
  const which = rng.int(0, 6);
  const badShape = rng.next() < 0.3;
  const shape = badShape ? pick<unknown>(rng, [[-1], [1.5], ['a'], 'x', null, [2, NaN]]) : shapeOf(rng);
  const badDtype = rng.next() < 0.25;
  // null is PyTorch's dtype=None: the default
  const dtype = badDtype ? pick<unknown>(rng, ['f64', 'int32', 1, 'bool', {}]) : pick(rng, [undefined, 'f32', 'i32', null]);
  const valid = !badShape && !badDtype;
  if (which === 0) {
    const v = pick<unknown>(rng, [0, 1.5, NaN, -Infinity, 3, 'a', 2 ** 40]);
    const ok = valid && typeof v === 'number' && (dtype !== 'i32' || (Number.isFinite(v) && Math.abs(v) < 2 ** 31));
    return opCase('full', [{ value: shape }, { value: v }, { value: dtype }], (s, x, d) => t.full(s as number[], x as number, { dtype: d as 'f32' }),
      (s, x, d) => new Ref(new Float64Array((s as number[]).reduce((a, b) => a * b, 1)).fill(d === 'i32' ? Math.trunc(x as number) : (x as number)), s as number[]), { valid: ok });
  }
  if (which === 1) {
    const f = pick(rng, ['zeros', 'ones'] as const);
    return opCase(f, [{ value: shape }, { value: dtype }], (s, d) => t[f](s as number[], { dtype: d as 'f32' }),
      (s) => new Ref(new Float64Array((s as number[]).reduce((a, b) => a * b, 1)).fill(f === 'ones' ? 1 : 0), s as number[]), { valid });
  }
  if (which === 2) {
    const f = pick(rng, ['rand', 'randn'] as const);
    const d = rng.next() < 0.3 ? pick<unknown>(rng, ['i32', 'f64']) : undefined;
    const body = opCase(f, [{ value: shape }, { value: d }], (s, dd) => t[f](s as number[], { dtype: dd as 'f32', seed: 3 }), null, { valid: !badShape && d === undefined });
    return {
      ...body,
      run: async () => {
        const o = await body.run();
        if (o === 'accepted') {
          const x = t[f](shape as number[], { seed: 3 });
          const v = await x.toArray();
          x.dispose();
          if (f === 'rand' && !v.every((q) => q >= 0 && q < 1)) fail('rand left [0, 1)');
          if (!v.every(Number.isFinite)) fail(`${f} drew a non-finite value`);
        }
        return o;
      },
    };
  }
  if (which === 3) {
    const data = pick<unknown>(rng, [['a'], [1, [2]], [[1, 2], [3]], [1, 2, 3], new Float32Array([1, NaN]), 'abc', [[1], [2]], [NaN, Infinity], [1.5, 2.5], [3e9]]);
    const ok = !badDtype && (Array.isArray(data) ? JSON.stringify(data) !== '["a"]' && JSON.stringify(data) !== '[1,[2]]' && JSON.stringify(data) !== '[[1,2],[3]]' : data instanceof Float32Array)
      && !(dtype === 'i32' && (JSON.stringify(data) === '[null,null]' || (data instanceof Float32Array) || JSON.stringify(data) === '[3000000000]'));
    return opCase('tensor', [{ value: data }, { value: dtype }], (x, d) => t.tensor(x as number[], { dtype: d as 'f32' }),
      (x, d) => {
        const r = Ref.fromNested(Array.from(x as number[]) as R.NestedArray);
        return d === 'i32' ? new Ref(r.data.map(Math.trunc), r.shape) : new Ref(r.data.map(Math.fround), r.shape);
      }, { valid: ok });
  }
  if (which === 4) {
    const [s, e, st] = pick<number[]>(rng, [[0, 5, 1], [5, 0, -1], [0, 1, 0.25], [0, 5, 0], [0, NaN, 1], [2, 2, 1], [0, 3, 1]]);
    const ok = !badDtype && st !== 0 && !Number.isNaN(e);
    return opCase('arange', [{ value: s }, { value: e }, { value: st }, { value: dtype }], (a, b, c, d) => t.arange(a as number, b as number, c as number, { dtype: d as 'f32' }),
      (a, b, c, d) => {
        const out: number[] = [];
        for (let v = a as number; (c as number) > 0 ? v < (b as number) : v > (b as number); v += c as number) out.push(d === 'i32' ? Math.trunc(v) : v);
        return new Ref(out, [out.length]);
      }, { valid: ok });
  }
  const x = tensorArg(rng, shapeOf(rng), { special: true });
  const d = badDtype ? dtype : pick(rng, ['f32', 'i32']);
  return opCase('cast', [x.arg, { value: d }], (a, b) => t.cast(a as t.Tensor, b as 'f32'),
    (a, b) => {
      const r = a as Ref;
      if (b === 'f32') return new Ref(r.data.map(Math.fround), r.shape);
      // f32 -> i32: truncation, saturating, NaN -> 0
      return new Ref(r.data.map((v) => (Number.isNaN(v) ? 0 : Math.max(-2147483648, Math.min(2147483647, Math.trunc(v))))), r.shape, { dtype: 'i32' });
    }, { valid: !badDtype && (x.ok || (isT(x.arg) && !x.arg.tensor.disposed)) });
}

function miscCase(rng: Rng, shape: number[]): CaseBody {
  const which = rng.int(0, 6);
  const rank = shape.length;
  if (which === 0) {
    const x = tensorArg(rng, shape, { dtype: 'f32' });
    const k = rng.int(-1, 4);
    const ax = axisArg(rng, rank);
    const largest = boolArg(rng);
    return opCase('topk', [x.arg, { value: k }, ax.arg, largest.arg], (a, b, c, d) => t.topk(a as t.Tensor, b as number, c as number, d as boolean),
      (a, b, c, d) => (a as Ref).topk(b as number, c as number, d as boolean), { valid: x.ok && ax.ok && largest.ok && rank > 0 && k >= 0 });
  }
  if (which === 1) {
    const op = pick(rng, ['maxWithIndices', 'minWithIndices'] as const);
    const x = tensorArg(rng, shape, { dtype: 'f32' });
    const ax = axisArg(rng, rank);
    return opCase(op, [x.arg, ax.arg], (a, b) => t[op](a as t.Tensor, b as number), scalarAware((a, b) => (a as Ref)[op](b as number)), { valid: x.ok && ax.ok });
  }
  if (which === 2) {
    const x = tensorArg(rng, shape, { dtype: 'f32' });
    const ax = axesArg(rng, rank);
    const corr = pick<unknown>(rng, [1, 0, 1, -1, 'x']);
    const op = pick(rng, ['variance', 'std'] as const);
    return opCase(op, [x.arg, ax.arg, { value: false }, { value: corr }], (a, b, c, d) => t[op](a as t.Tensor, b as number, c as boolean, d as number),
      scalarAware((a, b, c, d) => (op === 'std' ? (a as Ref).std(b as number, c as boolean, d as number) : (a as Ref).var(b as number, c as boolean, d as number))),
      { valid: x.ok && ax.ok && typeof corr === 'number' && corr >= 0 });
  }
  if (which === 3) {
    const x = tensorArg(rng, shape, { dtype: 'f32' });
    const p = pick<unknown>(rng, [2, 1, Infinity, -Infinity, 3, 0, NaN, 'x']);
    const ax = axesArg(rng, rank);
    return opCase('norm', [x.arg, ax.arg, { value: p }], (a, axes, pp) => t.norm(a as t.Tensor, pp as number, axes as number),
      scalarAware((a, axes, pp) => (a as Ref).norm(pp as number, axes as number)), { valid: x.ok && ax.ok && typeof p === 'number' && !Number.isNaN(p) });
  }
  if (which === 4) {
    const D = rng.int(1, 5);
    const x = tensorArg(rng, [rng.int(0, 3), D], { dtype: 'f32' });
    const w = tensorArg(rng, [rng.next() < 0.1 ? D + 1 : D], { dtype: 'f32', wrong: 0.05, optional: true });
    return opCase('layerNorm', [x.arg, { value: [D] }, w.arg], (a, b, c) => t.layerNorm(a as t.Tensor, b as number[], c as t.Tensor),
      (a, b, c) => R.layerNorm(a as Ref, b as number[], c as Ref), { valid: x.ok && w.ok, tol: { rtol: 1e-3, atol: 1e-4 } });
  }
  const x = tensorArg(rng, shape, { dtype: 'f32' });
  const d = rng.int(-2, 3);
  const op = pick(rng, ['tril', 'triu'] as const);
  return opCase(op, [x.arg, { value: d }], (a, b) => t[op](a as t.Tensor, b as number), (a, b) => (a as Ref)[op](b as number), { valid: x.ok && rank >= 2 });
}

// ---- nn modules -----------------------------------------------------------------------------------

const { nn } = t;
let lin: t.nn.Linear;
let emb: t.nn.Embedding;
let lnorm: t.nn.LayerNorm;
let mha: t.nn.MultiHeadAttention;
let block: t.nn.TransformerBlock;
let vlm: t.nn.VisionLanguageModel;
const host = new Map<string, Ref>();
const tiny = (o: Partial<t.nn.VlmConfig> = {}): t.nn.VlmConfig => ({ ...nn.preset('tiny', 50).model, ...o });

async function hostRef(x: t.Tensor): Promise<Ref> {
  return new Ref(Float64Array.from(await x.toArray()), [...x.shape]);
}

function nnCase(rng: Rng): CaseBody {
  const which = rng.int(0, 10);
  const bad = (): unknown => pick<unknown>(rng, [-1, 0, 2.5, NaN, 'a', null, undefined, Infinity, 1e12]);
  if (which === 0) {
    // constructors with a bad argument: refused, nothing leaked
    const ctors: [string, () => unknown][] = [
      ['Linear', () => new nn.Linear(bad() as number, 3)],
      ['Linear', () => new nn.Linear(4, bad() as number, { std: pick(rng, [-1, NaN, 0.02]) })],
      ['Embedding', () => new nn.Embedding(bad() as number, 2)],
      ['LayerNorm', () => new nn.LayerNorm(bad() as number)],
      ['LayerNorm', () => new nn.LayerNorm(4, pick(rng, [-1, NaN, 'x']) as number)],
      ['Dropout', () => new nn.Dropout(pick(rng, [1, 1.5, -0.1, NaN, 'x']) as number)],
      ['MLP', () => new nn.MLP(4, bad() as number)],
      ['MultiHeadAttention', () => new nn.MultiHeadAttention(8, pick(rng, [3, 0, -2, 1.5, 16]))],
      ['TransformerBlock', () => new nn.TransformerBlock(8, pick(rng, [3, 5, 0, 16, 2.5]))],
      ['TransformerBlock', () => new nn.TransformerBlock(8, 2, { mlpRatio: pick(rng, [-1, 0, NaN, 0.01]) })],
      ['TransformerBlock', () => new nn.TransformerBlock(8, 2, { dropout: pick(rng, [1, -1, NaN]) })],
      ['PatchEmbed', () => new nn.PatchEmbed(pick(rng, [15, 16]), pick(rng, [4, 0, -4, 5]), 3, 8)],
      ['ViTEncoder', () => new nn.ViTEncoder({ imageSize: 16, patchSize: 8, channels: 3, dim: 8, layers: pick(rng, [1, -1, 1.5]), heads: pick(rng, [2, 3]), ...(rng.next() < 0.5 ? { dim: bad() as number } : {}) })],
      ['VisionLanguageModel', () => {
        const k = pick(rng, ['maxPositions', 'heads', 'dim', 'vocabSize', 'imageSize', 'patchSize', 'visionHeads', 'dropout', 'layers', 'mlpRatio', 'padId'] as const);
        const v = k === 'maxPositions' ? pick(rng, [1e9, -1, 2.5]) : k === 'heads' ? 3 : bad();
        return new nn.VisionLanguageModel(tiny({ [k]: v } as Partial<t.nn.VlmConfig>));
      }],
      ['KVCache', () => new nn.KVCache(2, 1, 2, pick(rng, [-1, 1.5, 2 ** 40]), 4)],
    ];
    const [name, make] = pick(rng, ctors);
    return {
      name: `new ${name} (bad argument)`,
      run: async () => {
        let m: unknown;
        try {
          m = make();
        } catch (e) {
          if (e instanceof TrimpiError) return 'refused';
          throw e;
        }
        // some draws are valid (e.g. TransformerBlock(8, 2, { mlpRatio: 0.01 }) rounds to 0 units: refused; 16 heads of 8: refused)
        (m as { dispose(): void }).dispose();
        return 'accepted';
      },
    };
  }
  if (which === 1) {
    // Linear forward, valid or not
    const K = rng.next() < 0.2 ? 5 : 4;
    const x = tensorArg(rng, [rng.int(0, 3), K], { dtype: rng.next() < 0.1 ? 'i32' : 'f32', special: false });
    return opCase('Linear.forward', [x.arg], (a) => lin.forward(a as t.Tensor), (a) => (a as Ref).matmul(host.get('lin.w')!).add(host.get('lin.b')!),
      { valid: x.ok && K === 4 && isT(x.arg) && x.arg.tensor.dtype === 'f32' });
  }
  if (which === 2) {
    const bad = rng.next() < 0.3;
    const ids = tensorArg(rng, [rng.int(0, 4)], { dtype: 'i32', low: bad ? -1 : 0, high: bad ? 9 : 6, wrong: 0.1 });
    return opCase('Embedding.forward', [ids.arg], (a) => emb.forward(a as t.Tensor), (a) => R.embedding(a as Ref, host.get('emb.w')!),
      { valid: ids.ok, gpuOp: 'embedding', unrelatedReadFirst: bad });
  }
  if (which === 3) {
    const D = rng.next() < 0.2 ? 3 : 4;
    const x = tensorArg(rng, [2, D], { dtype: 'f32', special: false });
    return opCase('LayerNorm.forward', [x.arg], (a) => lnorm.forward(a as t.Tensor), (a) => R.layerNorm(a as Ref, [4], host.get('ln.w')!, host.get('ln.b')!),
      { valid: x.ok && D === 4, tol: { rtol: 1e-3, atol: 1e-4 } });
  }
  if (which === 4) {
    // attention and block forwards with wrong shapes: refused
    const shape = pick(rng, [[2, 8], [1, 2, 7], [1, 2, 8, 1], [1, 0, 8]]);
    // (tensors only: module forwards leave non-tensor inputs to the ops they call)
    const x = tensorArg(rng, shape, { dtype: 'f32', wrong: 0, special: false });
    const m = rng.next() < 0.5 ? 'mha' : 'block';
    return opCase(`${m === 'mha' ? 'MultiHeadAttention' : 'TransformerBlock'}.forward`, [x.arg], (a) => (m === 'mha' ? mha : block).forward(a as t.Tensor, { causal: true }), null,
      { valid: x.ok && shape.length === 3 && shape[2] === 8, invariants: finiteOfShape(shape) });
  }
  if (which === 5) {
    // images of the wrong shape for the vision tower
    const shape = pick(rng, [[1, 3, 16, 16], [1, 3, 8, 8], [1, 1, 16, 16], [3, 16, 16], [0, 3, 16, 16]]);
    const x = tensorArg(rng, shape, { dtype: 'f32', special: false, wrong: 0 });
    const ok = x.ok && shape.length === 4 && shape[1] === 3 && shape[2] === 16;
    return opCase('VisionLanguageModel.imageTokens', [x.arg], (a) => vlm.imageTokens(a as t.Tensor), null, { valid: ok, invariants: finiteOfShape([shape[0], 4, 32]) });
  }
  if (which === 6 && rng.next() < 0.5) {
    // a valid batch through the whole model, against the float64 reference model (test/nn/ref_vlm.ts)
    const seqs = Array.from({ length: rng.int(1, 3) }, () => {
      const row = [1, ...Array.from({ length: rng.int(1, 6) }, () => rng.int(5, 50))];
      if (rng.next() < 0.4) row.splice(1, 0, 4); // an <image> place
      return row;
    });
    return {
      name: `VisionLanguageModel.forward(${JSON.stringify(seqs)})`,
      run: async () => {
        const batch = vlm.prepareBatch(seqs, { padSide: rng.next() < 0.5 ? 'left' : 'right' });
        const S = vlm.config.imageSize;
        const imgData = Float32Array.from({ length: batch.numImages * 3 * S * S }, () => rng.uniform(0, 1));
        const images = batch.numImages ? t.tensor(imgData, { shape: [batch.numImages, 3, S, S] }) : null;
        try {
          const logits = t.noGrad(() => t.tidy(() => vlm.forward(vlm.toInputs(batch, images))));
          const got = { shape: [...logits.shape], data: await logits.toArray() };
          logits.dispose();
          const want = refVlmLogits(vlmRef!, vlm.config, batch, images ? new Ref(imgData, [batch.numImages, 3, S, S]) : null);
          compare([got], [{ shape: want.shape, data: want.data }], { rtol: 1e-4, atol: 1e-5 });
          return 'matched';
        } finally {
          images?.dispose();
        }
      },
    };
  }
  if (which === 6) {
    // valid modules built and freed: nothing may leak
    const dim = pick(rng, [4, 8]);
    return {
      name: `new TransformerBlock(${dim}, 2) + dispose`,
      run: async () => {
        const b = new nn.TransformerBlock(dim, 2);
        const n = b.numParameters();
        b.dispose();
        const want = 2 * 2 * dim + (dim * 3 * dim + 3 * dim) + (dim * dim + dim) + (dim * 4 * dim + 4 * dim) + (4 * dim * dim + dim);
        if (n !== want) fail(`TransformerBlock(${dim}, 2) has ${n} parameters, expected ${want}`);
        return 'accepted';
      },
    };
  }
  if (which === 7) {
    // bad batches for the VLM: ids outside the vocabulary, too long, images missing
    const kindB = rng.int(0, 4);
    const seq = kindB === 0 ? [1, 99, 2] : kindB === 1 ? Array.from({ length: 70 }, () => 5) : kindB === 2 ? [1, 4, 2] : [1, 2.5, 2];
    return {
      name: `VisionLanguageModel batch ${JSON.stringify(seq.slice(0, 5))}${seq.length > 5 ? '...' : ''}`,
      mustRefuse: true,
      run: async () => {
        const b = vlm.prepareBatch([seq]);
        t.tidy(() => vlm.forward(vlm.toInputs(b, null)));
        return 'accepted';
      },
    };
  }
  if (which === 8) {
    // KV cache / forward with a cache of the wrong size
    return {
      name: 'VisionLanguageModel.forward with a too small cache',
      mustRefuse: true,
      run: async () => {
        const cache = vlm.createCache(1, 2);
        try {
          const b = vlm.prepareBatch([[1, 5, 6, 7]]);
          t.noGrad(() => t.tidy(() => vlm.forward(vlm.toInputs(b, null), { cache })));
        } finally {
          cache.dispose();
        }
        return 'accepted';
      },
    };
  }
  // MLP forward on bad inputs; Dropout (eval: the identity) on tensors
  const mlp = rng.next() < 0.5;
  const x = tensorArg(rng, pick(rng, [[2, 4], [2, 5]]), { dtype: 'f32', wrong: mlp ? 0.3 : 0 });
  return opCase(mlp ? 'MLP.forward' : 'Dropout.forward', [x.arg], (a) => (mlp ? mlpModule.forward(a as t.Tensor) : dropoutModule.forward(a as t.Tensor)),
    mlp ? (a) => (a as Ref).matmul(host.get('mlp.w1')!).add(host.get('mlp.b1')!).gelu().matmul(host.get('mlp.w2')!).add(host.get('mlp.b2')!) : (a) => a,
    { valid: x.ok && (!mlp || (isT(x.arg) && x.arg.tensor.shape[1] === 4)), tol: { rtol: 1e-3, atol: 1e-4 } });
}
let mlpModule: t.nn.MLP;
let vlmRef: Awaited<ReturnType<typeof refParams>> | null = null;

/** Invariants of a result without a reference: the expected shape, every value finite. */
function finiteOfShape(shape: readonly number[]): (got: Result[]) => void {
  return (got) => {
    if (JSON.stringify([...got[0].shape]) !== JSON.stringify([...shape])) fail(`shape ${JSON.stringify(got[0].shape)}, expected ${JSON.stringify(shape)}`);
    for (let i = 0; i < got[0].data.length; i++) if (!Number.isFinite(got[0].data[i])) fail(`element ${i} is ${got[0].data[i]}`);
  };
}
let dropoutModule: t.nn.Dropout;

// ---- generate and the Trainer -------------------------------------------------------------------------

function generateCase(rng: Rng): CaseBody {
  const opts: Record<string, unknown> = { maxNewTokens: 2, temperature: 0 };
  const field = pick(rng, ['maxNewTokens', 'temperature', 'topK', 'prompt', 'images', 'valid', 'valid']);
  let prompts: unknown = [[1, 5, 6]];
  let images: unknown = null;
  let valid = true;
  if (field === 'maxNewTokens') {
    opts.maxNewTokens = pick(rng, [-1, 1.5, NaN, 'x', undefined, Infinity]);
    valid = false;
  } else if (field === 'temperature') {
    opts.temperature = pick(rng, [-1, NaN, Infinity, -Infinity]);
    valid = false;
  } else if (field === 'topK') {
    opts.topK = pick(rng, [-1, 2.5, NaN]);
    valid = false;
  } else if (field === 'prompt') {
    prompts = pick(rng, [[[1, 99]], [[1, -1]], [[]], [], [[1, 1.5]], [Array.from({ length: 70 }, () => 5)]]);
    valid = false;
  } else if (field === 'images') {
    prompts = [[1, 4, 5]];
    images = rng.next() < 0.5 ? null : 'bad-shape';
    valid = false;
  } else {
    opts.temperature = pick(rng, [0, 1, 0.7]);
    opts.topK = pick(rng, [undefined, 0, 3]);
    opts.seed = rng.int(0, 100);
  }
  return {
    name: `generate(${JSON.stringify(prompts).slice(0, 40)}, ${images === null ? 'null' : 'images ' + String(images)}, ${JSON.stringify(opts)})`,
    mustRefuse: !valid,
    run: async () => {
      const img = images === 'bad-shape' ? t.zeros([1, 3, 8, 8]) : null;
      try {
        const r = await nn.generate(vlm, prompts as number[][], img, opts as unknown as t.nn.GenerateOptions);
        const lengths = r.tokens.map((x) => x.length);
        if (!lengths.every((l) => l <= (opts.maxNewTokens as number))) fail(`generated ${JSON.stringify(lengths)} tokens with maxNewTokens ${opts.maxNewTokens as number}`);
        if (!r.logProbs.flat().every((l) => Number.isFinite(l) && l <= 0)) fail(`log-probs ${JSON.stringify(r.logProbs)}`);
        if (!r.tokens.flat().every((id) => Number.isInteger(id) && id >= 0 && id < vlm.config.vocabSize && id !== vlm.config.imageTokenId)) fail(`tokens ${JSON.stringify(r.tokens)}`);
        return 'accepted';
      } finally {
        img?.dispose();
      }
    },
  };
}

function trainerCase(rng: Rng): CaseBody {
  const opts: Record<string, unknown> = { lr: 1e-3, totalSteps: 10 };
  const field = pick(rng, ['lr', 'totalSteps', 'minLr', 'warmupSteps', 'seed', 'maxConsecutiveSkips', 'weightDecay', 'betas', 'eps', 'maxGradNorm', 'valid']);
  const values: Record<string, unknown[]> = {
    lr: [0, -1, NaN, Infinity, 'x', undefined], totalSteps: [0, -1, 1.5, NaN, undefined], minLr: [-1, NaN, Infinity], warmupSteps: [-1, 1.5, NaN],
    seed: [1.5, NaN, 'x'], maxConsecutiveSkips: [0, -1, 1.5, NaN], weightDecay: [-1, NaN, Infinity], betas: [[1, 0.9], [0.9], [-0.1, 0.9], 'x', [NaN, 0.9]],
    eps: [0, -1, NaN], maxGradNorm: [-1, NaN, Infinity],
  };
  if (field !== 'valid') opts[field] = pick(rng, values[field]);
  return {
    name: `new Trainer(model, ${JSON.stringify(opts)})`,
    mustRefuse: field !== 'valid',
    run: async () => {
      const tr = new nn.Trainer(lin, opts as unknown as t.nn.TrainerOptions);
      tr.dispose();
      return 'accepted';
    },
  };
}

// ---- losses -------------------------------------------------------------------------------------------

function lossCase(rng: Rng): CaseBody {
  const B = rng.int(1, 3), T = rng.int(2, 5), V = rng.int(2, 6);
  const which = rng.int(0, 4);
  const tShape = rng.next() < 0.15 ? [B, T + 1] : [B, T];
  const lShape = rng.next() < 0.1 ? [B, T] : [B, T, V];
  const logits = tensorArg(rng, lShape, { dtype: rng.next() < 0.1 ? 'i32' : 'f32', special: false, wrong: 0 });
  const tokens = tensorArg(rng, tShape, { dtype: rng.next() < 0.1 ? 'f32' : 'i32', low: 0, high: V, wrong: 0 });
  const mask = tensorArg(rng, rng.next() < 0.1 ? [B, T + 1] : [B, T], { dtype: rng.next() < 0.1 ? 'i32' : 'f32', low: 0, high: 2, wrong: 0 });
  if (isT(mask.arg) && mask.arg.tensor.dtype === 'f32') mask.arg.tensor.data = mask.arg.tensor.data.map(() => (rng.next() < 0.7 ? 1 : 0));
  const shapesOk = JSON.stringify(lShape) === JSON.stringify([B, T, V]) && JSON.stringify(tShape) === JSON.stringify([B, T]) && isT(mask.arg) && JSON.stringify(mask.arg.tensor.shape) === JSON.stringify([B, T]);
  const dtypesOk = isT(logits.arg) && logits.arg.tensor.dtype === 'f32' && isT(tokens.arg) && tokens.arg.tensor.dtype === 'i32' && isT(mask.arg) && mask.arg.tensor.dtype === 'f32';
  // log p(tokens[:, 1:]) from logits[:, :-1], aggregated over mask[:, 1:]
  const nextLogp = (l: Ref, tk: Ref): Ref => l.slice(1, 0, T - 1).logSoftmax(-1).gather(2, tk.slice(1, 1, T).unsqueeze(2)).squeeze(2);
  if (which <= 1) {
    const f = which === 0 ? t.losses.vmcptLoss : t.losses.sftLoss;
    return opCase(which === 0 ? 'vmcptLoss' : 'sftLoss', [logits.arg, tokens.arg, mask.arg], (a, b, c) => f(a as t.Tensor, b as t.Tensor, c as t.Tensor).loss,
      (a, b, c) => {
        const lp = nextLogp(a as Ref, b as Ref).neg();
        const m = (c as Ref).slice(1, 1, T);
        if (which === 1) return lp.mul(m).sum().div(m.sum().maximum(1));
        const perSeq = lp.mul(m).sum(1).div(m.sum(1).maximum(1));
        const n = m.sum(1).gt(0).sum().maximum(1);
        return perSeq.sum().div(n);
      }, { valid: shapesOk && dtypesOk, tol: { rtol: 1e-3, atol: 1e-4 } });
  }
  if (which === 2) {
    const mode = pick(rng, ['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum', 'mean']);
    const l = tensorArg(rng, [B, T], { dtype: 'f32', special: false, wrong: 0.05 });
    return opCase('aggregateLoss', [l.arg, mask.arg, { value: mode }], (a, b, c) => t.losses.aggregateLoss(a as t.Tensor, b as t.Tensor, c as 'token-mean'),
      (a, b, c) => {
        const x = (a as Ref).mul(b as Ref);
        const m = b as Ref;
        if (c === 'token-mean') return x.sum().div(m.sum().maximum(1));
        const perSeq = c === 'seq-mean-token-mean' ? x.sum(1).div(m.sum(1).maximum(1)) : x.sum(1);
        return perSeq.sum().div(m.sum(1).gt(0).sum().maximum(1));
      }, { valid: l.ok && isT(mask.arg) && mask.arg.tensor.dtype === 'f32' && JSON.stringify(mask.arg.tensor.shape) === JSON.stringify([B, T]) && mode !== 'mean', tol: { rtol: 1e-4, atol: 1e-5 } });
  }
  const kind = pick(rng, ['k1', 'k2', 'k3', 'k4']);
  const a = tensorArg(rng, [B, T], { dtype: 'f32', special: false, wrong: 0.05 });
  const b = tensorArg(rng, rng.next() < 0.15 ? [B, T + 1] : [B, T], { dtype: 'f32', special: false, wrong: 0.05 });
  return opCase('klPenalty', [a.arg, b.arg, { value: kind }], (x, y, k) => t.losses.klPenalty(x as t.Tensor, y as t.Tensor, k as 'k1'),
    (x, y, k) => {
      const d = (x as Ref).sub(y as Ref);
      if (k === 'k1') return d;
      if (k === 'k2') return d.mul(d).mul(0.5);
      const r = (y as Ref).sub(x as Ref).clamp(-t.losses.LOG_RATIO_CLAMP, t.losses.LOG_RATIO_CLAMP);
      return r.exp().sub(r).sub(1);
    }, { valid: a.ok && b.ok && isT(b.arg) && b.arg.tensor.shape[1] === T && kind !== 'k4' });
}

// ---- checkpoint files ---------------------------------------------------------------------------------

let ckptRoot: string;
let template: string;
let ckptModel: t.nn.VisionLanguageModel;
let saved: Map<string, Float32Array>;

function copyDir(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const f of readdirSync(from)) copyFileSync(join(from, f), join(to, f));
}

function modelFile(dir: string): string {
  return join(dir, JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).files.model);
}

/** Whether every parameter of `model` holds exactly the saved values (one readback). */
async function modelMatchesSaved(model: t.nn.Module): Promise<boolean> {
  const params = model.namedParameters();
  const all = t.tidy(() => t.concat(params.map(([, p]) => p.value.reshape([-1]))));
  const got = await all.toArray();
  all.dispose();
  let at = 0;
  for (const [name] of params) {
    const want = saved.get(name)!;
    for (let i = 0; i < want.length; i++) if (!Object.is(got[at + i], want[i])) return false;
    at += want.length;
  }
  return at === got.length;
}

function checkpointCase(rng: Rng, i: number): CaseBody {
  const dir = join(ckptRoot, `case-${i}-${rng.int(0, 1e9)}`);
  const which = rng.int(0, 9);
  let what = '';
  const mutate = (): void => {
    copyDir(template, dir);
    const file = modelFile(dir);
    const bytes = readFileSync(file);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    if (which === 0) {
      const len = rng.int(0, bytes.length);
      truncateSync(file, len);
      what = `model file truncated to ${len} of ${bytes.length} bytes`;
    } else if (which === 1 || which === 2) {
      // a bit flip in the header (1) or the data (2)
      const at = which === 1 ? rng.int(0, 8 + headerLen) : rng.int(8 + headerLen, bytes.length);
      const bit = rng.int(0, 8);
      bytes[at] ^= 1 << bit;
      writeFileSync(file, bytes);
      what = `bit ${bit} of byte ${at} flipped (${which === 1 ? 'header' : 'data'})`;
    } else if (which === 3) {
      // a lying header: a shape, dtype or offset changed, the JSON still valid
      const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8'));
      const names = Object.keys(header).filter((k) => k !== '__metadata__');
      const name = pick(rng, names);
      const lie = rng.int(0, 4);
      if (lie === 0) header[name].shape = [...header[name].shape].reverse().concat([1]);
      else if (lie === 1) header[name].dtype = pick(rng, ['I32', 'F16', 'F64', 'X']);
      else if (lie === 2) header[name].data_offsets = [header[name].data_offsets[0], header[name].data_offsets[1] + 4];
      else delete header.__metadata__[`crc32.${name}`];
      const json = Buffer.from(JSON.stringify(header).padEnd(headerLen, ' ').slice(0, Math.max(headerLen, JSON.stringify(header).length)));
      const out = Buffer.alloc(8 + json.length + (bytes.length - 8 - headerLen));
      out.writeBigUInt64LE(BigInt(json.length), 0);
      json.copy(out, 8);
      bytes.subarray(8 + headerLen).copy(out, 8 + json.length);
      writeFileSync(file, out);
      what = `header lie ${lie} on ${name}`;
    } else if (which === 4 || which === 5) {
      // a lying config.json
      const cfgPath = join(dir, 'config.json');
      const m = JSON.parse(readFileSync(cfgPath, 'utf8'));
      const lie = rng.int(0, 7);
      if (lie === 0) m.config.dim = pick(rng, [64, -1, 'x', null]);
      else if (lie === 1) m.config.heads = pick(rng, [3, 0, 1.5]);
      else if (lie === 2) m.files.model = pick(rng, ['../x', '', 'missing.safetensors', null]);
      else if (lie === 3) m.version = 2;
      else if (lie === 4) m.step = pick(rng, [-1, 'x', 3]);
      else if (lie === 5) m.format = 'other';
      else m.config.maxPositions = pick(rng, [1e9, 32]);
      writeFileSync(cfgPath, which === 5 && rng.next() < 0.3 ? JSON.stringify(m).slice(0, 20) : JSON.stringify(m));
      what = `config lie ${lie}${which === 5 ? ' (maybe cut)' : ''}`;
    } else if (which === 6) {
      rmSync(file);
      what = 'model file deleted';
    } else {
      what = 'untouched';
    }
  };
  if (which === 7) {
    // saving into a directory that cannot hold a checkpoint
    const target = pick<unknown>(rng, ['', '/proc/fuzz-x', '/proc/self/x/y', join(template, 'config.json', 'x'), 42, null, undefined]);
    return {
      name: `saveCheckpoint(${JSON.stringify(target)})`,
      mustRefuse: true,
      run: async () => {
        await nn.saveCheckpoint(target as string, ckptModel);
        return 'accepted';
      },
    };
  }
  const viaLoader = rng.next() < 0.3;
  return {
    name: `checkpoint case ${which}${viaLoader ? ' (loadVisionLanguageModel)' : ''}`,
    run: async () => {
      mutate();
      try {
        if (viaLoader) {
          const m = nn.loadVisionLanguageModel(dir);
          try {
            if (!(await modelMatchesSaved(m))) fail(`${what}: loaded weights that differ from the saved ones`);
          } finally {
            m.dispose();
          }
          return 'matched';
        }
        try {
          nn.loadCheckpoint(dir, ckptModel);
        } catch (e) {
          if (!(e instanceof TrimpiError)) throw e;
          if (!(await modelMatchesSaved(ckptModel))) fail(`${what}: a refused load changed the model`);
          throw e;
        }
        if (!(await modelMatchesSaved(ckptModel))) fail(`${what}: loaded weights that differ from the saved ones`);
        return 'matched';
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

// ---- CLI flags ------------------------------------------------------------------------------------------

const CLI_CASES: string[][] = [
  ['data'], ['data', '--setting', 'nope', '--seed', '1', '--out', 'x'], ['data', '--setting', 'clevr-t', '--seed', '-1', '--out', 'x'],
  ['data', '--setting', 'clevr-t', '--seed'], ['data', '--setting', 'clevr-t', '--seed', '1'], ['data', '--bogus'],
  ['data', '--setting', 'clevr-t', '--seed', '1', '--out', 'x', '--depth', '3'], ['data', '--setting', 'clevr-t', '--seed', '1', '--out', 'x', '--size', 'abc'],
  ['data', '--setting', 'clevr-t', '--seed', '1', '--out', 'x', '--objects', 'a-b'], ['data', '--setting', 'clevr-t', '--seed', '1', '--out', 'x', '--batch', 'many'],
  ['data', 'positional'], ['data', '--setting=clevr-t', '--seed=1.5', '--out=x'],
  ['run'], ['run', '--setting', 'clevr-t'], ['run', '--out', 'x'], ['run', '--setting', 'clevr-x', '--out', 'x'],
  ['run', '--setting', 'clevr-t', '--out', 'x', '--depth', '3'], ['run', '--setting', 'clevr-t', '--out', 'x', '--methods', 'bogus'],
  ['run', '--setting', 'clevr-t', '--out', 'x', '--scale', 'huge'], ['run', '--setting', 'clevr-t', '--out', 'x', '--seed', '-2'],
  ['run', '--setting', 'clevr-t', '--out', 'x', '--base', '/nonexistent/base'], ['run', '--setting', 'tool', '--depth', '2', '--out', 'x'],
  ['run', '--setting', 'clevr-t', '--out'], ['run', '--quiet=1', '--setting', 'clevr-t', '--out', 'x'], ['run', 'extra'],
  ['pretrain'], ['pretrain', '--out'], ['pretrain', '--out', 'x', '--preset', 'big'], ['pretrain', '--out', 'x', '--steps', '0'],
  ['pretrain', '--out', 'x', '--max-minutes', '-1'], ['pretrain', '--out', 'x', '--seed', 'abc'], ['pretrain', '--out', 'x', '--frobnicate'],
];

function runCli(args: string[]): Promise<{ status: number | null; stderr: string }> {
  // outputs go to a scratch directory: a flag the CLI wrongly accepted must not write into the repository
  const out = join(ckptRoot, 'cli-out');
  args = args.map((a) => (a === 'x' ? out : a.replace(/^--out=x$/, `--out=${out}`)));
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['dist/src/cli.js', ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stderr });
    });
  });
}

// ---- the suite --------------------------------------------------------------------------------------------

beforeAll(async () => {
  await t.init();
  canaryInput = t.tensor([1, 2, 3]).keep();
  t.manualSeed(1);
  lin = new nn.Linear(4, 3);
  emb = new nn.Embedding(6, 4);
  lnorm = new nn.LayerNorm(4);
  mlpModule = new nn.MLP(4, 8);
  dropoutModule = new nn.Dropout(0.5);
  dropoutModule.eval();
  mha = new nn.MultiHeadAttention(8, 2);
  block = new nn.TransformerBlock(8, 2);
  vlm = new nn.VisionLanguageModel(tiny({ initStd: 0.1 }));
  vlmRef = await refParams(vlm);
  t.noGrad(() => t.tidy(() => lnorm.weight.assign(t.randn([4]))));
  host.set('lin.w', await hostRef(lin.weight));
  host.set('lin.b', await hostRef(lin.bias!));
  host.set('emb.w', await hostRef(emb.weight));
  host.set('ln.w', await hostRef(lnorm.weight));
  host.set('ln.b', await hostRef(lnorm.bias));
  host.set('mlp.w1', await hostRef(mlpModule.fc.weight));
  host.set('mlp.b1', await hostRef(mlpModule.fc.bias!));
  host.set('mlp.w2', await hostRef(mlpModule.proj.weight));
  host.set('mlp.b2', await hostRef(mlpModule.proj.bias!));
  ckptRoot = mkdtempSync(join(tmpdir(), 'trimpi-fuzz-'));
  template = join(ckptRoot, 'template');
  ckptModel = new nn.VisionLanguageModel(tiny({ seed: 7 }));
  await nn.saveCheckpoint(template, ckptModel);
  saved = new Map();
  for (const [name, p] of ckptModel.namedParameters()) saved.set(name, (await p.value.toArray()) as Float32Array);
}, 120_000);

afterAll(() => {
  for (const m of [lin, emb, lnorm, mlpModule, mha, block, vlm, ckptModel]) m?.dispose();
  canaryInput?.dispose();
  if (ckptRoot) rmSync(ckptRoot, { recursive: true, force: true });
  const lines = [...counts].map(([c, m]) => `  ${c.padEnd(12)} ${[...m].map(([o, n]) => `${o} ${n}`).join(', ')}`);
  const byOutcome = new Map<Outcome, number>();
  for (const m of counts.values()) for (const [o, n] of m) byOutcome.set(o, (byOutcome.get(o) ?? 0) + n);
  console.log(`fuzz: ${totalCases} cases (${badInputs} with bad inputs: refused, or NaN/inf, empty, 0-d or view inputs) in ${((Date.now() - started) / 1000).toFixed(1)} s (REF_SEED=${BASE_SEED}), ${failures.length} failed, ${t.execStats().pipelinesCompiled} pipelines compiled\n`
    + `  outcomes     ${[...byOutcome].map(([o, n]) => `${o} ${n}`).join(', ')}\n${lines.join('\n')}`);
});

describe('fuzz: every bad input ends in a TrimpiError or a result equal to the float64 reference', () => {
  const expectNoFailures = (): void => {
    const mine = failures.splice(0);
    if (mine.length) console.error(`${mine.length} failed fuzz case(s):\n${mine.join('\n')}`);
    expect(mine.slice(0, 12), `${mine.length} failed case(s):\n${mine.slice(0, 12).join('\n')}`).toEqual([]);
  };
  it('ops', async () => {
    await fuzz('ops', 2000, (rng) => opFuzzCase(rng));
    expectNoFailures();
  }, 300_000);
  it('nn modules', async () => {
    await fuzz('nn', 240, (rng) => nnCase(rng));
    expectNoFailures();
  }, 300_000);
  it('generate and the Trainer', async () => {
    await fuzz('generate', 50, (rng) => generateCase(rng));
    await fuzz('trainer', 60, (rng) => trainerCase(rng));
    expectNoFailures();
  }, 300_000);
  it('losses', async () => {
    await fuzz('losses', 200, (rng) => lossCase(rng));
    expectNoFailures();
  }, 300_000);
  it('checkpoint files', async () => {
    await fuzz('checkpoint', 100, (rng, i) => checkpointCase(rng, i));
    expectNoFailures();
  }, 300_000);
  it.skipIf(!existsSync(join(ROOT, 'dist/src/cli.js')))('CLI flags exit 2', async () => {
    const cases = ONLY === null ? CLI_CASES : [];
    const results: { args: string[]; status: number | null; stderr: string }[] = [];
    // a few at a time: each spawn loads node and the package (~0.5 s)
    for (let i = 0; i < cases.length; i += 4) {
      const batch = cases.slice(i, i + 4);
      results.push(...(await Promise.all(batch.map(async (args) => ({ args, ...(await runCli(args)) })))));
    }
    for (const r of results) {
      totalCases++;
      if (r.status === 2) tally('cli', 'refused');
      else failures.push(`cli: trimpi ${r.args.join(' ')}: exit ${r.status}, expected 2; stderr: ${r.stderr.slice(0, 300)}`);
    }
    expectNoFailures();
  }, 300_000);
});
