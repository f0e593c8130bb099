// Every op: argument checks (errors name the op, shapes and dtypes), the GPU launch, and the
// autograd record. Gradient rules live in gradients.ts; kernels in src/kernels.
import { Device, currentDevice } from '../gpu/device.js';
import { DType, promote } from '../gpu/dtype.js';
import { TrimpiError, check, checkNumber, describeValue, fmtShape } from '../gpu/errors.js';
import { isGradEnabled, noGrad, record } from './autograd.js';
import type { GradContext } from './gradients.js';
import { Shape, broadcastShapes, broadcastStrides, checkShape, contiguousStrides, inferShape, normAxes, normAxis, numel, viewStrides } from '../gpu/shape.js';
import { checkBool, checkDType, checkOperand, checkOptionalTensor, checkOptions, checkTensor, checkTensorList } from './validate.js';
import { NestedArray, Tensor } from './tensor.js';
import { MapOperand, runMap } from '../kernels/elementwise.js';
import type { View } from '../kernels/kernel.js';
import { runReduce, ReduceKind } from '../kernels/reduce.js';
import { runScan, ScanKind, ScanOptions } from '../kernels/scan.js';
import { runTopk } from '../kernels/topk.js';
import { runMatmul } from '../kernels/matmul.js';
import { runSoftmax, runSoftmaxBackward, runTokenLogProbs, runTokenLogProbsBackward } from '../kernels/softmax.js';
import { runLayerNorm, runLayerNormBackward } from '../kernels/layernorm.js';
import { runRandom, RandomKind, seededKey } from '../kernels/random.js';
import { runSampleStep } from '../kernels/sample.js';
import { runGather, runGatherKeys, runScatterAddByKey } from '../kernels/gather.js';

type Scalar = number;
/** An operand of the element-wise ops: a tensor, or a JS number (broadcast as a scalar). */
export type TensorOrScalar = Tensor | Scalar;

// ---- helpers --------------------------------------------------------------------------------------

/** Checks inputs are alive and on one device; returns it. */
function deviceOf(op: string, ...xs: (TensorOrScalar | null | undefined)[]): Device {
  let dev: Device | null = null;
  for (const x of xs) {
    if (!(x instanceof Tensor)) continue;
    x.assertAlive(op);
    if (dev && x.device !== dev) throw new TrimpiError(op, `tensors are on different devices (${x.describe()} is not on the device of the other inputs)`);
    dev = x.device;
  }
  return dev ?? currentDevice(op);
}

function checkF32(op: string, ...xs: (Tensor | null | undefined)[]): void {
  for (const x of xs) if (x) check(x.dtype === 'f32', op, () => `expected an f32 tensor, got ${x.describe()}`);
}

function empty(shape: Shape, dtype: DType, dev: Device, op?: string): Tensor {
  return Tensor.empty(shape, dtype, dev, op);
}

/** The view of t read as `shape` (broadcast: stride 0 on new/size-1 dims). */
function bview(t: Tensor, shape: Shape): View {
  return { buffer: t.buffer, dtype: t.dtype, shape, strides: broadcastStrides(t.shape, t.strides, shape), offset: t.offset };
}

function operand(x: TensorOrScalar, shape: Shape): MapOperand {
  return typeof x === 'number' ? x : bview(x, shape);
}

function dtypeOf(x: TensorOrScalar): DType {
  return typeof x === 'number' ? (Number.isInteger(x) ? 'i32' : 'f32') : x.dtype;
}

/** Result dtype of tensor/scalar operands: a scalar does not turn an i32 tensor into f32 unless fractional. */
function resultType(xs: TensorOrScalar[]): DType {
  const ts = xs.filter((x): x is Tensor => x instanceof Tensor);
  let d: DType = ts.length ? ts.map((t) => t.dtype).reduce(promote) : 'f32';
  for (const x of xs) if (typeof x === 'number') d = promote(d, dtypeOf(x));
  return d;
}

function shapesOf(xs: TensorOrScalar[]): Shape[] {
  return xs.filter((x): x is Tensor => x instanceof Tensor).map((t) => t.shape);
}

/**
 * Fused element-wise expression over tensors and numbers (broadcast), computed in f32 unless
 * `dtype` says otherwise; operands are a, b, c, d and p holds `scalars`. Not recorded by autograd:
 * used by gradient rules and composite ops.
 */
export function fmap(expr: string, ...args: (TensorOrScalar | { scalars?: number[]; dtype?: DType; compute?: DType })[]): Tensor {
  const last = args[args.length - 1];
  const opts = typeof last === 'object' && !(last instanceof Tensor) ? (args.pop() as { scalars?: number[]; dtype?: DType; compute?: DType }) : {};
  const xs = args as TensorOrScalar[];
  const dev = deviceOf('fmap', ...xs);
  const shape = broadcastShapes('fmap', ...shapesOf(xs));
  const out = empty(shape, opts.dtype ?? 'f32', dev);
  runMap(dev, 'fmap', { expr, compute: opts.compute ?? 'f32' }, out, xs.map((x) => operand(x, shape)), opts.scalars);
  return out;
}

// ---- creation -----------------------------------------------------------------------------------

/** Options of the creation functions (tensor, zeros, full, arange, rand, ...). */
export interface CreateOptions {
  /** 'f32' (default) or 'i32'. */
  dtype?: DType;
  /** Make the result a leaf that accumulates gradients (f32 only). */
  requiresGrad?: boolean;
  /** The device (default: the current one, see init()). */
  device?: Device;
}

/** Flattens nested arrays row-major into `out`, recording the shape; every leaf must sit at one depth. */
function flatten(data: NestedArray, shape: number[], out: number[], depth: number, leaf: { depth: number }): void {
  if (!Array.isArray(data)) {
    check(typeof data === 'number', 'tensor', () => `data must hold numbers or nested arrays of numbers, got ${describeValue(data)} at depth ${depth}`);
    if (leaf.depth < 0) leaf.depth = depth;
    check(depth === leaf.depth && depth === shape.length, 'tensor', () => 'ragged nested array: every row must have the same length (and numbers only at the innermost level)');
    out.push(data);
    return;
  }
  check(leaf.depth < 0 || depth < leaf.depth, 'tensor', () => 'ragged nested array: every row must have the same length (and numbers only at the innermost level)');
  if (shape.length === depth) shape.push(data.length);
  else check(shape[depth] === data.length, 'tensor', () => `ragged nested array: expected length ${shape[depth]} at depth ${depth}, got ${data.length}`);
  for (const d of data) flatten(d, shape, out, depth + 1, leaf);
}

const I32_MIN = -2147483648;
const I32_MAX = 2147483647;

/** Checks the values going into a new tensor: numbers, and for i32 finite integers in range (after truncation, as PyTorch). */
function checkValues(op: string, flat: ArrayLike<unknown>, dtype: DType): void {
  if (flat instanceof Float32Array || flat instanceof Float64Array || flat instanceof Int32Array || flat instanceof Int16Array ||
    flat instanceof Int8Array || flat instanceof Uint8Array || flat instanceof Uint16Array || flat instanceof Uint8ClampedArray) {
    if (dtype === 'f32' || flat instanceof Int32Array || flat instanceof Int16Array || flat instanceof Int8Array || flat instanceof Uint8Array ||
      flat instanceof Uint16Array || flat instanceof Uint8ClampedArray) return;
  } else if (!Array.isArray(flat) && !ArrayBuffer.isView(flat)) {
    throw new TrimpiError(op, `data must be a number, an array or a typed array of numbers, got ${describeValue(flat)}`);
  }
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    check(typeof v === 'number', op, () => `data must hold numbers, got ${describeValue(v)} at index ${i}`);
    if (dtype === 'i32') {
      check(Number.isFinite(v) && Math.trunc(v) >= I32_MIN && Math.trunc(v) <= I32_MAX, op,
        () => `an i32 tensor holds integers in [${I32_MIN}, ${I32_MAX}], got ${describeValue(v)} at index ${i}`);
    }
  }
}

/** The device of the creation options (the current one by default). */
function creationDevice(op: string, opts: CreateOptions): Device {
  check(opts.device === undefined || opts.device instanceof Device, op, () => `device must be a Device, got ${describeValue(opts.device)}`);
  const dev = opts.device ?? currentDevice(op);
  if (dev.isLost) dev.throwIfError(op);
  return dev;
}

/** Validated dtype of the creation options (`fallback` when absent). */
function creationDType(op: string, opts: CreateOptions, fallback: DType): DType {
  const dtype = opts.dtype ?? fallback;
  checkDType(op, 'dtype', dtype);
  check(opts.requiresGrad === undefined || typeof opts.requiresGrad === 'boolean', op, () => `requiresGrad must be true or false, got ${describeValue(opts.requiresGrad)}`);
  check(!opts.requiresGrad || dtype === 'f32', op, () => `only f32 tensors can require gradients, got dtype ${dtype}`);
  return dtype;
}

/**
 * A tensor from JS data: nested arrays, a typed array or a flat array with `shape`. f32 unless
 * `dtype` says otherwise (an Int32Array gives i32). i32 values must be finite and in range
 * (fractions truncate toward zero, as PyTorch).
 *
 * @example
 * const x = t.tensor([[1, 2], [3, 4]]);                 // [2, 2] f32
 * const ids = t.tensor([0, 2, 1], { dtype: 'i32' });   // [3] i32
 */
export function tensor(data: NestedArray | ArrayLike<number>, opts: CreateOptions & { shape?: readonly number[] } = {}): Tensor {
  checkOptions('tensor', opts);
  const dtype = creationDType('tensor', opts, data instanceof Int32Array ? 'i32' : 'f32');
  let flat: ArrayLike<number>;
  let shape: number[];
  if (typeof data === 'number') {
    flat = [data];
    shape = [];
  } else if (Array.isArray(data) && data.some((d) => Array.isArray(d))) {
    shape = [];
    const out: number[] = [];
    flatten(data as NestedArray, shape, out, 0, { depth: -1 });
    flat = out;
  } else {
    check(Array.isArray(data) || ArrayBuffer.isView(data), 'tensor', () => `data must be a number, an array or a typed array of numbers, got ${describeValue(data)}`);
    flat = data as ArrayLike<number>;
    shape = [flat.length];
  }
  checkValues('tensor', flat, dtype);
  if (opts.shape !== undefined) {
    checkShape('tensor', 'shape', opts.shape);
    check(numel(opts.shape) === flat.length, 'tensor', () => `shape ${fmtShape(opts.shape!)} needs ${numel(opts.shape!)} values, got ${flat.length}`);
    shape = [...opts.shape];
  }
  const dev = creationDevice('tensor', opts);
  const t = Tensor.empty(shape, dtype, dev, 'tensor', true); // uploaded: a buffer no pending command uses
  const arr = dtype === 'i32' ? Int32Array.from(flat) : Float32Array.from(flat);
  if (arr.length) dev.write(t.buffer, arr);
  if (opts.requiresGrad) t.requiresGrad_();
  return t;
}

function fullOf(op: string, shape: readonly number[], value: number, opts: CreateOptions): Tensor {
  checkShape(op, 'shape', shape);
  checkOptions(op, opts);
  const dtype = creationDType(op, opts, 'f32');
  check(typeof value === 'number', op, () => `the fill value must be a number, got ${describeValue(value)}`);
  if (dtype === 'i32') checkValues(op, [value], 'i32');
  const dev = creationDevice(op, opts);
  const t = empty(shape, dtype, dev, op);
  runMap(dev, op, { expr: 'a', compute: dtype }, t, [value]);
  if (opts.requiresGrad) t.requiresGrad_();
  return t;
}

/** A tensor of `shape` filled with `value` (f32 unless `opts.dtype`). */
export function full(shape: readonly number[], value: number, opts: CreateOptions = {}): Tensor {
  return fullOf('full', shape, value, opts);
}
/** Zeros of `shape` (f32 unless `opts.dtype`). */
export const zeros = (shape: readonly number[], opts: CreateOptions = {}): Tensor => fullOf('zeros', shape, 0, opts);
/** Ones of `shape` (f32 unless `opts.dtype`). */
export const ones = (shape: readonly number[], opts: CreateOptions = {}): Tensor => fullOf('ones', shape, 1, opts);
/** Zeros with t's shape, dtype and device. */
export const zerosLike = (t: Tensor): Tensor => {
  checkTensor('zerosLike', 't', t);
  return fullOf('zerosLike', t.shape, 0, { dtype: t.dtype, device: t.device });
};
/** Ones with t's shape, dtype and device. */
export const onesLike = (t: Tensor): Tensor => {
  checkTensor('onesLike', 't', t);
  return fullOf('onesLike', t.shape, 1, { dtype: t.dtype, device: t.device });
};

/**
 * [start, end) with `step`; one argument means [0, n). i32 when start and step are integers
 * (values within ±2^24, computed exactly in f32), else f32.
 */
export function arange(start: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
  const op = 'arange';
  checkNumber(op, 'start', start);
  checkNumber(op, 'end', end, { optional: true });
  checkNumber(op, 'step', step);
  checkOptions(op, opts);
  if (end === undefined) [start, end] = [0, start];
  check(step !== 0, op, () => 'step must be non-zero');
  const n = Math.max(0, Math.ceil((end - start) / step));
  check(n <= I32_MAX, op, () => `[${start}, ${end}) with step ${step} has ${n} elements, more than a tensor can hold`);
  const dtype = creationDType(op, opts, Number.isInteger(start) && Number.isInteger(step) ? 'i32' : 'f32');
  if (dtype === 'i32') {
    check(Math.abs(start) <= 2 ** 24 && Math.abs(start + (n - 1) * step) <= 2 ** 24, op,
      () => `i32 values beyond ±2^24 are not exact (the kernel computes start + i · step in f32): got [${start}, ${end}) with step ${step}`);
  }
  const dev = creationDevice(op, opts);
  const t = empty([n], dtype, dev, op);
  // the index is the output offset o0 (contiguous output)
  runMap(dev, op, { expr: 'p.x + f32(o0) * p.y', compute: 'f32' }, t, [], [start, step]);
  if (opts.requiresGrad) t.requiresGrad_();
  return t;
}

// counter-based RNG state: a 64-bit key (seed) and a counter advanced by every draw
const rng = { key: [0x2545f491, 0x9e3779b9] as [number, number], counter: 0 };

/** Seeds the global generator: the same seed gives the same random tensors on any device. */
export function manualSeed(seed: number): void {
  checkNumber('manualSeed', 'seed', seed, { integer: true });
  rng.key = [seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0 ^ 0x9e3779b9];
  rng.counter = 0;
}

function random(op: string, kind: RandomKind, shape: readonly number[], a: number, b: number, opts: CreateOptions & { seed?: number }): Tensor {
  checkShape(op, 'shape', shape);
  checkOptions(op, opts);
  // random values are floats: an i32 request is refused rather than silently answered in f32
  check(opts.dtype === undefined || opts.dtype === 'f32', op,
    () => `dtype must be 'f32' (${op} draws floating-point values; cast() the result for integers), got ${typeof opts.dtype === 'string' ? `'${opts.dtype}'` : describeValue(opts.dtype)}`);
  creationDType(op, opts, 'f32');
  checkNumber(op, 'seed', opts.seed, { integer: true, optional: true });
  const dev = creationDevice(op, opts);
  const t = empty(shape, 'f32', dev, op);
  let key = rng.key;
  let counter = 0;
  if (opts.seed !== undefined) key = seededKey(opts.seed);
  else {
    counter = rng.counter;
    rng.counter += t.numel;
  }
  runRandom(dev, op, t, kind, key, counter, a, b);
  if (opts.requiresGrad) t.requiresGrad_();
  return t;
}
/** Uniform in [low, high) (f32 only: an integer dtype is refused). */
export const rand = (shape: readonly number[], opts: CreateOptions & { seed?: number; low?: number; high?: number } = {}): Tensor => {
  checkOptions('rand', opts);
  checkNumber('rand', 'low', opts.low, { optional: true });
  checkNumber('rand', 'high', opts.high, { optional: true });
  check((opts.low ?? 0) <= (opts.high ?? 1), 'rand', () => `low (${opts.low ?? 0}) must not exceed high (${opts.high ?? 1})`);
  return random('rand', 'uniform', shape, opts.low ?? 0, opts.high ?? 1, opts);
};
/** Normal with `mean` and `std` (f32 only: an integer dtype is refused). */
export const randn = (shape: readonly number[], opts: CreateOptions & { seed?: number; mean?: number; std?: number } = {}): Tensor => {
  checkOptions('randn', opts);
  checkNumber('randn', 'mean', opts.mean, { optional: true });
  checkNumber('randn', 'std', opts.std, { optional: true, min: 0 });
  return random('randn', 'normal', shape, opts.mean ?? 0, opts.std ?? 1, opts);
};

// ---- element-wise ---------------------------------------------------------------------------------

const UNARY: Record<string, { f32: string; i32?: string }> = {
  neg: { f32: '-a', i32: '-a' },
  exp: { f32: 'exp(a)' },
  log: { f32: 'log(a)' },
  sqrt: { f32: 'sqrt(a)' },
  rsqrt: { f32: 'inverseSqrt(a)' },
  tanh: { f32: 'tanh_f(a)' },
  sigmoid: { f32: 'sigmoid_f(a)' },
  relu: { f32: 'max_nan(a, 0.0)', i32: 'max(a, 0)' },
  gelu: { f32: 'gelu_erf(a)' },
  gelu_tanh: { f32: 'gelu_tanh(a)' },
  silu: { f32: 'silu_f(a)' },
  abs: { f32: 'abs(a)', i32: 'abs(a)' },
  log1p: { f32: 'log1p_f(a)' },
  expm1: { f32: 'expm1_f(a)' },
  logsigmoid: { f32: 'min(a, 0.0) - log1p_f(exp(-abs(a)))' },
  erf: { f32: 'erf_f(a)' },
  sin: { f32: 'sin(a)' },
  cos: { f32: 'cos(a)' },
  sign: { f32: 'sign_f(a)', i32: 'sign(a)' },
  floor: { f32: 'floor(a)', i32: 'a' },
  round: { f32: 'round(a)', i32: 'a' },
};

function unary(op: string, x: Tensor): Tensor {
  checkTensor(op === 'gelu_tanh' ? 'gelu' : op, 'x', x);
  const dev = deviceOf(op, x);
  const e = UNARY[op];
  const dt: DType = x.dtype === 'i32' && e.i32 ? 'i32' : 'f32';
  const out = empty(x.shape, dt, dev, op);
  runMap(dev, op, { expr: dt === 'i32' ? e.i32! : e.f32, compute: dt }, out, [bview(x, x.shape)]);
  return record(op, [x], out);
}
/** −x (i32 stays i32). */
export const neg = (x: Tensor): Tensor => unary('neg', x);
/** e^x, element-wise (f32). */
export const exp = (x: Tensor): Tensor => unary('exp', x);
/** Natural logarithm, element-wise (f32). */
export const log = (x: Tensor): Tensor => unary('log', x);
/** Square root, element-wise (f32). */
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
/** 1 / sqrt(x), element-wise (f32). */
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
/** Hyperbolic tangent (finite for any |x|). */
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
/** 1 / (1 + e^−x), without overflow. */
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
/** max(x, 0) (i32 stays i32; NaN stays NaN, as PyTorch); the gradient at 0 is 0. */
export const relu = (x: Tensor): Tensor => unary('relu', x);
/** x · sigmoid(x) (SiLU / swish). */
export const silu = (x: Tensor): Tensor => unary('silu', x);
/** |x| (i32 stays i32); the gradient at 0 is 0. */
export const abs = (x: Tensor): Tensor => unary('abs', x);
/** log(1 + x), accurate for small |x|. */
export const log1p = (x: Tensor): Tensor => unary('log1p', x);
/** exp(x) − 1, accurate for small |x|. */
export const expm1 = (x: Tensor): Tensor => unary('expm1', x);
/** log(sigmoid(x)) = −softplus(−x), without overflow. */
export const logsigmoid = (x: Tensor): Tensor => unary('logsigmoid', x);
/** The error function (max abs error ~1.2e-7). */
export const erf = (x: Tensor): Tensor => unary('erf', x);
/** Sine (radians). */
export const sin = (x: Tensor): Tensor => unary('sin', x);
/** Cosine (radians). */
export const cos = (x: Tensor): Tensor => unary('cos', x);
/** −1, 0 or 1 by the sign of x (i32 stays i32; NaN gives 0, as PyTorch); the gradient is 0. */
export const sign = (x: Tensor): Tensor => unary('sign', x);
/** Rounds down to an integer value (i32 unchanged); the gradient is 0. */
export const floor = (x: Tensor): Tensor => unary('floor', x);
/** Rounds to the nearest integer value, halves to even as in PyTorch (i32 unchanged); the gradient is 0. */
export const round = (x: Tensor): Tensor => unary('round', x);

/**
 * softplus(x) = log(1 + exp(beta·x)) / beta, and x itself where beta·x > threshold (PyTorch's
 * F.softplus). Gradient sigmoid(beta·x) (1 past the threshold).
 */
export function softplus(x: Tensor, beta = 1, threshold = 20): Tensor {
  checkTensor('softplus', 'x', x);
  const dev = deviceOf('softplus', x);
  check(Number.isFinite(beta) && beta > 0, 'softplus', () => `beta must be a positive number, got ${beta}`);
  check(typeof threshold === 'number' && !Number.isNaN(threshold), 'softplus', () => `threshold must be a number, got ${threshold}`);
  const out = empty(x.shape, 'f32', dev, 'softplus');
  runMap(dev, 'softplus', { expr: 'select(softplus_f(p.x * a) / p.x, a, p.x * a > p.y)', compute: 'f32' }, out, [bview(x, x.shape)], [beta, threshold]);
  return record('softplus', [x], out, { beta, threshold });
}

/**
 * Linear interpolation start + weight · (end − start), broadcasting (PyTorch's lerp); f32. Gradients
 * to start (1 − weight), end (weight) and a tensor weight (end − start).
 *
 * @example
 * t.lerp(t.zeros([3]), t.ones([3]), 0.25) // [0.25, 0.25, 0.25]
 */
export function lerp(start: Tensor, end: TensorOrScalar, weight: TensorOrScalar): Tensor {
  checkTensor('lerp', 'start', start);
  checkOperand('lerp', 'end', end);
  checkOperand('lerp', 'weight', weight);
  deviceOf('lerp', start, end, weight);
  for (const x of [start, end, weight]) if (x instanceof Tensor) checkF32('lerp', x);
  return record('lerp', [start, end, weight], fmap('a + c * (b - a)', start, end, weight));
}
/** GELU: exact (erf) by default, or the tanh approximation. */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  check(approximate === 'none' || approximate === 'tanh', 'gelu', () => `approximate must be 'none' or 'tanh', got ${String(approximate)}`);
  return unary(approximate === 'tanh' ? 'gelu_tanh' : 'gelu', x);
}

// `f32`: the expression when computed in f32, where it differs (NaN semantics, see math.wgsl)
const BINARY: Record<string, { expr: string; f32?: string; float?: boolean; compare?: boolean }> = {
  add: { expr: 'a + b' },
  sub: { expr: 'a - b' },
  mul: { expr: 'a * b' },
  div: { expr: 'a / b', float: true },
  pow: { expr: 'pow_f(a, b)', float: true },
  maximum: { expr: 'max(a, b)', f32: 'max_nan(a, b)' },
  minimum: { expr: 'min(a, b)', f32: 'min_nan(a, b)' },
  eq: { expr: 'a == b', compare: true },
  ne: { expr: 'a != b', f32: 'ne_f(a, b)', compare: true },
  lt: { expr: 'a < b', compare: true },
  le: { expr: 'a <= b', compare: true },
  gt: { expr: 'a > b', compare: true },
  ge: { expr: 'a >= b', compare: true },
};

function binary(op: string, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  checkOperand(op, 'a', a);
  checkOperand(op, 'b', b);
  check(a instanceof Tensor || b instanceof Tensor, op, () => 'expected at least one tensor operand');
  const dev = deviceOf(op, a, b);
  const spec = BINARY[op];
  const shape = broadcastShapes(op, ...shapesOf([a, b]));
  const compute: DType = spec.float ? 'f32' : resultType([a, b]);
  // as PyTorch: an integer scalar that i32 cannot hold is refused, not wrapped
  for (const [name, x] of [['a', a], ['b', b]] as const) {
    check(compute !== 'i32' || typeof x !== 'number' || (x >= -2147483648 && x <= 2147483647), op,
      () => `scalar ${name} = ${x} does not fit the i32 computation of an i32 tensor (range [-2^31, 2^31 - 1]); cast the tensor to f32 first`);
  }
  const outType: DType = spec.compare ? 'f32' : compute;
  const out = empty(shape, outType, dev, op);
  runMap(dev, op, { expr: compute === 'f32' && spec.f32 ? spec.f32 : spec.expr, compute }, out, [operand(a, shape), operand(b, shape)]);
  return spec.compare ? out : record(op, [a, b], out);
}
/**
 * a + b with broadcasting; either may be a number. i32 + i32 stays i32.
 *
 * @example
 * t.add(t.ones([2, 3]), t.tensor([1, 2, 3])) // [[2, 3, 4], [2, 3, 4]]
 */
export const add = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('add', a, b);
/** a − b with broadcasting. */
export const sub = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('sub', a, b);
/** a · b with broadcasting. */
export const mul = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('mul', a, b);
/** a / b with broadcasting (always f32). */
export const div = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('div', a, b);
/** a^b with broadcasting (f32; a negative base needs an integral exponent, else NaN). */
export const pow = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('pow', a, b);
/** Element-wise max with broadcasting (NaN if either is NaN, as PyTorch); ties send half the gradient to each side. */
export const maximum = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('maximum', a, b);
/** Element-wise min with broadcasting (NaN if either is NaN, as PyTorch); ties send half the gradient to each side. */
export const minimum = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('minimum', a, b);
/** a == b with broadcasting. Comparisons return f32 tensors of 0/1 and carry no gradient. */
export const eq = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('eq', a, b);
/** a != b as f32 0/1 (no gradient). */
export const ne = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('ne', a, b);
/** a < b as f32 0/1 (no gradient). */
export const lt = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('lt', a, b);
/** a <= b as f32 0/1 (no gradient). */
export const le = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('le', a, b);
/** a > b as f32 0/1 (no gradient). */
export const gt = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('gt', a, b);
/** a >= b as f32 0/1 (no gradient). */
export const ge = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('ge', a, b);

/**
 * The truth values of `mask` (nonzero, NaN included, is true) in `dtype`, as 0/1: the map kernel
 * converts operands to one compute type, and an f32 mask of 0.5 or NaN read as i32 would be lost.
 */
function truthOf(mask: Tensor, dtype: DType): Tensor | null {
  if (mask.dtype === dtype) return null;
  return mask.dtype === 'f32' ? fmap('select(0, 1, nonzero_f(a))', mask, { dtype, compute: 'f32' }) : fmap('select(0.0, 1.0, a != 0)', mask, { dtype, compute: 'i32' });
}

/** The WGSL test "operand `v` is true" in compute type `dtype`. */
const isTrue = (v: string, dtype: DType): string => (dtype === 'f32' ? `nonzero_f(${v})` : `${v} != 0`);

/** cond ? a : b, element-wise with broadcasting; cond is any tensor (nonzero, NaN included, = true). */
export function where(cond: Tensor, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  checkTensor('where', 'cond', cond);
  checkOperand('where', 'a', a);
  checkOperand('where', 'b', b);
  const dev = deviceOf('where', cond, a, b);
  const shape = broadcastShapes('where', cond.shape, ...shapesOf([a, b]));
  const dt = resultType([a, b]);
  const out = empty(shape, dt, dev, 'where');
  const c01 = truthOf(cond, dt);
  runMap(dev, 'where', { expr: `select(c, b, ${isTrue('a', dt)})`, compute: dt }, out, [operand(c01 ?? cond, shape), operand(a, shape), operand(b, shape)]);
  c01?.dispose();
  return record('where', [cond, a, b], out);
}

/**
 * Limits values to [min, max] (NaN stays NaN, as PyTorch); the gradient is 1 inside (bounds
 * included) and 0 outside.
 */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  checkTensor('clamp', 'x', x);
  checkNumber('clamp', 'min', min, { optional: true, allowNonFinite: true });
  checkNumber('clamp', 'max', max, { optional: true, allowNonFinite: true });
  const dev = deviceOf('clamp', x);
  check(min === undefined || max === undefined || min <= max, 'clamp', () => `min (${min}) must not exceed max (${max})`);
  // f32: a missing bound is ±inf (so ±inf inputs pass through); i32: the type's range
  const lo = x.dtype === 'i32' ? Math.max(min ?? -I32_MAX, -I32_MAX) : min ?? -Infinity;
  const hi = x.dtype === 'i32' ? Math.min(max ?? I32_MAX, I32_MAX) : max ?? Infinity;
  const out = empty(x.shape, x.dtype, dev, 'clamp');
  const expr = x.dtype === 'i32' ? 'min(max(a, i32(p.x)), i32(p.y))' : 'select(min(max(a, p.x), p.y), a, is_nan_f(a))';
  runMap(dev, 'clamp', { expr, compute: x.dtype }, out, [bview(x, x.shape)], [lo, hi]);
  return record('clamp', [x], out, { lo, hi });
}

/** x with `value` where mask is nonzero (NaN included; mask broadcasts to x's shape). */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  checkTensor('maskedFill', 'x', x);
  checkTensor('maskedFill', 'mask', mask);
  check(typeof value === 'number', 'maskedFill', () => `value must be a number, got ${describeValue(value)}`);
  if (x.dtype === 'i32') checkValues('maskedFill', [value], 'i32');
  const dev = deviceOf('maskedFill', x, mask);
  const shape = broadcastShapes('maskedFill', x.shape, mask.shape);
  check(shape.length === x.shape.length && shape.every((d, i) => d === x.shape[i]), 'maskedFill',
    () => `mask of shape ${fmtShape(mask.shape)} must broadcast to the input's shape ${fmtShape(x.shape)}`);
  const out = empty(x.shape, x.dtype, dev, 'maskedFill');
  const m01 = truthOf(mask, x.dtype);
  runMap(dev, 'maskedFill', { expr: `select(a, ${x.dtype}(p.x), ${isTrue('b', x.dtype)})`, compute: x.dtype }, out,
    [bview(x, x.shape), bview(m01 ?? mask, x.shape)], [value]);
  m01?.dispose();
  return record('maskedFill', [x, mask], out);
}

/**
 * Converts the dtype. f32 → i32 truncates toward zero and saturates at the i32 range (NaN → 0).
 * Not differentiable.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  checkTensor('cast', 'x', x);
  checkDType('cast', 'dtype', dtype);
  const dev = deviceOf('cast', x);
  const out = empty(x.shape, dtype, dev, 'cast');
  const spec = x.dtype === 'f32' && dtype === 'i32' ? { expr: 'f32_to_i32(a)', compute: 'f32' as DType } : { expr: 'a', compute: dtype };
  runMap(dev, 'cast', spec, out, [bview(x, x.shape)]);
  return out;
}

/** Zeroes each element with probability p and scales the rest by 1/(1-p); identity when !training. */
export function dropout(x: Tensor, p: number, training = true, opts: { seed?: number } = {}): Tensor {
  checkTensor('dropout', 'x', x);
  check(typeof p === 'number' && p >= 0 && p < 1, 'dropout', () => `p must be in [0, 1), got ${describeValue(p)}`);
  checkBool('dropout', 'training', training);
  checkOptions('dropout', opts);
  checkNumber('dropout', 'seed', opts.seed, { integer: true, optional: true });
  checkF32('dropout', x);
  if (!training || p === 0) return x;
  const keepMask = random('dropout', 'bernoulli', x.shape, 1 - p, 0, { device: x.device, seed: opts.seed });
  const scale = 1 / (1 - p);
  const out = fmap('a * b * p.x', x, keepMask, { scalars: [scale] });
  return record('dropout', [x], out, { keepMask, scale });
}

// ---- in place (not recorded) ----------------------------------------------------------------------

/**
 * dst[...] = src (broadcast to dst's shape, converted to dst's dtype). dst may be a view. Bumps the
 * version of dst's memory: a backward that needs the old values then raises.
 */
export function assign(dst: Tensor, src: TensorOrScalar): void {
  checkTensor('assign', 'dst', dst);
  checkOperand('assign', 'src', src);
  if (typeof src === 'number' && dst.dtype === 'i32') checkValues('assign', [src], 'i32');
  const dev = deviceOf('assign', dst, src);
  dst.bumpVersion();
  if (src instanceof Tensor) {
    const shape = broadcastShapes('assign', dst.shape, src.shape);
    check(shape.length === dst.shape.length && shape.every((d, i) => d === dst.shape[i]), 'assign',
      () => `source of shape ${fmtShape(src.shape)} does not broadcast to the destination's shape ${fmtShape(dst.shape)}`);
    if (src.sharesStorage(dst) && src.buffer === dst.buffer) {
      const same = src.offset === dst.offset && src.shape.length === dst.shape.length && src.strides.every((s, d) => s === dst.strides[d]);
      if (same) return;
      const tmp = contiguousCopy(src);
      runMap(dev, 'assign', { expr: 'a', compute: dst.dtype }, dst, [bview(tmp, dst.shape)]);
      tmp.dispose();
      return;
    }
  }
  runMap(dev, 'assign', { expr: 'a', compute: dst.dtype }, dst, [operand(src, dst.shape)]);
}

/** dst += src in place (gradient accumulation); bumps the version of dst's memory. */
export function addInPlace(dst: Tensor, src: Tensor): void {
  const dev = deviceOf('addInPlace', dst, src);
  dst.bumpVersion();
  runMap(dev, 'addInPlace', { expr: 'a + b', compute: dst.dtype }, dst, [dst, bview(src, dst.shape)]);
}

// ---- views ----------------------------------------------------------------------------------------

/** x if it is contiguous from offset 0 (what the row kernels expect), else a copy. */
function dense(x: Tensor): Tensor {
  return x.isContiguous && x.offset === 0 ? x : contiguousCopy(x);
}

function contiguousCopy(x: Tensor): Tensor {
  const out = empty(x.shape, x.dtype, x.device, 'contiguous');
  runMap(x.device, 'contiguous', { expr: 'a', compute: x.dtype }, out, [bview(x, x.shape)]);
  return out;
}

/** A row-major copy with its own memory (not recorded by autograd). */
export function clone(x: Tensor): Tensor {
  checkTensor('clone', 'x', x);
  return contiguousCopy(x);
}

/** x itself if already contiguous, else a row-major copy. */
export function contiguous(x: Tensor): Tensor {
  checkTensor('contiguous', 'x', x);
  if (x.isContiguous) return x;
  return record('contiguous', [x], contiguousCopy(x));
}

/** x with a new shape (one -1 is inferred): a view when the strides allow, else a copy. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor('reshape', 'x', x);
  const to = inferShape('reshape', x.shape, shape);
  const strides = viewStrides(x.shape, x.strides, to);
  let out: Tensor;
  if (strides) out = x.view_(to, strides, x.offset);
  else {
    const c = contiguousCopy(x);
    out = c.view_(to, contiguousStrides(to), 0);
    c.dispose();
  }
  return record('reshape', [x], out);
}

/** A view with the axes reordered: out.shape[i] = x.shape[dims[i]]. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  checkTensor('permute', 'x', x);
  check(Array.isArray(dims), 'permute', () => `dims must be a list of axes, got ${describeValue(dims)}`);
  const r = x.ndim;
  check(dims.length === r, 'permute', () => `dims ${JSON.stringify(dims)} are not a permutation of the ${r} axes of ${x.describe()}`);
  const d = dims.map((a) => normAxis(a, r, 'permute'));
  check(d.length === r && new Set(d).size === r, 'permute', () => `dims ${JSON.stringify(dims)} are not a permutation of the ${r} axes of ${x.describe()}`);
  const inverse = new Array<number>(r);
  d.forEach((a, i) => (inverse[a] = i));
  const out = x.view_(d.map((a) => x.shape[a]), d.map((a) => x.strides[a]), x.offset);
  return record('permute', [x], out, { inverse });
}

/** A view with axes a and b swapped (the last two by default). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  checkTensor('transpose', 'x', x);
  checkNumber('transpose', 'a', a, { integer: true });
  checkNumber('transpose', 'b', b, { integer: true });
  const r = x.ndim;
  check(r >= 2 || (r === 1 && (a === -1 || a === 0) && (b === -1 || b === 0)), 'transpose', () => `needs a tensor of rank >= 2, got ${x.describe()}`);
  if (r < 2) return x;
  const dims = [...Array(r).keys()];
  const ia = normAxis(a, r, 'transpose');
  const ib = normAxis(b, r, 'transpose');
  [dims[ia], dims[ib]] = [dims[ib], dims[ia]];
  return permute(x, dims);
}

/** Elements start..end-1 along axis (Python-style negative indices and clamping). */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  checkTensor('slice', 'x', x);
  check(x.ndim >= 1, 'slice', () => `cannot slice a 0-d tensor ${x.describe()} (it has no axis)`);
  const a = normAxis(axis, x.ndim, 'slice');
  checkNumber('slice', 'start', start, { integer: true });
  checkNumber('slice', 'end', end, { integer: true, optional: true });
  const n = x.shape[a];
  const clampIdx = (i: number): number => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = clampIdx(start);
  const e = Math.max(s, clampIdx(end ?? n));
  const shape = [...x.shape];
  shape[a] = e - s;
  const out = x.view_(shape, x.strides, x.offset + s * x.strides[a]);
  return record('slice', [x], out, { axis: a, start: s });
}

/** Broadcast view: -1 keeps a dim, new leading dims allowed, only size-1 dims may grow. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor('expand', 'x', x);
  check(Array.isArray(shape) && shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= -1), 'expand',
    () => `shape must be a list of non-negative integers (or -1 to keep a dim), got ${describeValue(shape)}`);
  const off = shape.length - x.ndim;
  check(off >= 0, 'expand', () => `cannot expand ${x.describe()} to fewer dims ${fmtShape(shape)}`);
  const to = shape.map((d, i) => (d === -1 && i >= off ? x.shape[i - off] : d));
  for (let i = 0; i < x.ndim; i++) {
    check(x.shape[i] === to[i + off] || x.shape[i] === 1, 'expand',
      () => `cannot expand ${x.describe()} to ${fmtShape(shape)}: dim ${i} has size ${x.shape[i]} (only size-1 dims can grow)`);
  }
  check(to.every((d) => Number.isInteger(d) && d >= 0), 'expand', () => `invalid target shape ${fmtShape(shape)}`);
  const out = x.view_(to, broadcastStrides(x.shape, x.strides, to), x.offset);
  return record('expand', [x], out);
}

/** A view with a size-1 axis inserted at `axis`. */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  checkTensor('unsqueeze', 'x', x);
  const a = normAxis(axis, x.ndim + 1, 'unsqueeze');
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}

/** A view without size-1 axes (all of them, or only `axis`; a no-op if that axis is not 1, as PyTorch). */
export function squeeze(x: Tensor, axis?: number): Tensor {
  checkTensor('squeeze', 'x', x);
  if (axis === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const a = normAxis(axis, x.ndim, 'squeeze');
  if (x.shape[a] !== 1) return x;
  return reshape(x, x.shape.filter((_, i) => i !== a));
}

/** Gradient of slice: zeros of the input's shape with g written into the sliced region. */
export function sliceBackward(g: Tensor, xShape: readonly number[], axis: number, start: number): Tensor {
  const z = zeros(xShape, { device: g.device });
  const strides = contiguousStrides(xShape);
  const region: View = { buffer: z.buffer, dtype: 'f32', shape: g.shape, strides, offset: start * strides[axis] };
  runMap(g.device, 'slice.backward', { expr: 'a', compute: 'f32' }, region, [bview(g, g.shape)]);
  return z;
}

/** Joins tensors along an existing axis. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  checkTensorList('concat', 'xs', xs);
  const dev = deviceOf('concat', ...xs);
  const r = xs[0].ndim;
  check(r >= 1, 'concat', () => `0-d tensors cannot be concatenated (stack them instead): got ${xs.map((t) => t.describe()).join(', ')}`);
  const a = normAxis(axis, r, 'concat');
  for (const x of xs) {
    check(x.ndim === r && x.shape.every((d, i) => i === a || d === xs[0].shape[i]) && x.dtype === xs[0].dtype, 'concat',
      () => `all tensors need the same dtype and shape except along axis ${a}: got ${xs.map((t) => t.describe()).join(', ')}`);
  }
  const shape = [...xs[0].shape];
  shape[a] = xs.reduce((s, x) => s + x.shape[a], 0);
  const out = empty(shape, xs[0].dtype, dev, 'concat');
  const starts: number[] = [];
  let at = 0;
  for (const x of xs) {
    starts.push(at);
    const region: View = { buffer: out.buffer, dtype: out.dtype, shape: x.shape, strides: out.strides, offset: at * out.strides[a] };
    runMap(dev, 'concat', { expr: 'a', compute: x.dtype }, region, [bview(x, x.shape)]);
    at += x.shape[a];
  }
  return record('concat', xs, out, { axis: a, starts });
}

/** Joins tensors along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  checkTensorList('stack', 'xs', xs);
  const a = normAxis(axis, xs[0].ndim + 1, 'stack');
  for (const x of xs) check(x.shape.length === xs[0].shape.length && x.shape.every((d, i) => d === xs[0].shape[i]), 'stack',
    () => `all tensors need the same shape: got ${xs.map((t) => t.describe()).join(', ')}`);
  return concat(xs.map((x) => unsqueeze(x, a)), a);
}

/**
 * Disposes the intermediate tensors of a composite op when nothing was recorded (then no graph
 * node refers to them); with a graph they live on as its nodes' inputs (free them with tidy()).
 */
function releaseTemps(result: Tensor, temps: readonly Tensor[], keepAlive: readonly Tensor[] = []): void {
  if (result.node) return;
  for (const t of temps) if (t !== result && !keepAlive.includes(t)) t.dispose();
}

/**
 * Views of consecutive pieces along `axis` (PyTorch's split): pieces of `size` elements (the last
 * may be shorter), or of the listed sizes (which must add up to the axis length). No copies.
 *
 * @example
 * const [a, b] = t.split(t.arange(5), [2, 3]); // [0, 1] and [2, 3, 4]
 */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  checkTensor('split', 'x', x);
  check(x.ndim >= 1, 'split', () => `cannot split a 0-d tensor ${x.describe()} (it has no axis)`);
  check(typeof sizes === 'number' || Array.isArray(sizes), 'split', () => `sizes must be a positive integer or a list of sizes, got ${describeValue(sizes)}`);
  const a = normAxis(axis, x.ndim, 'split');
  const n = x.shape[a];
  let lens: number[];
  if (typeof sizes === 'number') {
    check(Number.isInteger(sizes) && sizes > 0, 'split', () => `the split size must be a positive integer, got ${sizes}`);
    lens = [];
    for (let at = 0; at < n; at += sizes) lens.push(Math.min(sizes, n - at));
    if (n === 0) lens.push(0);
  } else {
    lens = [...sizes];
    check(lens.every((l) => Number.isInteger(l) && l >= 0) && lens.reduce((p, q) => p + q, 0) === n, 'split',
      () => `sizes ${JSON.stringify(sizes)} must be non-negative integers adding up to ${n}, the size of axis ${a} of ${x.describe()}`);
  }
  let at = 0;
  return lens.map((l) => {
    const piece = slice(x, a, at, at + l);
    at += l;
    return piece;
  });
}

/** `chunks` views of (nearly) equal size along `axis`: ceil(n / chunks) each, the last shorter (PyTorch's chunk). */
export function chunk(x: Tensor, chunks: number, axis = 0): Tensor[] {
  checkTensor('chunk', 'x', x);
  check(x.ndim >= 1, 'chunk', () => `cannot chunk a 0-d tensor ${x.describe()} (it has no axis)`);
  check(Number.isInteger(chunks) && chunks > 0, 'chunk', () => `chunks must be a positive integer, got ${chunks}`);
  const a = normAxis(axis, x.ndim, 'chunk');
  return split(x, Math.max(1, Math.ceil(x.shape[a] / chunks)), a);
}

/** x with the order of the elements reversed along each of `axes` (a copy, as in PyTorch). */
export function flip(x: Tensor, axes: number | readonly number[]): Tensor {
  checkTensor('flip', 'x', x);
  check(typeof axes === 'number' || Array.isArray(axes), 'flip', () => `axes must be an integer or a list of integers, got ${describeValue(axes)}`);
  // flip(x, []) flips nothing (PyTorch); for reductions an empty list means every axis
  const ax = Array.isArray(axes) && axes.length === 0 ? [] : normAxes(axes, x.ndim, 'flip');
  return record('flip', [x], flipCopy(x, ax), { axes: ax });
}

/** A contiguous copy of x read backwards along `axes` (a view with negative strides, wrapped in u32 by the map kernel). */
export function flipCopy(x: Tensor, axes: readonly number[]): Tensor {
  const strides = x.strides.map((st, d) => (axes.includes(d) ? -st : st));
  const offset = x.offset + axes.reduce((o, d) => o + Math.max(0, x.shape[d] - 1) * x.strides[d], 0);
  const out = empty(x.shape, x.dtype, x.device, 'flip');
  runMap(x.device, 'flip', { expr: 'a', compute: x.dtype }, out, [{ buffer: x.buffer, dtype: x.dtype, shape: x.shape, strides, offset }]);
  return out;
}

/**
 * x tiled `sizes[d]` times along each dim (PyTorch's Tensor.repeat): sizes.length >= x.ndim, extra
 * leading sizes add dims. One copy (an expanded view made contiguous); gradient: the sum of the tiles.
 *
 * @example
 * t.repeat(t.tensor([1, 2]), [2, 2]) // [[1, 2, 1, 2], [1, 2, 1, 2]]
 */
export function repeat(x: Tensor, sizes: readonly number[]): Tensor {
  checkTensor('repeat', 'x', x);
  check(Array.isArray(sizes) && sizes.length >= x.ndim && sizes.every((r) => Number.isInteger(r) && r >= 0), 'repeat',
    () => `sizes ${JSON.stringify(sizes)} must be ${x.ndim} or more non-negative integers for ${x.describe()}`);
  const dims = [...new Array<number>(sizes.length - x.ndim).fill(1), ...x.shape];
  const spread = reshape(x, dims.flatMap((d) => [1, d]));
  const tiled = expand(spread, dims.flatMap((d, i) => [sizes[i], d]));
  const out = reshape(tiled, dims.map((d, i) => d * sizes[i]));
  releaseTemps(out, [spread, tiled], [x]);
  return out;
}

/** torch.tile: repeat() with `dims` padded by leading 1s to x's rank. */
export function tile(x: Tensor, dims: readonly number[]): Tensor {
  checkTensor('tile', 'x', x);
  check(Array.isArray(dims), 'tile', () => `dims must be a list of non-negative integers, got ${describeValue(dims)}`);
  return repeat(x, dims.length < x.ndim ? [...new Array<number>(x.ndim - dims.length).fill(1), ...dims] : dims);
}

/** The (lower or upper) triangle of the last two dims as a copy, the rest zero; not recorded. */
export function triangle(x: Tensor, upper: boolean, diagonal: number): Tensor {
  const op = upper ? 'triu' : 'tril';
  checkTensor(op, 'x', x);
  const dev = deviceOf(op, x);
  check(x.ndim >= 2, op, () => `needs a tensor of rank >= 2, got ${x.describe()}`);
  check(Number.isInteger(diagonal), op, () => `diagonal must be an integer, got ${diagonal}`);
  const [R, C] = x.shape.slice(-2);
  const out = empty(x.shape, x.dtype, dev, op);
  // o0 is the element's linear index (contiguous output): column o0 % C, row (o0 / C) % R
  const diff = 'i32(o0 % u32(p.x)) - i32((o0 / u32(p.x)) % u32(p.y))';
  runMap(dev, op, { expr: `select(${x.dtype}(0), a, ${diff} ${upper ? '>=' : '<='} i32(p.z))`, compute: x.dtype }, out, [bview(x, x.shape)], [C, R, diagonal]);
  return out;
}

/** The lower triangle of the last two dims (j − i <= diagonal kept, the rest 0), PyTorch's tril. */
export function tril(x: Tensor, diagonal = 0): Tensor {
  return record('tril', [x], triangle(x, false, diagonal), { diagonal });
}

/** The upper triangle of the last two dims (j − i >= diagonal kept, the rest 0), PyTorch's triu. */
export function triu(x: Tensor, diagonal = 0): Tensor {
  return record('triu', [x], triangle(x, true, diagonal), { diagonal });
}

// ---- reductions -----------------------------------------------------------------------------------

/**
 * The reduction kernels count the reduced elements of each output with 32-bit integers: more than
 * 2^31 per output (possible with expand(), which costs no memory) is refused rather than wrapped.
 */
export const MAX_REDUCED_ELEMENTS = 2 ** 31;

function checkReducedSize(op: string, x: Tensor, axes: readonly number[]): void {
  const R = numel(axes.map((i) => x.shape[i]));
  check(R <= MAX_REDUCED_ELEMENTS, op, () => `reducing ${R} elements of ${x.describe()} into each output exceeds the limit of 2^31 (${MAX_REDUCED_ELEMENTS}) `
    + 'elements per output (the kernels\' 32-bit index math): reduce in parts, e.g. over slices, then combine the parts');
}

function reduceInto(op: string, kind: ReduceKind, x: Tensor, axes: number[], scale = 1, square = false): { out: Tensor; keepShape: number[] } {
  const dev = deviceOf(op, x);
  checkReducedSize(op, x, axes);
  const keep = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const outer = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const order = [...outer, ...axes];
  const view: View = { buffer: x.buffer, dtype: x.dtype, shape: order.map((i) => x.shape[i]), strides: order.map((i) => x.strides[i]), offset: x.offset };
  const outShape = outer.map((i) => x.shape[i]);
  const out = empty(outShape, kind === 'argmax' || kind === 'argmin' ? 'i32' : x.dtype, dev, op);
  check(numel(axes.map((i) => x.shape[i])) > 0 || kind === 'sum' || kind === 'prod', op, () => `cannot reduce over an empty dimension of ${x.describe()}`);
  runReduce(dev, op, kind, out, view, axes.length, scale, square);
  return { out, keepShape: keep };
}

/**
 * sum over every tensor of sum(x²), as a scalar (no gradient): one reduce per tensor into slots of a
 * partials buffer, then one sum. A large contiguous tensor is split into up to 64 rows of >= 1,024
 * elements, one slot each, so its reduce runs on many workgroups. Global gradient norms use it
 * (P + 2 dispatches where sum(mul(g, g)) chained with add took ~3P + 2).
 */
export function sumOfSquares(xs: readonly Tensor[]): Tensor {
  checkTensorList('sumOfSquares', 'xs', xs);
  for (const x of xs) checkReducedSize('sumOfSquares', x, [...x.shape.keys()]);
  const dev = deviceOf('sumOfSquares', ...xs);
  checkF32('sumOfSquares', ...xs);
  const rowsOf = (x: Tensor): number => {
    if (!x.isContiguous) return 1;
    for (const c of [64, 32, 16, 8, 4, 2]) if (x.numel % c === 0 && x.numel / c >= 1024) return c;
    return 1;
  };
  const rows = xs.map(rowsOf);
  const partials = empty([rows.reduce((a, b) => a + b, 0)], 'f32', dev);
  let slot = 0;
  xs.forEach((x, i) => {
    const c = rows[i];
    const view: View = c > 1
      ? { buffer: x.buffer, dtype: 'f32', shape: [c, x.numel / c], strides: [x.numel / c, 1], offset: x.offset }
      : bview(x, x.shape);
    const out: View = { buffer: partials.buffer, dtype: 'f32', shape: c > 1 ? [c] : [], strides: c > 1 ? [1] : [], offset: slot };
    runReduce(dev, 'sumOfSquares', 'sum', out, view, c > 1 ? 1 : x.ndim, 1, true);
    slot += c;
  });
  const total = sum(partials);
  partials.dispose();
  return total;
}

function finish(out: Tensor, keepShape: number[], keepdim: boolean): Tensor {
  return keepdim ? out.view_(keepShape, contiguousStrides(keepShape), 0) : out;
}

function reduction(op: 'sum' | 'max' | 'min', x: Tensor, axis: number | readonly number[] | undefined, keepdim: boolean): Tensor {
  checkTensor(op, 'x', x);
  checkBool(op, 'keepdim', keepdim);
  const axes = normAxes(axis, x.ndim, op);
  const { out, keepShape } = reduceInto(op, op, x, axes);
  const res = finish(out, keepShape, keepdim);
  if (res !== out) out.dispose();
  return record(op, [x], res, { keepShape, axes });
}

/**
 * Sum over `axis` (a number, a list, or every axis when omitted); `keepdim` keeps the reduced axes
 * as size 1. i32 sums stay i32.
 *
 * @example
 * t.tensor([[1, 2], [3, 4]]).sum(1) // [3, 7]
 */
export const sum = (x: Tensor, axis?: number | readonly number[], keepdim = false): Tensor => reduction('sum', x, axis, keepdim);
/** Largest value over `axis` (every axis when omitted; NaN if any is NaN); the gradient is split evenly among ties (torch.amax). */
export const max = (x: Tensor, axis?: number | readonly number[], keepdim = false): Tensor => reduction('max', x, axis, keepdim);
/** Smallest value over `axis` (every axis when omitted; NaN if any is NaN); the gradient is split evenly among ties (torch.amin). */
export const min = (x: Tensor, axis?: number | readonly number[], keepdim = false): Tensor => reduction('min', x, axis, keepdim);

/**
 * Product over `axis` (every axis when omitted), f32 or i32. The gradient is exact with zeros in the
 * input: each element gets the product of the others (exclusive cumulative products from both ends).
 */
export function prod(x: Tensor, axis?: number | readonly number[], keepdim = false): Tensor {
  checkTensor('prod', 'x', x);
  checkBool('prod', 'keepdim', keepdim);
  const axes = normAxes(axis, x.ndim, 'prod');
  const { out, keepShape } = reduceInto('prod', 'prod', x, axes);
  const res = finish(out, keepShape, keepdim);
  if (res !== out) out.dispose();
  return record('prod', [x], res, { axes });
}

/** d x for prod: g times the product of every other element of the reduced group. */
export function prodBackward(g: Tensor, { inputs: [x], saved: { axes } }: GradContext): (Tensor | null)[] {
  const xt = x as Tensor;
  const ax = axes as number[];
  const outer = [...xt.shape.keys()].filter((i) => !ax.includes(i));
  const order = [...outer, ...ax];
  const outerN = numel(outer.map((i) => xt.shape[i]));
  const R = numel(ax.map((i) => xt.shape[i]));
  const rows = reshape(permute(xt, order), [outerN, R]);
  const before = cumulative(rows, 'prod', 1, { exclusive: true });
  const after = cumulative(rows, 'prod', 1, { exclusive: true, reverse: true });
  const d = reshape(fmap('a * b * c', before, after, reshape(g, [outerN, 1])), order.map((i) => xt.shape[i]));
  const inverse = new Array<number>(order.length);
  order.forEach((p, i) => (inverse[p] = i));
  return [permute(d, inverse)];
}

/** Cumulative sum or product along `axis` as a new tensor of x's shape and dtype; not recorded. */
export function cumulative(x: Tensor, kind: ScanKind, axis: number, opts: ScanOptions = {}): Tensor {
  const out = empty(x.shape, x.dtype, x.device);
  runScan(x.device, `cum${kind}`, kind, bview(out, x.shape), bview(x, x.shape), axis, opts);
  return out;
}

/**
 * Cumulative sum along `axis` (PyTorch's cumsum): out[..., j, ...] = Σ_{k <= j} x[..., k, ...]. f32
 * or i32 (kept). A sequential scan per row on the GPU; gradient: the reverse cumulative sum.
 *
 * @example
 * t.cumsum(t.tensor([1, 2, 3]), 0) // [1, 3, 6]
 */
export function cumsum(x: Tensor, axis: number): Tensor {
  checkTensor('cumsum', 'x', x);
  const a = normAxis(axis, x.ndim, 'cumsum');
  if (x.ndim === 0) {
    // PyTorch: the cumulative sum of a scalar is the scalar
    const x1 = reshape(x, [1]);
    const c = cumsum(x1, 0);
    const out = reshape(c, []);
    releaseTemps(out, [x1, c]);
    return out;
  }
  return record('cumsum', [x], cumulative(x, 'sum', a), { axis: a });
}

/**
 * The k largest (or, with largest = false, smallest) elements along `axis`, sorted best first (ties
 * to the lower index, NaN counted largest): values (x's dtype) and their i32 indices, x's shape
 * with k along the axis. The gradient flows to the values' positions. A per-row selection kernel.
 *
 * @example
 * const { values, indices } = t.topk(t.tensor([1, 5, 3]), 2); // [5, 3] and [1, 2]
 */
export function topk(x: Tensor, k: number, axis = -1, largest = true): { values: Tensor; indices: Tensor } {
  checkTensor('topk', 'x', x);
  checkBool('topk', 'largest', largest);
  const dev = deviceOf('topk', x);
  check(x.ndim >= 1, 'topk', () => `needs a tensor of rank >= 1, got ${x.describe()}`);
  const a = normAxis(axis, x.ndim, 'topk');
  check(Number.isInteger(k) && k >= 0 && k <= x.shape[a], 'topk', () => `k = ${k} must be an integer in [0, ${x.shape[a]}] (the size of axis ${a} of ${x.describe()})`);
  const shape = x.shape.map((d, i) => (i === a ? k : d));
  const indices = empty(shape, 'i32', dev, 'topk');
  if (k > 0) runTopk(dev, 'topk', bview(indices, shape), bview(x, x.shape), a, k, largest);
  return { values: gather(x, a, indices), indices };
}

/** Where sampleInto writes one decode step (generate()'s running state, all on the GPU). */
export interface SampleState {
  /** (B, S) i32: column `step` gets the drawn ids. */
  ids: Tensor;
  /** (B, S) f32: column `step` gets their log-probs at temperature 1. */
  logProbs: Tensor;
  /** (B,) f32: 1 for the rows that have emitted eosId (updated here). */
  done: Tensor;
  /** (B, 1) i32: the next step's input: the id, or padId for the rows already done before this step. */
  feed: Tensor;
}

/**
 * One decode step's draw in one kernel (kernels/sample.ts): per row of logits (B, V), the
 * Gumbel-max draw from softmax((logits + mask) / temperature) (temperature 0: argmax, the lowest id
 * on ties) with the uniform stream of rand([B, V], { seed }), and its log-prob under
 * softmax(logits); written into `state` as SampleState says. mask: (V,) of 0 or −∞ (suppressed
 * ids), or null. The composed form is nn/generate.ts sampleTokens (which also does top-k). No gradient.
 */
export function sampleInto(logits: Tensor, mask: Tensor | null, state: SampleState, opts: { step: number; temperature: number; seed: number; padId: number; eosId?: number }): void {
  const op = 'sampleInto';
  checkTensor(op, 'logits', logits);
  checkOptionalTensor(op, 'mask', mask);
  const dev = deviceOf(op, logits, mask, state.ids, state.logProbs, state.done, state.feed);
  check(logits.ndim === 2 && logits.dtype === 'f32', op, () => `logits must be (B, V) f32, got ${logits.describe()}`);
  const [B, V] = logits.shape;
  check(mask === null || (mask.dtype === 'f32' && mask.ndim === 1 && mask.shape[0] === V && mask.strides[0] === 1), op, () => `mask must be a contiguous (${V},) f32 (V of the logits), got ${mask!.describe()}`);
  const { ids, logProbs, done, feed } = state;
  check(ids.dtype === 'i32' && ids.ndim === 2 && ids.shape[0] === B && logProbs.dtype === 'f32' && logProbs.ndim === 2 && logProbs.shape[0] === B && logProbs.shape[1] === ids.shape[1], op,
    () => `ids must be (${B}, S) i32 and logProbs (${B}, S) f32, got ${ids.describe()} and ${logProbs.describe()}`);
  check(done.dtype === 'f32' && done.ndim === 1 && done.shape[0] === B && feed.dtype === 'i32' && feed.numel === B, op,
    () => `done must be (${B},) f32 and feed (${B}, 1) i32, got ${done.describe()} and ${feed.describe()}`);
  check(Number.isInteger(opts.step) && opts.step >= 0 && opts.step < ids.shape[1], op, () => `step ${opts.step} must index a column of ids ${ids.describe()}`);
  checkNumber(op, 'temperature', opts.temperature);
  check(opts.temperature >= 0, op, () => `temperature must be >= 0, got ${opts.temperature}`);
  checkNumber(op, 'seed', opts.seed, { integer: true });
  for (const t of [ids, logProbs, done, feed]) check(t.isContiguous, op, () => `writes into contiguous tensors only, got ${t.describe()}`);
  // every input checked before anything is marked written
  for (const t of [ids, logProbs, done, feed]) t.bumpVersion();
  const x = logits.isContiguous ? logits : contiguousCopy(logits);
  runSampleStep(dev, op, bview(x, x.shape), mask && bview(mask, [V]),
    { ids: bview(ids, ids.shape), logProbs: bview(logProbs, logProbs.shape), done: bview(done, [B]), feed: bview(feed, [B]) },
    { step: opts.step, temperature: opts.temperature, key: seededKey(opts.seed), padId: opts.padId, eosId: opts.eosId });
  if (x !== logits) x.dispose();
}

/** The extreme value along one axis and its (first) index, as one op with torch.max(x, dim)'s gradient. */
function extremeWithIndices(op: 'maxWithIndices' | 'minWithIndices', x: Tensor, axis: number, keepdim: boolean): { values: Tensor; indices: Tensor } {
  checkTensor(op, 'x', x);
  checkBool(op, 'keepdim', keepdim);
  const a = normAxis(axis, x.ndim, op);
  if (x.ndim === 0) {
    // PyTorch: a scalar is its own extreme, at index 0
    const x1 = reshape(x, [1]);
    const r = extremeWithIndices(op, x1, 0, false);
    releaseTemps(r.values, [x1]);
    return r;
  }
  const idx = argExtreme(op, op === 'maxWithIndices' ? 'argmax' : 'argmin', x, a, true);
  const kept = gather(x, a, idx);
  if (keepdim) return { values: kept, indices: idx };
  const values = squeeze(kept, a);
  const indices = squeeze(idx, a);
  releaseTemps(values, [kept]);
  if (!values.node) idx.dispose();
  return { values, indices };
}

/**
 * The largest value along `axis` and its index (the first among ties), as PyTorch's
 * torch.max(x, dim): `{ values, indices }` (i32). The gradient goes to that index only; max() (no
 * indices) splits it among ties instead.
 *
 * @example
 * const { values, indices } = t.maxWithIndices(t.tensor([[1, 5], [7, 2]]), 1); // [5, 7] and [1, 0]
 */
export const maxWithIndices = (x: Tensor, axis: number, keepdim = false): { values: Tensor; indices: Tensor } =>
  extremeWithIndices('maxWithIndices', x, axis, keepdim);
/** The smallest value along `axis` and its index (the first among ties), as torch.min(x, dim). */
export const minWithIndices = (x: Tensor, axis: number, keepdim = false): { values: Tensor; indices: Tensor } =>
  extremeWithIndices('minWithIndices', x, axis, keepdim);

/** Mean over `axis` (every axis when omitted), f32. */
export function mean(x: Tensor, axis?: number | readonly number[], keepdim = false): Tensor {
  checkTensor('mean', 'x', x);
  checkBool('mean', 'keepdim', keepdim);
  const axes = normAxes(axis, x.ndim, 'mean');
  const n = numel(axes.map((i) => x.shape[i]));
  check(x.dtype === 'f32', 'mean', () => `expected an f32 tensor, got ${x.describe()}`);
  const { out, keepShape } = reduceInto('mean', 'sum', x, axes, 1 / n);
  const res = finish(out, keepShape, keepdim);
  if (res !== out) out.dispose();
  return record('mean', [x], res, { keepShape, n });
}

/**
 * Variance over `axis` (every axis when omitted), dividing by n − correction: correction 1 (the
 * default, as in PyTorch) is Bessel's unbiased estimate, 0 the population variance. `var` is a
 * reserved word in JavaScript: the function is `variance`, the method `x.var()`.
 */
export function variance(x: Tensor, axis?: number | readonly number[], keepdim = false, correction = 1): Tensor {
  checkTensor('var', 'x', x);
  checkBool('var', 'keepdim', keepdim);
  checkNumber('var', 'correction', correction, { min: 0 });
  checkF32('var', x);
  const axes = normAxes(axis, x.ndim, 'var');
  const n = numel(axes.map((i) => x.shape[i]));
  check(n - correction > 0, 'var', () => `needs more than ${correction} elements along the reduced axes of ${x.describe()}`);
  const d = sub(x, mean(x, axes, true));
  return mul(sum(mul(d, d), axes, keepdim), 1 / (n - correction));
}

/** Standard deviation: sqrt(variance(x, axis, keepdim, correction)), correction 1 by default as in PyTorch. */
export function std(x: Tensor, axis?: number | readonly number[], keepdim = false, correction = 1): Tensor {
  checkTensor('std', 'x', x);
  const v = variance(x, axis, keepdim, correction);
  const out = sqrt(v);
  releaseTemps(out, [v]);
  return out;
}

function argExtreme(op: string, kind: 'argmax' | 'argmin', x: Tensor, axis: number | undefined, keepdim: boolean): Tensor {
  checkTensor(op, 'x', x);
  checkBool(op, 'keepdim', keepdim);
  if (axis !== undefined) normAxis(axis, x.ndim, op);
  if (x.ndim === 0) return fullOf(op, [], 0, { dtype: 'i32', device: x.device }); // a scalar's index is 0 (PyTorch)
  if (axis === undefined) {
    // over the flattened tensor (PyTorch's argmax() without dim)
    checkReducedSize(op, x, [...x.shape.keys()]);
    const flat = reshape(x, [-1]);
    const r = argExtreme(op, kind, flat, 0, false);
    flat.dispose();
    return keepdim ? reshapeOwned(r, x.shape.map(() => 1)) : r;
  }
  const a = normAxis(axis, x.ndim, op);
  const { out, keepShape } = reduceInto(op, kind, x, [a]);
  const res = finish(out, keepShape, keepdim);
  if (res !== out) out.dispose();
  return res;
}

/** reshape() of a fresh, unrecorded tensor, disposing the original object. */
function reshapeOwned(t: Tensor, shape: readonly number[]): Tensor {
  const r = reshape(t, shape);
  t.dispose();
  return r;
}

/**
 * Index of the first maximum along `axis` (i32, no gradient; a NaN counts as the maximum, as
 * PyTorch); over the flattened tensor when axis is omitted.
 */
export const argmax = (x: Tensor, axis?: number, keepdim = false): Tensor => argExtreme('argmax', 'argmax', x, axis, keepdim);
/** Index of the first minimum along `axis` (i32, no gradient; a NaN counts as the minimum, as PyTorch); over the flattened tensor when axis is omitted. */
export const argmin = (x: Tensor, axis?: number, keepdim = false): Tensor => argExtreme('argmin', 'argmin', x, axis, keepdim);

/**
 * Vector p-norm over `axis` (every axis when omitted), as torch.linalg.vector_norm: p = 2 (default)
 * in one pass (sum of squares, then sqrt; gradient x / norm, 0 where the norm is 0); p = 1, ±Infinity
 * (max / min of |x|), 0 (count of nonzeros, no gradient) and any other p as (Σ |x|^p)^(1/p).
 *
 * @example
 * t.norm(t.tensor([3, 4])) // 5
 */
export function norm(x: Tensor, p = 2, axis?: number | readonly number[], keepdim = false): Tensor {
  checkTensor('norm', 'x', x);
  checkBool('norm', 'keepdim', keepdim);
  checkF32('norm', x);
  check(typeof p === 'number' && !Number.isNaN(p), 'norm', () => `p must be a number, got ${String(p)}`);
  const axes = normAxes(axis, x.ndim, 'norm');
  if (p === 2) {
    const { out, keepShape } = reduceInto('norm', 'sum', x, axes, 1, true);
    runMap(x.device, 'norm', { expr: 'sqrt(a)', compute: 'f32' }, out, [out]);
    const res = finish(out, keepShape, keepdim);
    if (res !== out) out.dispose();
    return record('norm', [x], res, { keepShape });
  }
  if (p === 0) {
    const nz = ne(x, 0);
    const out = sum(nz, axes, keepdim);
    nz.dispose();
    return out;
  }
  const a = abs(x);
  if (p === Infinity || p === -Infinity || p === 1) {
    const out = p === 1 ? sum(a, axes, keepdim) : p > 0 ? max(a, axes, keepdim) : min(a, axes, keepdim);
    releaseTemps(out, [a]);
    return out;
  }
  const powered = pow(a, p);
  const total = sum(powered, axes, keepdim);
  const out = pow(total, 1 / p);
  releaseTemps(out, [a, powered, total]);
  return out;
}

/** Sums a (broadcast) gradient back to `shape`. */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  const s = axes.length ? sum(g, axes, true) : g;
  return reshape(s, shape);
}

// ---- matmul -----------------------------------------------------------------------------------------

/**
 * Matrix product with PyTorch semantics: batched, broadcasting batch dims, 1-D operands promoted.
 * a (..., M, K) @ b (..., K, N) → (..., M, N), f32; transposed views are read in place.
 *
 * @example
 * t.matmul(t.randn([8, 16]), t.randn([16, 4])) // [8, 4]
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkTensor('matmul', 'a', a);
  checkTensor('matmul', 'b', b);
  const dev = deviceOf('matmul', a, b);
  checkF32('matmul', a, b);
  check(a.ndim >= 1 && b.ndim >= 1, 'matmul', () => `operands must have rank >= 1, got ${a.describe()} and ${b.describe()}`);
  if (a.ndim === 1 || b.ndim === 1) {
    // PyTorch: a 1-D left operand is a row vector, a 1-D right operand a column; the added dims are removed
    const a2 = a.ndim === 1 ? unsqueeze(a, 0) : a;
    const b2 = b.ndim === 1 ? unsqueeze(b, -1) : b;
    const r = matmul(a2, b2);
    const outShape = r.shape.filter((_, i) => !((b.ndim === 1 && i === r.ndim - 1) || (a.ndim === 1 && i === r.ndim - 2)));
    const out = reshape(r, outShape);
    releaseTemps(out, [a2, b2, r], [a, b]);
    return out;
  }
  const [M, K] = a.shape.slice(-2);
  const [K2, N] = b.shape.slice(-2);
  check(K === K2, 'matmul', () => `inner dimensions differ: ${a.describe()} @ ${b.describe()} (expected a.shape[-1] == b.shape[-2])`);
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  check(Math.max(M, N, K, numel(batch)) < 2 ** 31, 'matmul', () => `sizes ${fmtShape([...batch, M, K])} @ ${fmtShape([...batch, K, N])} exceed the kernels' 32-bit index math (each of M, N, K and the batch below 2^31)`);
  const out = empty([...batch, M, N], 'f32', dev, 'matmul');
  runMatmul(dev, 'matmul', out, bview(a, [...batch, M, K]), bview(b, [...batch, K, N]));
  return record('matmul', [a, b], out);
}

/**
 * y = act(x @ w + bias): x (..., K), w (K, N), bias (N,) or none, act 'none' | 'gelu'.
 * One kernel (the matmul epilogue) when no gradient is recorded; with autograd the pre-activation
 * z = x @ w + bias is kept for the backward and GELU runs as its own element-wise pass.
 */
export function linear(x: Tensor, w: Tensor, bias?: Tensor | null, activation: 'none' | 'gelu' = 'none'): Tensor {
  checkTensor('linear', 'x', x);
  checkTensor('linear', 'w', w);
  checkOptionalTensor('linear', 'bias', bias);
  const dev = deviceOf('linear', x, w, bias);
  checkF32('linear', x, w, bias);
  check(x.ndim >= 1 && w.ndim === 2 && x.shape[x.ndim - 1] === w.shape[0], 'linear',
    () => `expected x (..., K) and w (K, N) with matching K, got ${x.describe()} and ${w.describe()}`);
  const [K, N] = w.shape;
  if (bias) check(bias.ndim === 1 && bias.shape[0] === N, 'linear', () => `bias must have shape [${N}], got ${bias.describe()}`);
  check(activation === 'none' || activation === 'gelu', 'linear', () => `activation must be 'none' or 'gelu', got ${String(activation)}`);
  const rows = numel(x.shape.slice(0, -1));
  const x2 = x.view_([rows, K], viewStrides(x.shape, x.strides, [rows, K]) ?? contiguousStrides([rows, K]), x.offset);
  const x2c = viewStrides(x.shape, x.strides, [rows, K]) ? x2 : contiguousCopy(x2);
  const outShape = [...x.shape.slice(0, -1), N];
  const grad = isGradEnabled() && [x, w, bias].some((t) => t?.requiresGrad);
  const z = empty(outShape, 'f32', dev, 'linear');
  const zv: View = { buffer: z.buffer, dtype: 'f32', shape: [rows, N], strides: [N, 1], offset: 0 };
  runMatmul(dev, 'linear', zv, bview(x2c, [rows, K]), bview(w, [K, N]), { bias: bias ? bview(bias, [N]) : null, activation: grad ? 'none' : activation });
  if (x2c !== x2) x2c.dispose();
  x2.dispose();
  if (!grad) return z;
  const y = activation === 'gelu' ? fmap('gelu_erf(a)', z) : z;
  return record('linear', [x, w, bias ?? null], y, { z, activation });
}

/** [dx, dw, dbias] for linear. */
export function linearBackward(g: Tensor, { inputs: [x, w, b], saved }: GradContext): (Tensor | null)[] {
  const xt = x as Tensor;
  const wt = w as Tensor;
  const { z, activation } = saved as { z: Tensor; activation: string };
  const [K, N] = wt.shape;
  const gz = activation === 'gelu' ? fmap('gelu_erf_grad(a) * b', z, g) : g;
  const gz2 = reshape(gz, [-1, N]);
  const dx = xt.requiresGrad ? reshape(matmul(gz2, transpose(wt, 0, 1)), xt.shape) : null;
  const dw = wt.requiresGrad ? matmul(transpose(reshape(xt, [-1, K]), 0, 1), gz2) : null;
  const db = (b as Tensor | null)?.requiresGrad ? sum(gz2, 0) : null;
  return [dx, dw, db];
}

// ---- softmax family ---------------------------------------------------------------------------------

/** Moves `axis` last and makes rows contiguous: returns [rows, n] tensor and how to undo it. */
function rowsAlong(x: Tensor, axis: number): { rows: Tensor; perm: number[] | null } {
  const a = normAxis(axis, x.ndim, 'softmax');
  const perm = a === x.ndim - 1 ? null : [...x.shape.keys()].filter((i) => i !== a).concat([a]);
  const moved = perm ? x.view_(perm.map((i) => x.shape[i]), perm.map((i) => x.strides[i]), x.offset) : x;
  const rows = moved.isContiguous ? moved : contiguousCopy(moved);
  if (rows !== moved && moved !== x) moved.dispose();
  return { rows, perm };
}

function undoRows(t: Tensor, perm: number[] | null): Tensor {
  if (!perm) return t;
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  const out = t.view_(inv.map((i) => t.shape[i]), inv.map((i) => t.strides[i]), t.offset);
  t.dispose();
  return out;
}

function softmaxLike(op: 'softmax' | 'logSoftmax', x: Tensor, axis: number): Tensor {
  checkTensor(op, 'x', x);
  const dev = deviceOf(op, x);
  checkF32(op, x);
  normAxis(axis, x.ndim, op);
  if (x.ndim === 0) {
    // a scalar is a row of one
    const x1 = reshape(x, [1]);
    const y = softmaxLike(op, x1, 0);
    const out = reshape(y, []);
    releaseTemps(out, [x1, y]);
    return out;
  }
  const { rows, perm } = rowsAlong(x, axis);
  const out = empty(rows.shape, 'f32', dev, op);
  runSoftmax(dev, op, op, out, rows);
  if (rows !== x) rows.dispose();
  return record(op, [x], undoRows(out, perm), { axis: normAxis(axis, x.ndim, op) });
}
/**
 * exp(x) / Σ exp(x) along `axis` (the last by default), one fused row kernel each way.
 *
 * @example
 * t.softmax(t.tensor([1, 2, 3])) // [0.090, 0.245, 0.665]
 */
export const softmax = (x: Tensor, axis = -1): Tensor => softmaxLike('softmax', x, axis);
/** x − logsumexp(x) along `axis` (the last by default), stable for large logits. */
export const logSoftmax = (x: Tensor, axis = -1): Tensor => softmaxLike('logSoftmax', x, axis);

/** dx for softmax (y = out) or log-softmax along axis, by the fused row kernel. */
export function softmaxBackward(y: Tensor, g: Tensor, axis: number, log: boolean): Tensor {
  const dev = deviceOf('softmax.backward', y, g);
  const a = normAxis(axis, y.ndim, 'softmax.backward');
  const yr = rowsAlong(y, a);
  const gr = rowsAlong(g, a);
  const dx = empty(yr.rows.shape, 'f32', dev);
  runSoftmaxBackward(dev, log ? 'logSoftmax.backward' : 'softmax.backward', log, dx, yr.rows, gr.rows);
  if (yr.rows !== y) yr.rows.dispose();
  if (gr.rows !== g) gr.rows.dispose();
  return undoRows(dx, yr.perm);
}

/** log(sum(exp(x))) over axes, computed stably in one pass per row. */
export function logsumexp(x: Tensor, axis: number | readonly number[], keepdim = false): Tensor {
  checkTensor('logsumexp', 'x', x);
  checkBool('logsumexp', 'keepdim', keepdim);
  const dev = deviceOf('logsumexp', x);
  checkF32('logsumexp', x);
  const axes = normAxes(axis, x.ndim, 'logsumexp');
  const outer = [...x.shape.keys()].filter((i) => !axes.includes(i));
  const order = [...outer, ...axes];
  const moved = x.view_(order.map((i) => x.shape[i]), order.map((i) => x.strides[i]), x.offset);
  const n = numel(axes.map((i) => x.shape[i]));
  check(n > 0, 'logsumexp', () => `cannot reduce over an empty dimension of ${x.describe()}`);
  const rows2d = reshape(moved.isContiguous ? moved : contiguousCopy(moved), [-1, n]);
  moved.dispose();
  const outShape = outer.map((i) => x.shape[i]);
  const out = empty(outShape, 'f32', dev, 'logsumexp');
  runSoftmax(dev, 'logsumexp', 'logsumexp', out, rows2d);
  rows2d.dispose();
  const keepShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const res = finish(out, keepShape, keepdim);
  if (res !== out) out.dispose();
  return record('logsumexp', [x], res, { keepShape });
}

// ---- layer norm ---------------------------------------------------------------------------------------

/** Normalises over the trailing `normalizedShape` dims (biased variance), then * weight + bias. */
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  checkTensor('layerNorm', 'x', x);
  check(Array.isArray(normalizedShape), 'layerNorm', () => `normalizedShape must be a list of trailing dims, got ${describeValue(normalizedShape)}`);
  checkOptionalTensor('layerNorm', 'weight', weight);
  checkOptionalTensor('layerNorm', 'bias', bias);
  checkNumber('layerNorm', 'eps', eps, { min: 0 });
  const dev = deviceOf('layerNorm', x, weight, bias);
  checkF32('layerNorm', x, weight, bias);
  const k = normalizedShape.length;
  check(k >= 1 && k <= x.ndim && normalizedShape.every((d, i) => d === x.shape[x.ndim - k + i]), 'layerNorm',
    () => `normalizedShape ${fmtShape(normalizedShape)} must match the trailing dims of ${x.describe()}`);
  for (const [nm, p] of [['weight', weight], ['bias', bias]] as const) {
    if (p) check(p.shape.length === k && p.shape.every((d, i) => d === normalizedShape[i]), 'layerNorm',
      () => `${nm} of shape ${fmtShape(p.shape)} must have the normalized shape ${fmtShape(normalizedShape)}`);
  }
  const D = numel(normalizedShape);
  const rows = x.numel / D;
  const xc = dense(x);
  const wc = weight ? dense(weight) : null;
  const bc = bias ? dense(bias) : null;
  const out = empty(x.shape, 'f32', dev, 'layerNorm');
  const meanT = empty([rows], 'f32', dev);
  const rstd = empty([rows], 'f32', dev);
  runLayerNorm(dev, 'layerNorm', out, meanT, rstd, xc, wc, bc, rows, D, eps);
  for (const [c, o] of [[xc, x], [wc, weight], [bc, bias]] as const) if (c && c !== o) c.dispose();
  return recordLayerNorm(x, weight ?? null, bias ?? null, out, meanT, rstd, rows, D);
}

/** Puts out = layerNorm(x) on the tape with the row statistics its backward reads, or frees them when no gradient is due. */
function recordLayerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, out: Tensor, meanT: Tensor, rstd: Tensor, rows: number, D: number): Tensor {
  if (!isGradEnabled() || ![x, weight, bias].some((t) => t?.requiresGrad)) {
    meanT.dispose();
    rstd.dispose();
    return out;
  }
  return record('layerNorm', [x, weight, bias], out, { mean: meanT, rstd, rows, D });
}

/**
 * Rotary position embedding (Su et al. 2021) of x (B, H, T, D), any strides: the two halves of D
 * rotated by the position's angles, out = (x₁ cos − x₂ sin, x₂ cos + x₁ sin), (B, H, T, D) contiguous.
 * cos is (B, 1, T, D/2); sinSigned is (B, 1, T, 2, D/2) holding (−sin, +sin), so that one map kernel
 * does it: x viewed as (B, H, T, 2, D/2) times cos, plus x with its halves swapped (a negative-stride
 * view, no copy) times sinSigned. The tables are constants (no gradient reaches them); the gradient
 * of x is the inverse rotation, the same kernel with the sin term subtracted.
 */
export function rope(x: Tensor, cos: Tensor, sinSigned: Tensor): Tensor {
  checkRope('rope', x, cos, sinSigned);
  return record('rope', [x, cos, sinSigned], rotateHalves('rope', x, cos, sinSigned, '+'));
}

/**
 * rope(x, cos, sinSigned) written into dst in place (dst: a (B, H, T, D) view of any strides, e.g. a
 * KV cache's slots): the rotated keys go to the cache in one pass, with no intermediate. Not on the
 * tape (an in-place write, as assign): for generation under noGrad.
 */
export function ropeInto(dst: Tensor, x: Tensor, cos: Tensor, sinSigned: Tensor): void {
  const op = 'ropeInto';
  checkTensor(op, 'dst', dst);
  checkRope(op, x, cos, sinSigned);
  checkF32(op, dst);
  check(dst.shape.length === 4 && dst.shape.every((d, i) => d === x.shape[i]), op, () => `dst ${dst.describe()} must have the shape of x ${x.describe()}`);
  check(dst.buffer !== x.buffer, op, () => 'dst and x share memory: rotate into another tensor');
  check(!(isGradEnabled() && x.requiresGrad), op, () => 'an in-place write is not recorded for backward: run it under noGrad()');
  dst.bumpVersion();
  rotateHalves(op, x, cos, sinSigned, '+', dst);
}

function checkRope(op: string, x: Tensor, cos: Tensor, sinSigned: Tensor): void {
  checkTensor(op, 'x', x);
  checkTensor(op, 'cos', cos);
  checkTensor(op, 'sinSigned', sinSigned);
  deviceOf(op, x, cos, sinSigned);
  checkF32(op, x, cos, sinSigned);
  check(x.ndim === 4 && x.shape[3] % 2 === 0, op, () => `x must be (B, H, T, D) with D even, got ${x.describe()}`);
  const [B, , T, D] = x.shape;
  check(cos.ndim === 4 && cos.shape[0] === B && cos.shape[1] === 1 && cos.shape[2] === T && cos.shape[3] === D / 2, op,
    () => `cos must be (B, 1, T, D/2) = ${fmtShape([B, 1, T, D / 2])} for x ${x.describe()}, got ${cos.describe()}`);
  check(sinSigned.ndim === 5 && [B, 1, T, 2, D / 2].every((d, i) => sinSigned.shape[i] === d), op,
    () => `sinSigned must be (B, 1, T, 2, D/2) = ${fmtShape([B, 1, T, 2, D / 2])} for x ${x.describe()}, got ${sinSigned.describe()}`);
  check(!cos.requiresGrad && !sinSigned.requiresGrad, op, () => 'the rotary tables are constants: they cannot require a gradient');
}

/** out = x·cos ± swap(x)·sinSigned over the (B, H, T, 2, D/2) view of x: '+' rotates, '-' undoes it. Into `dst` if given. */
function rotateHalves(op: string, x: Tensor, cos: Tensor, sinSigned: Tensor, sign: '+' | '-', dst?: Tensor): Tensor {
  const [B, H, T, D] = x.shape;
  const half = D / 2;
  const shape5 = [B, H, T, 2, half];
  const [s0, s1, s2, s3] = x.strides;
  const out = dst ?? empty(x.shape, 'f32', x.device, op);
  const [o0, o1, o2, o3] = out.strides;
  const outView: View = { buffer: out.buffer, dtype: 'f32', shape: shape5, strides: [o0, o1, o2, o3 * half, o3], offset: out.offset };
  const xv: View = { buffer: x.buffer, dtype: 'f32', shape: shape5, strides: [s0, s1, s2, s3 * half, s3], offset: x.offset };
  const swapped: View = { ...xv, strides: [s0, s1, s2, -s3 * half, s3], offset: x.offset + s3 * half };
  runMap(x.device, op, { expr: `a * c ${sign} b * d`, compute: 'f32' }, outView,
    [xv, swapped, bview(reshape(cos, [B, 1, T, 1, half]), shape5), bview(sinSigned, shape5)]);
  return out;
}

/** The gradient of rope: g rotated back (x₁ ← g₁ cos + g₂ sin, x₂ ← g₂ cos − g₁ sin). */
export function ropeBackward(g: Tensor, { inputs: [, cos, sinSigned] }: GradContext): (Tensor | null)[] {
  return [rotateHalves('rope.backward', g, cos as Tensor, sinSigned as Tensor, '-'), null, null];
}

/**
 * The pre-LN block's residual add and the layer norm after it in one kernel: sum = x + y and
 * out = layerNorm(sum) (x, y of one shape; normalized over the last dim, weight and bias of that
 * size). Reads x and y once and writes both, where add then layerNorm reads the sum back. On the
 * tape it is the two ops it fuses (an add, then a layerNorm of its result), so gradients are theirs.
 */
export function addLayerNorm(x: Tensor, y: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): { sum: Tensor; out: Tensor } {
  const op = 'addLayerNorm';
  checkTensor(op, 'x', x);
  checkTensor(op, 'y', y);
  checkOptionalTensor(op, 'weight', weight);
  checkOptionalTensor(op, 'bias', bias);
  checkNumber(op, 'eps', eps, { min: 0 });
  const dev = deviceOf(op, x, y, weight, bias);
  checkF32(op, x, y, weight, bias);
  check(x.ndim >= 1 && y.shape.length === x.ndim && y.shape.every((d, i) => d === x.shape[i]), op,
    () => `x and y must have one shape (no broadcasting), got ${x.describe()} and ${y.describe()}`);
  const D = x.shape[x.ndim - 1];
  for (const [nm, p] of [['weight', weight], ['bias', bias]] as const) {
    if (p) check(p.ndim === 1 && p.shape[0] === D, op, () => `${nm} of shape ${fmtShape(p.shape)} must be [${D}] (the last dim of ${x.describe()})`);
  }
  const rows = x.numel / Math.max(1, D);
  const [xc, yc] = [dense(x), dense(y)];
  const wc = weight ? dense(weight) : null;
  const bc = bias ? dense(bias) : null;
  const sumT = empty(x.shape, 'f32', dev, op);
  const out = empty(x.shape, 'f32', dev, op);
  const meanT = empty([rows], 'f32', dev);
  const rstd = empty([rows], 'f32', dev);
  runLayerNorm(dev, op, out, meanT, rstd, xc, wc, bc, rows, D, eps, { y: yc, sum: sumT });
  for (const [c, o] of [[xc, x], [yc, y], [wc, weight], [bc, bias]] as const) if (c && c !== o) c.dispose();
  const sum = record('add', [x, y], sumT);
  return { sum, out: recordLayerNorm(sum, weight, bias, out, meanT, rstd, rows, D) };
}

/** [dx, dweight, dbias] for layerNorm: dx by the fused row kernel, dweight/dbias as column sums. */
export function layerNormBackward(g: Tensor, { inputs: [x, w, b], saved }: GradContext): (Tensor | null)[] {
  const xt = x as Tensor;
  const wt = w as Tensor | null;
  const { mean: meanT, rstd, rows, D } = saved as { mean: Tensor; rstd: Tensor; rows: number; D: number };
  const dev = deviceOf('layerNorm.backward', xt, g, meanT, rstd);
  const x2 = reshape(dense(xt), [rows, D]);
  const g2 = reshape(dense(g), [rows, D]);
  const wc = wt ? dense(wt) : null;
  const dx = empty([rows, D], 'f32', dev);
  runLayerNormBackward(dev, 'layerNorm.backward', dx, g2, x2, wc, meanT, rstd, rows, D);
  let dw: Tensor | null = null;
  let db: Tensor | null = null;
  if (wt?.requiresGrad) {
    const gxhat = fmap('(a - b) * c * d', x2, reshape(meanT, [rows, 1]), reshape(rstd, [rows, 1]), g2);
    dw = reshape(sum(gxhat, 0), wt.shape);
  }
  const bt = b as Tensor | null;
  if (bt?.requiresGrad) db = reshape(sum(g2, 0), bt.shape);
  return [reshape(dx, xt.shape), dw, db];
}

// ---- indexing -------------------------------------------------------------------------------------------

function checkIndex(op: string, index: Tensor, name = 'index'): void {
  checkTensor(op, name, index);
  check(index.dtype === 'i32', op, () => `index must be an i32 tensor, got ${index.describe()}`);
}

function gatherForward(op: string, x: Tensor, a: number, index: Tensor, describeCall: () => string): Tensor {
  const dev = deviceOf(op, x, index);
  const out = empty(index.shape, x.dtype, dev, op);
  const xShape = x.shape.map((d, i) => (i === a ? d : index.shape[i]));
  const xv: View = { buffer: x.buffer, dtype: x.dtype, shape: xShape, strides: x.strides, offset: x.offset };
  const n = x.ndim === 0 ? 1 : x.shape[a];
  runGather(dev, op, out, xv, bview(index, index.shape), a, dev.assertFlag(op, () => `an index was outside [0, ${n}): ${describeCall()}`));
  return out;
}

/** torch.gather: out[i][j][k] = x[i][index[i][j][k]][k] for axis 1 (index.shape[d] <= x.shape[d] for d != axis). */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  checkTensor('gather', 'x', x);
  checkIndex('gather', index);
  const a = normAxis(axis, x.ndim, 'gather');
  check(index.ndim === x.ndim && index.shape.every((d, i) => i === a || d <= x.shape[i]), 'gather',
    () => `index ${index.describe()} must have the rank of ${x.describe()} and no larger size off axis ${a}`);
  return record('gather', [x, index], gatherForward('gather', x, a, index, () => `index ${index.describe()} gathering along axis ${a} (size ${x.shape[a] ?? 1}) of ${x.describe()}`), { axis: a });
}

/** The 1-D index of indexSelect viewed as a gather index (stride 0 off the axis). */
export function indexSelectView(index: Tensor, xShape: readonly number[], axis: number): Tensor {
  const shape = [...xShape];
  shape[axis] = index.shape[0];
  return index.view_(shape, shape.map((_, i) => (i === axis ? index.strides[0] : 0)), index.offset);
}

/** Rows (or slices along axis) of x picked by a 1-D i32 index. */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  return indexSelectAs('indexSelect', x, axis, index);
}

/** indexSelect, with errors (and the GPU's range check) reported under `op`. */
function indexSelectAs(op: string, x: Tensor, axis: number, index: Tensor, describeCall?: () => string): Tensor {
  checkTensor(op, 'x', x);
  checkIndex(op, index);
  deviceOf(op, x, index);
  check(x.ndim >= 1, op, () => `x must have rank >= 1, got ${x.describe()}`);
  check(index.ndim === 1, op, () => `index must be 1-D, got ${index.describe()}`);
  const a = normAxis(axis, x.ndim, op);
  const idxView = indexSelectView(index, x.shape, a);
  const out = gatherForward(op, x, a, idxView, describeCall ?? (() => `index ${index.describe()} selecting along axis ${a} (size ${x.shape[a]}) of ${x.describe()}`));
  idxView.dispose();
  return record('indexSelect', [x, index], out, { axis: a });
}

/**
 * Embedding lookup, in PyTorch's F.embedding(input, weight) order: ids i32 of any shape, weight
 * [V, D] → [...ids.shape, D]. The gradient to weight is a deterministic scatter-add.
 *
 * @example
 * t.embedding(t.tensor([2, 0], { dtype: 'i32' }), weight) // rows 2 and 0 of weight: [2, D]
 */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  checkIndex('embedding', ids, 'ids');
  checkTensor('embedding', 'weight', weight);
  check(weight.ndim === 2, 'embedding', () => `weight must be [V, D], got ${weight.describe()}`);
  const flat = reshape(ids, [-1]);
  const rows = indexSelectAs('embedding', weight, 0, flat, () => `ids ${ids.describe()} into the ${weight.shape[0]} rows of weight ${weight.describe()}`);
  const out = reshape(rows, [...ids.shape, weight.shape[1]]);
  releaseTemps(out, [rows, flat]);
  return out;
}

/**
 * One-hot rows: ids i32 of any shape → [...ids.shape, numClasses] with 1 at each id (PyTorch's
 * F.one_hot), i32 unless `dtype` says otherwise. An id outside [0, numClasses) gives a row of zeros
 * and is reported (TrimpiError at the next readback).
 */
export function oneHot(ids: Tensor, numClasses: number, opts: { dtype?: DType } = {}): Tensor {
  checkIndex('oneHot', ids, 'ids');
  const dev = deviceOf('oneHot', ids);
  checkNumber('oneHot', 'numClasses', numClasses, { integer: true, min: 1, max: I32_MAX });
  checkOptions('oneHot', opts);
  const dtype = opts.dtype ?? 'i32';
  checkDType('oneHot', 'dtype', dtype);
  const shape = [...ids.shape, numClasses];
  const out = empty(shape, dtype, dev, 'oneHot');
  const idv: View = { buffer: ids.buffer, dtype: 'i32', shape, strides: [...ids.strides, 0], offset: ids.offset };
  runMap(dev, 'oneHot', { expr: 'select(0, 1, a == i32(o0 % u32(p.x)))', compute: 'i32' }, out, [idv], [numClasses]);
  // the range check: the keys of a gather along a last axis of size numClasses flag every bad id
  const probe = [...ids.shape, 1];
  const keys = empty(probe, 'i32', dev);
  runGatherKeys(dev, 'oneHot', bview(keys, probe), shape, { ...idv, shape: probe }, ids.ndim,
    dev.assertFlag('oneHot', () => `an index was outside [0, ${numClasses}): ids ${ids.describe()}`));
  keys.dispose();
  return out;
}

/**
 * out = x + the values of `src` added at `index` along `axis` (PyTorch's scatter_add): for axis 0,
 * out[index[i][j]][j] += src[i][j]. index: i32 of x's rank, no larger than src anywhere nor than x
 * off the axis; only src's leading index-shaped block is used. f32; summed in a fixed order
 * (deterministic, no float atomics). Gradients: g to x, gather(g, axis, index) to src. An index
 * outside [0, x.shape[axis]) is skipped and reported (TrimpiError at the next readback).
 */
export function scatterAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  checkTensor('scatterAdd', 'x', x);
  checkTensor('scatterAdd', 'src', src);
  check(x.ndim >= 1, 'scatterAdd', () => `x must have rank >= 1, got ${x.describe()}`);
  checkF32('scatterAdd', x, src);
  checkIndex('scatterAdd', index);
  const a = normAxis(axis, x.ndim, 'scatterAdd');
  check(index.ndim === x.ndim && src.ndim === x.ndim && index.shape.every((d, i) => d <= src.shape[i] && (i === a || d <= x.shape[i])), 'scatterAdd',
    () => `index ${index.describe()} must have the rank of x ${x.describe()} and src ${src.describe()}, be no larger than src, and no larger than x off axis ${a}`);
  let block = src;
  const temps: Tensor[] = [];
  for (let d = 0; d < src.ndim; d++) if (block.shape[d] !== index.shape[d]) temps.push((block = slice(block, d, 0, index.shape[d])));
  const spread = record('scatterAdd', [block, index], gatherBackward(block, x.shape, a, index, 'scatterAdd'), { axis: a });
  const out = add(x, spread);
  releaseTemps(out, [...temps, spread]);
  return out;
}

/**
 * Gradient of gather: a deterministic scatter-add of g into zeros of x's shape. With `checkOp`,
 * indices out of range are reported under that op's name (they are skipped either way).
 */
export function gatherBackward(g: Tensor, xShape: readonly number[], axis: number, index: Tensor, checkOp?: string): Tensor {
  const op = checkOp ?? 'gather.backward';
  const dev = deviceOf(op, g, index);
  // torch.gather allows an index smaller than x off the axis: scatter into that sub-block, then place it
  const sub = xShape.map((d, i) => (i === axis ? d : index.shape[i]));
  const keys = empty(index.shape, 'i32', dev);
  runGatherKeys(dev, op, keys, sub, bview(index, index.shape), axis,
    checkOp ? dev.assertFlag(checkOp, () => `an index was outside [0, ${xShape[axis]}): index ${index.describe()} along axis ${axis} of a tensor of shape ${fmtShape(xShape)}`) : undefined);
  const out = empty(sub, 'f32', dev);
  runScatterAddByKey(dev, op, out, keys, bview(g, g.shape));
  keys.dispose();
  if (sub.every((d, i) => d === xShape[i])) return out;
  const full = zeros(xShape, { device: dev });
  runMap(dev, 'gather.backward', { expr: 'a', compute: 'f32' }, { buffer: full.buffer, dtype: 'f32', shape: sub, strides: full.strides, offset: 0 }, [bview(out, sub)]);
  out.dispose();
  return full;
}

/**
 * Log-probability of each target token: logits (..., V), tokens i32 (...) → (...), with
 * out = logits[token] − logsumexp(logits). The RL losses' per-token log p(o_t | context) and the core
 * of crossEntropy. One fused kernel each way: the forward keeps only the per-row logsumexp, the
 * backward recomputes the softmax from it, so the (rows × V) probabilities are never stored.
 * A token outside [0, V) is reported (TrimpiError at the next readback).
 */
export function tokenLogProbs(logits: Tensor, tokens: Tensor): Tensor {
  return tokenLogProbsAs('tokenLogProbs', logits, tokens);
}

function tokenLogProbsAs(op: string, logits: Tensor, tokens: Tensor, describeCall?: () => string): Tensor {
  checkTensor(op, 'logits', logits);
  checkIndex(op, tokens, 'tokens');
  const dev = deviceOf(op, logits, tokens);
  checkF32(op, logits);
  const V = logits.shape[logits.ndim - 1];
  check(logits.ndim >= 1 && tokens.ndim === logits.ndim - 1 && tokens.shape.every((d, i) => d === logits.shape[i]), op,
    () => `tokens ${tokens.describe()} must have the shape of logits ${logits.describe()} without the vocabulary dim`);
  const rows = tokens.numel;
  const x = dense(logits);
  const tg = dense(tokens);
  const out = empty(tokens.shape, 'f32', dev, op);
  const lse = empty([rows], 'f32', dev);
  runTokenLogProbs(dev, 'tokenLogProbs', bview(out, [rows]), bview(lse, [rows]), { buffer: x.buffer, dtype: 'f32', shape: [rows, V], strides: [V, 1], offset: x.offset },
    { buffer: tg.buffer, dtype: 'i32', shape: [rows], strides: [1], offset: tg.offset },
    dev.assertFlag(op, describeCall ?? (() => `a target token was outside the vocabulary [0, ${V}): tokens ${tokens.describe()} for logits ${logits.describe()}`)));
  if (x !== logits) x.dispose();
  if (tg !== tokens) tg.dispose();
  if (!isGradEnabled() || !logits.requiresGrad) {
    lse.dispose();
    return out;
  }
  return record('tokenLogProbs', [logits, tokens], out, { lse });
}

/** d logits for tokenLogProbs: g * (onehot − softmax), the softmax recomputed from the saved logsumexp. */
export function tokenLogProbsBackward(g: Tensor, { inputs: [logits, tokens], saved }: GradContext): (Tensor | null)[] {
  const x = dense(logits as Tensor);
  const tg = dense(tokens as Tensor);
  const dev = deviceOf('tokenLogProbs.backward', x, g);
  const V = x.shape[x.ndim - 1];
  const rows = tg.numel;
  const gd = dense(g);
  const dx = empty(x.shape, 'f32', dev);
  runTokenLogProbsBackward(dev, 'tokenLogProbs.backward', { buffer: dx.buffer, dtype: 'f32', shape: [rows, V], strides: [V, 1], offset: 0 },
    { buffer: gd.buffer, dtype: 'f32', shape: [rows], strides: [1], offset: gd.offset },
    { buffer: x.buffer, dtype: 'f32', shape: [rows, V], strides: [V, 1], offset: x.offset }, bview(saved.lse as Tensor, [rows]),
    { buffer: tg.buffer, dtype: 'i32', shape: [rows], strides: [1], offset: tg.offset });
  return [dx, null];
}

// ---- losses -----------------------------------------------------------------------------------------------

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Targets equal to this contribute nothing (default -100). */
  ignoreIndex?: number;
  /** Per-class weights (C,), as PyTorch's `weight`: token i's loss is scaled by weight[target_i]. Not differentiated. */
  weight?: Tensor;
  /** Per-token weights, the targets' shape (a trimpi extension; multiplies the class weight). Not differentiated. */
  tokenWeight?: Tensor;
  /** 'mean' (weighted mean over non-ignored tokens: Σ w·loss / Σ w; 0 if Σ w is 0), 'sum' or 'none'. */
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Cross-entropy of logits [..., C] against i32 class targets [...] (PyTorch's F.cross_entropy with
 * class indices): loss_i = −w_i · log softmax(logits_i)[target_i], w_i = weight[target_i] ·
 * tokenWeight_i (1 when absent, 0 for ignored targets), reduced by `reduction`. The softmax is never
 * stored (fused log-prob kernels).
 *
 * @example
 * const loss = t.crossEntropy(logits, targets, { ignoreIndex: -100 }); // logits [N, C], targets [N] i32
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  checkTensor('crossEntropy', 'logits', logits);
  checkIndex('crossEntropy', targets, 'targets');
  checkOptions('crossEntropy', opts);
  checkOptionalTensor('crossEntropy', 'weight', opts.weight);
  checkOptionalTensor('crossEntropy', 'tokenWeight', opts.tokenWeight);
  checkNumber('crossEntropy', 'ignoreIndex', opts.ignoreIndex, { integer: true, optional: true });
  deviceOf('crossEntropy', logits, targets, opts.weight, opts.tokenWeight);
  checkF32('crossEntropy', logits, opts.weight, opts.tokenWeight);
  const C = logits.shape[logits.ndim - 1];
  check(logits.ndim >= 1 && targets.ndim === logits.ndim - 1 && targets.shape.every((d, i) => d === logits.shape[i]), 'crossEntropy',
    () => `targets ${targets.describe()} must have the shape of logits ${logits.describe()} without the class dim`);
  if (opts.weight) check(opts.weight.ndim === 1 && opts.weight.shape[0] === C, 'crossEntropy',
    () => `weight ${opts.weight!.describe()} holds one weight per class: it must have shape [${C}] (per-token weights go in tokenWeight)`);
  if (opts.tokenWeight) check(opts.tokenWeight.shape.length === targets.ndim && opts.tokenWeight.shape.every((d, i) => d === targets.shape[i]), 'crossEntropy',
    () => `tokenWeight ${opts.tokenWeight!.describe()} must have the targets' shape ${fmtShape(targets.shape)}`);
  const reduction = opts.reduction ?? 'mean';
  check(['mean', 'sum', 'none'].includes(reduction), 'crossEntropy', () => `reduction must be 'mean', 'sum' or 'none', got ${reduction}`);
  const ignore = opts.ignoreIndex ?? -100;
  const L = reshape(logits, [-1, C]);
  const t = reshape(targets, [-1]);
  const valid = ne(t, ignore);
  const safe = where(valid, t, 0);
  const picked = tokenLogProbsAs('crossEntropy', L, safe, () => `a target was outside the classes [0, ${C}) (and not ignoreIndex ${ignore}): targets ${targets.describe()} for logits ${logits.describe()}`);
  const classWeight = opts.weight;
  const tokenWeight = opts.tokenWeight;
  const w = noGrad(() => {
    let wt = valid;
    if (classWeight) wt = mul(wt, indexSelectAs('crossEntropy', classWeight, 0, safe, () => `a target was outside the classes [0, ${C}): targets ${targets.describe()}`));
    if (tokenWeight) wt = mul(wt, reshape(tokenWeight, [-1]));
    return wt;
  });
  // ignored rows contribute 0 even when their logits hold NaN (PyTorch skips them)
  const per = where(valid, mul(neg(picked), w), 0);
  if (reduction === 'none') return reshape(per, targets.shape);
  const total = sum(per);
  if (reduction === 'sum') return total;
  const wsum = sum(w);
  return div(total, where(gt(wsum, 0), wsum, 1));
}
