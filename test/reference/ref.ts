/**
 * Float64 CPU reference implementation of the engine's ops, forward and backward.
 *
 * A deliberately small reverse-mode autograd in the spirit of micrograd/tinygrad:
 *   - every op computes its output eagerly with plain loops over Float64Array, and
 *   - records a backward rule `(g) => [grad of each parent]` on the output.
 * `backward()` topologically sorts the graph, runs the rules in reverse order and
 * accumulates (+=) into `.grad` of the leaf tensors that require grad.
 *
 * Almost every shape-manipulating op (broadcast, expand, permute, slice, indexSelect,
 * gather, embedding) is one primitive, `take`: out[i] = x[map[i]], whose gradient is the
 * scatter-add gx[map[i]] += g[i].
 *
 * Semantic choices (where PyTorch leaves room):
 *   - maximum/minimum: gradient to `a` where a wins, to `b` where b wins, split 0.5/0.5 on ties.
 *   - max/min reductions: gradient split evenly among all positions equal to the extreme.
 *   - relu'(0) = 0, abs'(0) = 0, clamp gradient is 1 on the closed interval [min, max].
 *   - crossEntropy 'mean' with total weight 0 returns 0 with zero gradient.
 *   - squeeze(axis) on a dim of size != 1 is a no-op (PyTorch); reductions with axis = [] reduce
 *     over all axes (PyTorch's historical dim=[] behaviour).
 *   - Arithmetic always produces 'f32'; views/indexing/concat keep 'i32' when all inputs are 'i32'.
 *
 * NaN and infinities follow PyTorch (IEEE where PyTorch is IEEE): max/min/maximum/minimum/clamp/relu
 * propagate NaN, argmax/argmin point at the first NaN, sign(NaN) = 0, pow is C's pow (pow(1, NaN) =
 * 1), logsumexp of a row with +inf is +inf, and softmax/logSoftmax of a row holding a NaN or +inf
 * is NaN throughout; softmax of a row that is all -inf is 0 (the engine's choice for fully masked
 * attention rows; PyTorch gives NaN), logSoftmax NaN.
 */

export type DType = 'f32' | 'i32';
export interface RefOpts {
  requiresGrad?: boolean;
  dtype?: DType;
}
export type Scalarish = Ref | number;
type BackwardRule = (g: Float64Array) => (Float64Array | null)[];
export type NestedArray = number | NestedArray[];

// ---------------------------------------------------------------------------------------------
// Seeded RNG (mulberry32 + Box–Muller)
// ---------------------------------------------------------------------------------------------

export class Rng {
  private state: number;
  private spare: number | null = null;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1) with 53 random bits (two mulberry32 draws). */
  next(): number {
    const hi = this.u32() >>> 5; // 27 bits
    const lo = this.u32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
  uniform(low = 0, high = 1): number {
    return low + (high - low) * this.next();
  }
  /** Integer in [low, high). */
  int(low: number, high: number): number {
    return low + Math.floor(this.next() * (high - low));
  }
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
  private u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
}

// ---------------------------------------------------------------------------------------------
// erf / erfc in float64 (positive-term series for small |x|, continued fraction for the erfc tail)
// ---------------------------------------------------------------------------------------------

const TWO_OVER_SQRT_PI = 1.1283791670955126;
const INV_SQRT_PI = 0.5641895835477563;

/** erf(x) = 2/√π · e^{-x²} · Σ_n 2^n x^{2n+1} / (1·3·…·(2n+1)) — all terms positive, no cancellation. */
function erfSeries(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 0; n < 500; n++) {
    term *= (2 * x * x) / (2 * n + 3);
    sum += term;
    if (Math.abs(term) <= 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x * x) * sum;
}

/** erfc(x) for x ≥ 1.5 (120 terms give ~1e-16 relative accuracy there): e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated bottom-up. */
function erfcContinuedFraction(x: number): number {
  let t = x;
  for (let n = 120; n >= 1; n--) t = x + n / 2 / t;
  return (INV_SQRT_PI * Math.exp(-x * x)) / t;
}

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  const r = ax < 3 ? erfSeries(ax) : 1 - erfcContinuedFraction(ax);
  return x < 0 ? -r : r;
}

export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x >= 1.5) return erfcContinuedFraction(x); // avoids the cancellation in 1 − erf(x)
  if (x <= -1.5) return 2 - erfcContinuedFraction(-x);
  return 1 - erf(x);
}

/** Standard normal CDF Φ(x) = ½·erfc(−x/√2) (accurate in the lower tail too). */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}
function normalPdf(x: number): number {
  return Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
}

// ---------------------------------------------------------------------------------------------
// Shape helpers
// ---------------------------------------------------------------------------------------------

const fmt = (s: readonly number[]): string => `[${s.join(', ')}]`;
const fail = (op: string, msg: string): never => {
  throw new Error(`${op}: ${msg}`);
};
export const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

function stridesOf(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    st[d] = acc;
    acc *= shape[d];
  }
  return st;
}

function normAxis(axis: number, ndim: number, op: string): number {
  if (!Number.isInteger(axis) || axis < -ndim || axis >= ndim) fail(op, `axis ${axis} out of range for rank ${ndim}`);
  return axis < 0 ? axis + ndim : axis;
}

/** Sorted, de-duplicated-checked list of axes; undefined or [] means all axes. */
function normAxes(axis: number | number[] | undefined, ndim: number, op: string): number[] {
  if (axis === undefined || (Array.isArray(axis) && axis.length === 0)) return [...Array(ndim).keys()];
  const list = (Array.isArray(axis) ? axis : [axis]).map((a) => normAxis(a, ndim, op));
  if (new Set(list).size !== list.length) fail(op, `duplicate axes ${fmt(Array.isArray(axis) ? axis : [axis])}`);
  return list.sort((a, b) => a - b);
}

export function broadcastShapes(op: string, ...shapes: (readonly number[])[]): number[] {
  const nd = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(nd).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const d = nd - s.length + i;
      const v = s[i];
      if (out[d] === 1) out[d] = v;
      else if (v !== 1 && v !== out[d]) fail(op, `shapes ${shapes.map(fmt).join(' and ')} are not broadcastable`);
    }
  }
  return out;
}

/** Calls fn(flatIndex, multiIndex) for every element of `shape` in row-major order. */
function forEachIndex(shape: readonly number[], fn: (flat: number, idx: number[]) => void): void {
  const n = prod(shape);
  const idx = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    fn(flat, idx);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

/** map[i] = offset + Σ_d idx_d(i)·strides[d] for every flat index i of `shape`. */
function stridedMap(shape: readonly number[], strides: readonly number[], offset = 0): Int32Array {
  const map = new Int32Array(prod(shape));
  forEachIndex(shape, (flat, idx) => {
    let o = offset;
    for (let d = 0; d < idx.length; d++) o += idx[d] * strides[d];
    map[flat] = o;
  });
  return map;
}

/** For each element of `outShape`, the flat index of the element of `inShape` broadcast to it. */
function broadcastMap(inShape: readonly number[], outShape: readonly number[]): Int32Array {
  const st = stridesOf(inShape);
  const k = outShape.length - inShape.length;
  const strides = outShape.map((_, d) => (d < k || inShape[d - k] === 1 ? 0 : st[d - k]));
  return stridedMap(outShape, strides);
}

/** Reduction plan: group[i] = flat index of the output that input element i reduces into. */
function reducePlan(shape: readonly number[], axis: number | number[] | undefined, keepdim: boolean, op: string) {
  const axes = normAxes(axis, shape.length, op);
  const keepShape = shape.map((s, d) => (axes.includes(d) ? 1 : s));
  const outShape = keepdim ? keepShape : shape.filter((_, d) => !axes.includes(d));
  const ks = stridesOf(keepShape);
  const group = stridedMap(shape, shape.map((_, d) => (axes.includes(d) ? 0 : ks[d])));
  const n = prod(axes.map((d) => shape[d]));
  return { axes, outShape, keepShape, group, n, groups: prod(keepShape) };
}

function checkIndex(v: number, size: number, op: string): number {
  if (!Number.isInteger(v) || v < 0 || v >= size) fail(op, `index ${v} out of range [0, ${size})`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Elementwise rule tables (derivatives in terms of input x / inputs a, b and output y)
// ---------------------------------------------------------------------------------------------

const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;
const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

/** Rounds half to even (PyTorch's and WGSL's round). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
const softplusOf = (z: number): number => Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));

interface UnaryRule {
  f: (x: number) => number;
  df: (x: number, y: number) => number;
}
const UNARY = {
  neg: { f: (x) => -x, df: () => -1 },
  exp: { f: Math.exp, df: (_x, y) => y },
  log: { f: Math.log, df: (x) => 1 / x },
  sqrt: { f: Math.sqrt, df: (_x, y) => 0.5 / y },
  rsqrt: { f: (x) => 1 / Math.sqrt(x), df: (x, y) => (-0.5 * y) / x },
  tanh: { f: Math.tanh, df: (_x, y) => 1 - y * y },
  sigmoid: { f: sigmoid, df: (_x, y) => y * (1 - y) },
  relu: { f: (x) => (x > 0 || Number.isNaN(x) ? x : 0), df: (x) => (x > 0 ? 1 : 0) },
  abs: { f: Math.abs, df: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0) },
  silu: { f: (x) => x * sigmoid(x), df: (x) => sigmoid(x) * (1 + x * (1 - sigmoid(x))) },
  gelu: { f: (x) => x * normalCdf(x), df: (x) => normalCdf(x) + x * normalPdf(x) },
  log1p: { f: Math.log1p, df: (x) => 1 / (1 + x) },
  expm1: { f: Math.expm1, df: (x) => Math.exp(x) },
  logsigmoid: { f: (x) => -softplusOf(-x), df: (x) => sigmoid(-x) },
  erf: { f: erf, df: (x) => TWO_OVER_SQRT_PI * Math.exp(-x * x) },
  sin: { f: Math.sin, df: Math.cos },
  cos: { f: Math.cos, df: (x) => -Math.sin(x) },
  sign: { f: (x) => (Number.isNaN(x) ? 0 : Math.sign(x)), df: () => 0 },
  floor: { f: Math.floor, df: () => 0 },
  round: { f: roundHalfEven, df: () => 0 },
  geluTanh: {
    f: (x) => 0.5 * x * (1 + Math.tanh(GELU_K * (x + GELU_C * x * x * x))),
    df: (x) => {
      const t = Math.tanh(GELU_K * (x + GELU_C * x * x * x));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_K * (1 + 3 * GELU_C * x * x);
    },
  },
} satisfies Record<string, UnaryRule>;

interface BinaryRule {
  f: (a: number, b: number) => number;
  da: (a: number, b: number, y: number) => number;
  db: (a: number, b: number, y: number) => number;
}
const tie = (win: boolean, lose: boolean): number => (win ? 1 : lose ? 0 : 0.5);
/** C's (and PyTorch's) pow: JavaScript's differs on pow(1, NaN) and pow(±1, ±Infinity), where C gives 1. */
export function powC(a: number, b: number): number {
  if (b === 0 || a === 1) return 1;
  if (a === -1 && (b === Infinity || b === -Infinity)) return 1;
  return Math.pow(a, b);
}
const BINARY = {
  add: { f: (a, b) => a + b, da: () => 1, db: () => 1 },
  sub: { f: (a, b) => a - b, da: () => 1, db: () => -1 },
  mul: { f: (a, b) => a * b, da: (_a, b) => b, db: (a) => a },
  div: { f: (a, b) => a / b, da: (_a, b) => 1 / b, db: (a, b) => -a / (b * b) },
  pow: { f: powC, da: (a, b) => b * Math.pow(a, b - 1), db: (a, _b, y) => y * Math.log(a) },
  maximum: { f: Math.max, da: (a, b) => tie(a > b, a < b), db: (a, b) => tie(b > a, b < a) },
  minimum: { f: Math.min, da: (a, b) => tie(a < b, a > b), db: (a, b) => tie(b < a, b > a) },
} satisfies Record<string, BinaryRule>;

const COMPARE = {
  eq: (a: number, b: number) => a === b,
  ne: (a: number, b: number) => a !== b,
  lt: (a: number, b: number) => a < b,
  le: (a: number, b: number) => a <= b,
  gt: (a: number, b: number) => a > b,
  ge: (a: number, b: number) => a >= b,
};

// ---------------------------------------------------------------------------------------------
// The tensor
// ---------------------------------------------------------------------------------------------

export class Ref {
  shape: number[];
  data: Float64Array;
  dtype: DType;
  requiresGrad: boolean;
  grad: Float64Array | null = null;
  /** Inputs of the op that produced this tensor (empty for leaves / constants). */
  private parents: Ref[] = [];
  private rule: BackwardRule | null = null;

  constructor(data: ArrayLike<number>, shape: number[], opts: RefOpts = {}) {
    if (!shape.every((s) => Number.isInteger(s) && s >= 0)) fail('Ref', `invalid shape ${fmt(shape)}`);
    if (data.length !== prod(shape)) fail('Ref', `data length ${data.length} does not match shape ${fmt(shape)}`);
    this.shape = [...shape];
    this.data = Float64Array.from(data);
    this.dtype = opts.dtype ?? 'f32';
    this.requiresGrad = opts.requiresGrad ?? false;
    if (this.dtype === 'i32') {
      if (this.requiresGrad) fail('Ref', 'i32 tensors cannot require grad');
      if (!this.data.every(Number.isInteger)) fail('Ref', 'i32 tensor with non-integer values');
    }
  }

  get numel(): number {
    return this.data.length;
  }
  get ndim(): number {
    return this.shape.length;
  }

  // ----- creation ----------------------------------------------------------------------------

  static fromNested(nested: NestedArray, opts: RefOpts = {}): Ref {
    const shape: number[] = [];
    for (let v: NestedArray = nested; Array.isArray(v); v = v[0] ?? 0) {
      shape.push(v.length);
      if (v.length === 0) break;
    }
    const flat: number[] = [];
    const walk = (v: NestedArray, d: number): void => {
      if (Array.isArray(v)) {
        if (d >= shape.length || v.length !== shape[d]) fail('fromNested', 'ragged nested array');
        v.forEach((c) => walk(c, d + 1));
      } else {
        if (d !== shape.length) fail('fromNested', 'ragged nested array');
        flat.push(v);
      }
    };
    walk(nested, 0);
    return new Ref(flat, shape, opts);
  }
  static scalar(v: number, opts: RefOpts = {}): Ref {
    return new Ref([v], [], opts);
  }
  static full(shape: number[], v: number, opts: RefOpts = {}): Ref {
    return new Ref(new Float64Array(prod(shape)).fill(v), shape, opts);
  }
  static zeros(shape: number[], opts: RefOpts = {}): Ref {
    return Ref.full(shape, 0, opts);
  }
  static ones(shape: number[], opts: RefOpts = {}): Ref {
    return Ref.full(shape, 1, opts);
  }
  static randn(shape: number[], rng: Rng, opts: RefOpts & { mean?: number; std?: number } = {}): Ref {
    const { mean = 0, std = 1 } = opts;
    return new Ref(Float64Array.from({ length: prod(shape) }, () => mean + std * rng.normal()), shape, opts);
  }
  /** Uniform in [low, high) (default [0, 1)). */
  static rand(shape: number[], rng: Rng, opts: RefOpts & { low?: number; high?: number } = {}): Ref {
    const { low = 0, high = 1 } = opts;
    return new Ref(Float64Array.from({ length: prod(shape) }, () => rng.uniform(low, high)), shape, opts);
  }
  /** Integers in [low, high), dtype 'i32'. */
  static randint(shape: number[], low: number, high: number, rng: Rng): Ref {
    return new Ref(Float64Array.from({ length: prod(shape) }, () => rng.int(low, high)), shape, { dtype: 'i32' });
  }
  static arange(n: number, opts: RefOpts = {}): Ref {
    return new Ref(Float64Array.from({ length: n }, (_, i) => i), [n], opts);
  }

  // ----- plumbing ----------------------------------------------------------------------------

  /** Builds an op's output; records the backward rule only if some parent requires grad. */
  static result(data: Float64Array, shape: number[], parents: Ref[], rule: BackwardRule, dtype: DType = 'f32'): Ref {
    const out = new Ref(data, shape, { dtype });
    if (dtype === 'f32' && parents.some((p) => p.requiresGrad)) {
      out.requiresGrad = true;
      out.parents = parents;
      out.rule = rule;
    }
    return out;
  }

  static lift(v: Scalarish): Ref {
    return v instanceof Ref ? v : Ref.scalar(v);
  }

  toArray(): number[] {
    return Array.from(this.data);
  }
  item(): number {
    if (this.numel !== 1) fail('item', `tensor of shape ${fmt(this.shape)} has ${this.numel} elements`);
    return this.data[0];
  }
  detach(): Ref {
    return new Ref(this.data, this.shape, { dtype: this.dtype });
  }
  zeroGrad(): void {
    this.grad = null;
  }

  backward(grad?: Float64Array | Ref): void {
    if (!this.requiresGrad) fail('backward', 'tensor does not require grad');
    let seed: Float64Array;
    if (grad === undefined) {
      if (this.numel !== 1) fail('backward', `grad must be given for non-scalar output of shape ${fmt(this.shape)}`);
      seed = new Float64Array([1]);
    } else {
      seed = Float64Array.from(grad instanceof Ref ? grad.data : grad);
      if (seed.length !== this.numel) fail('backward', `grad has ${seed.length} elements, output shape ${fmt(this.shape)}`);
    }
    // Iterative post-order DFS → topological order (parents before children).
    const topo: Ref[] = [];
    const seen = new Set<Ref>([this]);
    const stack: [Ref, number][] = [[this, 0]];
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const [node, i] = top;
      if (i < node.parents.length) {
        top[1]++;
        const p = node.parents[i];
        if (p.requiresGrad && !seen.has(p)) {
          seen.add(p);
          stack.push([p, 0]);
        }
      } else {
        stack.pop();
        topo.push(node);
      }
    }
    const grads = new Map<Ref, Float64Array>([[this, seed]]);
    for (let k = topo.length - 1; k >= 0; k--) {
      const node = topo[k];
      const g = grads.get(node);
      if (g === undefined) continue;
      grads.delete(node);
      if (node.rule === null) {
        node.grad ??= new Float64Array(node.numel);
        for (let i = 0; i < g.length; i++) node.grad[i] += g[i];
        continue;
      }
      const pgs = node.rule(g);
      node.parents.forEach((p, j) => {
        const pg = pgs[j];
        if (!p.requiresGrad || pg === null) return;
        const acc = grads.get(p);
        if (acc === undefined) grads.set(p, pg);
        else for (let i = 0; i < acc.length; i++) acc[i] += pg[i];
      });
    }
  }

  // ----- elementwise -------------------------------------------------------------------------

  private unary(rule: UnaryRule): Ref {
    const x = this.data;
    const y = x.map(rule.f);
    return Ref.result(y, this.shape, [this], (g) => [g.map((gi, i) => gi * rule.df(x[i], y[i]))]);
  }
  neg(): Ref { return this.unary(UNARY.neg); }
  exp(): Ref { return this.unary(UNARY.exp); }
  log(): Ref { return this.unary(UNARY.log); }
  sqrt(): Ref { return this.unary(UNARY.sqrt); }
  rsqrt(): Ref { return this.unary(UNARY.rsqrt); }
  tanh(): Ref { return this.unary(UNARY.tanh); }
  sigmoid(): Ref { return this.unary(UNARY.sigmoid); }
  relu(): Ref { return this.unary(UNARY.relu); }
  abs(): Ref { return this.unary(UNARY.abs); }
  silu(): Ref { return this.unary(UNARY.silu); }
  log1p(): Ref { return this.unary(UNARY.log1p); }
  expm1(): Ref { return this.unary(UNARY.expm1); }
  logsigmoid(): Ref { return this.unary(UNARY.logsigmoid); }
  erf(): Ref { return this.unary(UNARY.erf); }
  sin(): Ref { return this.unary(UNARY.sin); }
  cos(): Ref { return this.unary(UNARY.cos); }
  sign(): Ref { return this.unary(UNARY.sign); }
  floor(): Ref { return this.unary(UNARY.floor); }
  round(): Ref { return this.unary(UNARY.round); }
  /** log(1 + exp(beta x)) / beta, x where beta x > threshold (PyTorch's F.softplus). */
  softplus(beta = 1, threshold = 20): Ref {
    return this.unary({
      f: (x) => (beta * x > threshold ? x : softplusOf(beta * x) / beta),
      df: (x) => (beta * x > threshold ? 1 : sigmoid(beta * x)),
    });
  }
  /** start + weight · (end − start). */
  lerp(end: Scalarish, weight: Scalarish): Ref {
    return this.add(Ref.lift(weight).mul(Ref.lift(end).sub(this)));
  }
  gelu(approximate: 'none' | 'tanh' = 'none'): Ref {
    return this.unary(approximate === 'tanh' ? UNARY.geluTanh : UNARY.gelu);
  }

  private binary(name: keyof typeof BINARY, other: Scalarish): Ref {
    const rule: BinaryRule = BINARY[name];
    const b = Ref.lift(other);
    const shape = broadcastShapes(name, this.shape, b.shape);
    const ia = broadcastMap(this.shape, shape);
    const ib = broadcastMap(b.shape, shape);
    const A = this.data;
    const B = b.data;
    const y = new Float64Array(prod(shape));
    for (let i = 0; i < y.length; i++) y[i] = rule.f(A[ia[i]], B[ib[i]]);
    return Ref.result(y, shape, [this, b], (g) => {
      const ga = new Float64Array(this.numel);
      const gb = new Float64Array(b.numel);
      for (let i = 0; i < g.length; i++) {
        const a = A[ia[i]];
        const bv = B[ib[i]];
        if (this.requiresGrad) ga[ia[i]] += g[i] * rule.da(a, bv, y[i]);
        if (b.requiresGrad) gb[ib[i]] += g[i] * rule.db(a, bv, y[i]);
      }
      return [ga, gb];
    });
  }
  add(other: Scalarish): Ref { return this.binary('add', other); }
  sub(other: Scalarish): Ref { return this.binary('sub', other); }
  mul(other: Scalarish): Ref { return this.binary('mul', other); }
  div(other: Scalarish): Ref { return this.binary('div', other); }
  pow(other: Scalarish): Ref { return this.binary('pow', other); }
  maximum(other: Scalarish): Ref { return this.binary('maximum', other); }
  minimum(other: Scalarish): Ref { return this.binary('minimum', other); }

  private compare(name: keyof typeof COMPARE, other: Scalarish): Ref {
    const b = Ref.lift(other);
    const shape = broadcastShapes(name, this.shape, b.shape);
    const ia = broadcastMap(this.shape, shape);
    const ib = broadcastMap(b.shape, shape);
    const y = new Float64Array(prod(shape));
    for (let i = 0; i < y.length; i++) y[i] = COMPARE[name](this.data[ia[i]], b.data[ib[i]]) ? 1 : 0;
    return new Ref(y, shape);
  }
  eq(other: Scalarish): Ref { return this.compare('eq', other); }
  ne(other: Scalarish): Ref { return this.compare('ne', other); }
  lt(other: Scalarish): Ref { return this.compare('lt', other); }
  le(other: Scalarish): Ref { return this.compare('le', other); }
  gt(other: Scalarish): Ref { return this.compare('gt', other); }
  ge(other: Scalarish): Ref { return this.compare('ge', other); }

  clamp(min?: number, max?: number): Ref {
    const lo = min ?? -Infinity;
    const hi = max ?? Infinity;
    const x = this.data;
    const y = x.map((v) => Math.min(Math.max(v, lo), hi));
    return Ref.result(y, this.shape, [this], (g) => [g.map((gi, i) => (x[i] >= lo && x[i] <= hi ? gi : 0))]);
  }

  maskedFill(mask: Ref, value: number): Ref {
    const shape = broadcastShapes('maskedFill', this.shape, mask.shape);
    if (fmt(shape) !== fmt(this.shape)) fail('maskedFill', `mask ${fmt(mask.shape)} does not broadcast to ${fmt(this.shape)}`);
    const im = broadcastMap(mask.shape, shape);
    const filled = (i: number): boolean => mask.data[im[i]] !== 0;
    const y = this.data.map((v, i) => (filled(i) ? value : v));
    return Ref.result(y, this.shape, [this], (g) => [g.map((gi, i) => (filled(i) ? 0 : gi))]);
  }

  dropoutWithMask(keep: Ref, p: number): Ref {
    if (fmt(keep.shape) !== fmt(this.shape)) fail('dropoutWithMask', `mask ${fmt(keep.shape)} vs input ${fmt(this.shape)}`);
    if (!(p >= 0 && p <= 1)) fail('dropoutWithMask', `p = ${p} not in [0, 1]`);
    return this.mul(keep.detach()).mul(p === 1 ? 0 : 1 / (1 - p));
  }

  // ----- reductions --------------------------------------------------------------------------

  sum(axis?: number | number[], keepdim = false): Ref {
    const { outShape, group, groups } = reducePlan(this.shape, axis, keepdim, 'sum');
    const y = new Float64Array(groups);
    this.data.forEach((v, i) => (y[group[i]] += v));
    return Ref.result(y, outShape, [this], (g) => [this.data.map((_, i) => g[group[i]])]);
  }

  mean(axis?: number | number[], keepdim = false): Ref {
    const { n } = reducePlan(this.shape, axis, keepdim, 'mean');
    return this.sum(axis, keepdim).div(n);
  }

  max(axis?: number | number[], keepdim = false): Ref {
    return this.extreme(axis, keepdim, 1, 'max');
  }
  min(axis?: number | number[], keepdim = false): Ref {
    return this.extreme(axis, keepdim, -1, 'min');
  }
  /** sign = +1 for max, −1 for min; the gradient is split evenly among tied extremes. */
  private extreme(axis: number | number[] | undefined, keepdim: boolean, sign: number, op: string): Ref {
    const { outShape, group, groups } = reducePlan(this.shape, axis, keepdim, op);
    const x = this.data;
    const y = new Float64Array(groups).fill(-sign * Infinity);
    x.forEach((v, i) => {
      if (sign * v > sign * y[group[i]] || Number.isNaN(v)) y[group[i]] = v;
    });
    const ties = new Float64Array(groups);
    x.forEach((v, i) => (ties[group[i]] += v === y[group[i]] ? 1 : 0));
    return Ref.result(y, outShape, [this], (g) => [
      x.map((v, i) => (v === y[group[i]] ? g[group[i]] / ties[group[i]] : 0)),
    ]);
  }

  /** Variance with Bessel-style correction: Σ(x − mean)² / (n − correction). */
  var(axis?: number | number[], keepdim = false, correction = 1): Ref {
    const { outShape, group, groups, n } = reducePlan(this.shape, axis, keepdim, 'var');
    const x = this.data;
    const m = new Float64Array(groups);
    x.forEach((v, i) => (m[group[i]] += v / n));
    const y = new Float64Array(groups);
    x.forEach((v, i) => (y[group[i]] += (v - m[group[i]]) ** 2 / (n - correction)));
    return Ref.result(y, outShape, [this], (g) => [
      x.map((v, i) => (g[group[i]] * 2 * (v - m[group[i]])) / (n - correction)),
    ]);
  }

  std(axis?: number | number[], keepdim = false, correction = 1): Ref {
    return this.var(axis, keepdim, correction).sqrt();
  }

  /** Product over axes; each element's gradient is g times the product of the other elements of its group (zeros allowed). */
  prod(axis?: number | number[], keepdim = false): Ref {
    const { outShape, group, groups } = reducePlan(this.shape, axis, keepdim, 'prod');
    const x = this.data;
    const y = new Float64Array(groups).fill(1);
    x.forEach((v, i) => (y[group[i]] *= v));
    return Ref.result(y, outShape, [this], (g) => [
      x.map((_, i) => {
        let others = 1;
        x.forEach((v, k) => {
          if (k !== i && group[k] === group[i]) others *= v;
        });
        return g[group[i]] * others;
      }),
    ]);
  }

  /** p-norm over axes as compositions (p = 2: sqrt of the sum of squares; ±Infinity: max/min |x|; 0: nonzero count). */
  norm(p = 2, axis?: number | number[], keepdim = false): Ref {
    if (p === 2) return this.mul(this).sum(axis, keepdim).sqrt();
    if (p === Infinity) return this.abs().max(axis, keepdim);
    if (p === -Infinity) return this.abs().min(axis, keepdim);
    if (p === 1) return this.abs().sum(axis, keepdim);
    if (p === 0) return this.ne(0).sum(axis, keepdim);
    return this.abs().pow(p).sum(axis, keepdim).pow(1 / p);
  }

  /** Cumulative sum along `axis`; the gradient is the reverse cumulative sum. */
  cumsum(axis: number): Ref {
    const ax = normAxis(axis, this.ndim, 'cumsum');
    const st = stridesOf(this.shape);
    const n = this.shape[ax];
    const scan = (v: Float64Array, reverse: boolean): Float64Array => {
      const out = new Float64Array(v.length);
      forEachIndex(this.shape, (flat, idx) => {
        if (idx[ax] !== 0) return;
        let acc = 0;
        for (let j = 0; j < n; j++) {
          const at = flat + (reverse ? n - 1 - j : j) * st[ax];
          acc += v[at];
          out[at] = acc;
        }
      });
      return out;
    };
    return Ref.result(scan(this.data, false), this.shape, [this], (g) => [scan(g, true)], this.dtype);
  }

  /** Elements reversed along each of `axes`. */
  flip(axes: number | number[]): Ref {
    const ax = (Array.isArray(axes) ? axes : [axes]).map((a) => normAxis(a, this.ndim, 'flip'));
    const st = stridesOf(this.shape);
    const map = new Int32Array(this.numel);
    forEachIndex(this.shape, (flat, idx) => {
      let o = 0;
      for (let d = 0; d < idx.length; d++) o += (ax.includes(d) ? this.shape[d] - 1 - idx[d] : idx[d]) * st[d];
      map[flat] = o;
    });
    return this.take([...this.shape], map);
  }

  /** Tiled sizes[d] times along each dim (PyTorch's Tensor.repeat; extra leading sizes add dims). */
  repeat(sizes: number[]): Ref {
    const k = sizes.length - this.ndim;
    if (k < 0) fail('repeat', `sizes ${fmt(sizes)} shorter than the rank of ${fmt(this.shape)}`);
    const dims = [...new Array<number>(k).fill(1), ...this.shape];
    const shape = dims.map((d, i) => d * sizes[i]);
    const st = stridesOf(dims);
    const map = new Int32Array(prod(shape));
    forEachIndex(shape, (flat, idx) => {
      let o = 0;
      for (let d = 0; d < idx.length; d++) o += (idx[d] % dims[d]) * st[d];
      map[flat] = o;
    });
    return this.take(shape, map);
  }

  /** Lower (upper) triangle of the last two dims: keeps j − i <= diagonal (>= for triu). */
  tril(diagonal = 0): Ref {
    return this.triangle(diagonal, false);
  }
  triu(diagonal = 0): Ref {
    return this.triangle(diagonal, true);
  }
  private triangle(diagonal: number, upper: boolean): Ref {
    const [R, C] = this.shape.slice(-2);
    const mask = Float64Array.from({ length: this.numel }, (_, i) => {
      const d = (i % C) - (Math.floor(i / C) % R);
      return (upper ? d >= diagonal : d <= diagonal) ? 1 : 0;
    });
    // a select, not a product: NaN and inf outside the triangle become 0 (PyTorch)
    return Ref.result(this.data.map((v, i) => (mask[i] ? v : 0)), this.shape, [this], (g) => [g.map((v, i) => v * mask[i])], this.dtype);
  }

  /** The k largest (smallest) along `axis`, best first, ties to the lower index: values (gather) and i32 indices. */
  topk(k: number, axis = -1, largest = true): { values: Ref; indices: Ref } {
    const ax = normAxis(axis, this.ndim, 'topk');
    const n = this.shape[ax];
    if (k < 0 || k > n) fail('topk', `k = ${k} out of range for size ${n}`);
    const st = stridesOf(this.shape);
    const shape = this.shape.map((d, i) => (i === ax ? k : d));
    const ist = stridesOf(shape);
    const idx = new Float64Array(prod(shape));
    forEachIndex(this.shape, (flat, at) => {
      if (at[ax] !== 0) return;
      const order = Array.from({ length: n }, (_, j) => j).sort((p, q) => {
        const a = this.data[flat + p * st[ax]];
        const b = this.data[flat + q * st[ax]];
        // a total order with NaN above every number (first when largest, last when smallest), ties by index
        const above = (u: number, v: number): number => {
          const nu = Number.isNaN(u);
          const nv = Number.isNaN(v);
          if (nu || nv) return nu === nv ? 0 : nu ? 1 : -1;
          return u === v ? 0 : u > v ? 1 : -1;
        };
        return (largest ? above(b, a) : above(a, b)) || p - q;
      });
      let base = 0;
      for (let d = 0; d < at.length; d++) base += at[d] * ist[d];
      for (let i = 0; i < k; i++) idx[base + i * ist[ax]] = order[i];
    });
    const indices = new Ref(idx, shape, { dtype: 'i32' });
    return { values: this.gather(ax, indices), indices };
  }

  /** torch.max(x, dim): the maximum along `axis` and its first index; the gradient goes to that index. */
  maxWithIndices(axis: number, keepdim = false): { values: Ref; indices: Ref } {
    const indices = this.argmax(axis, true);
    const values = this.gather(axis, indices);
    return keepdim ? { values, indices } : { values: values.squeeze(axis), indices: indices.squeeze(axis) };
  }
  minWithIndices(axis: number, keepdim = false): { values: Ref; indices: Ref } {
    const indices = this.argmin(axis, true);
    const values = this.gather(axis, indices);
    return keepdim ? { values, indices } : { values: values.squeeze(axis), indices: indices.squeeze(axis) };
  }

  /** Index of the first minimum along `axis` (over the flattened tensor if undefined); dtype 'i32'. */
  argmin(axis?: number, keepdim = false): Ref {
    return this.neg().argmax(axis, keepdim);
  }

  /** Index of the first maximum along `axis` (over the flattened tensor if undefined); dtype 'i32'. */
  argmax(axis?: number, keepdim = false): Ref {
    if (axis === undefined) {
      const flat = this.reshape([-1]).argmax(0);
      return keepdim ? flat.reshape(this.shape.map(() => 1)) : flat;
    }
    const ax = normAxis(axis, this.ndim, 'argmax');
    const { outShape, group, groups } = reducePlan(this.shape, ax, keepdim, 'argmax');
    const best = new Float64Array(groups).fill(-Infinity);
    const arg = new Float64Array(groups).fill(-1);
    const pos = stridedMap(this.shape, this.shape.map((_, d) => (d === ax ? 1 : 0)));
    this.data.forEach((v, i) => {
      const j = group[i];
      if (arg[j] < 0 || v > best[j] || (Number.isNaN(v) && !Number.isNaN(best[j]))) {
        best[j] = v;
        arg[j] = pos[i];
      }
    });
    return new Ref(arg, outShape, { dtype: 'i32' });
  }

  logsumexp(axis: number | number[], keepdim = false): Ref {
    const { outShape, group, groups } = reducePlan(this.shape, axis, keepdim, 'logsumexp');
    const x = this.data;
    const lse = groupLogSumExp(x, group, groups);
    return Ref.result(lse, outShape, [this], (g) => [x.map((v, i) => g[group[i]] * Math.exp(v - lse[group[i]]))]);
  }

  softmax(axis = -1): Ref {
    const { group, groups } = reducePlan(this.shape, normAxis(axis, this.ndim, 'softmax'), true, 'softmax');
    const lse = groupLogSumExp(this.data, group, groups);
    // a row holding a NaN or +inf is NaN throughout (PyTorch: exp(x - max) / sum with max = inf or NaN)
    // (a row that is all -inf gives 0, the engine's choice for fully masked attention rows; PyTorch: NaN)
    const y = this.data.map((v, i) => (nonFiniteRow(lse[group[i]]) ? NaN : lse[group[i]] === -Infinity ? 0 : Math.exp(v - lse[group[i]])));
    return Ref.result(y, this.shape, [this], (g) => {
      const dot = new Float64Array(groups);
      g.forEach((gi, i) => (dot[group[i]] += gi * y[i]));
      return [y.map((yi, i) => yi * (g[i] - dot[group[i]]))];
    });
  }

  logSoftmax(axis = -1): Ref {
    const { group, groups } = reducePlan(this.shape, normAxis(axis, this.ndim, 'logSoftmax'), true, 'logSoftmax');
    const lse = groupLogSumExp(this.data, group, groups);
    const y = this.data.map((v, i) => (nonFiniteRow(lse[group[i]]) ? NaN : v - lse[group[i]]));
    return Ref.result(y, this.shape, [this], (g) => {
      const gsum = new Float64Array(groups);
      g.forEach((gi, i) => (gsum[group[i]] += gi));
      return [y.map((yi, i) => g[i] - Math.exp(yi) * gsum[group[i]])];
    });
  }

  // ----- matmul ------------------------------------------------------------------------------

  matmul(other: Ref): Ref {
    const op = 'matmul';
    if (this.ndim === 0 || other.ndim === 0) fail(op, `scalar operand: ${fmt(this.shape)} @ ${fmt(other.shape)}`);
    const a = this.ndim === 1 ? this.unsqueeze(0) : this;
    const b = other.ndim === 1 ? other.unsqueeze(1) : other;
    const [M, K] = a.shape.slice(-2);
    const [K2, N] = b.shape.slice(-2);
    if (K !== K2) fail(op, `inner dimensions differ: ${fmt(this.shape)} @ ${fmt(other.shape)}`);
    const batch = broadcastShapes(op, a.shape.slice(0, -2), b.shape.slice(0, -2));
    const mapA = broadcastMap(a.shape.slice(0, -2), batch);
    const mapB = broadcastMap(b.shape.slice(0, -2), batch);
    const A = a.data;
    const B = b.data;
    const y = new Float64Array(prod(batch) * M * N);
    for (let bi = 0; bi < mapA.length; bi++) {
      const oa = mapA[bi] * M * K, ob = mapB[bi] * K * N, oy = bi * M * N;
      for (let m = 0; m < M; m++)
        for (let k = 0; k < K; k++) {
          const av = A[oa + m * K + k];
          for (let n = 0; n < N; n++) y[oy + m * N + n] += av * B[ob + k * N + n];
        }
    }
    let out = Ref.result(y, [...batch, M, N], [a, b], (g) => {
      const ga = new Float64Array(A.length);
      const gb = new Float64Array(B.length);
      for (let bi = 0; bi < mapA.length; bi++) {
        const oa = mapA[bi] * M * K, ob = mapB[bi] * K * N, og = bi * M * N;
        for (let m = 0; m < M; m++)
          for (let k = 0; k < K; k++) {
            const av = A[oa + m * K + k];
            let s = 0;
            for (let n = 0; n < N; n++) {
              s += g[og + m * N + n] * B[ob + k * N + n]; // dA = G·Bᵀ
              gb[ob + k * N + n] += av * g[og + m * N + n]; // dB = Aᵀ·G
            }
            ga[oa + m * K + k] += s;
          }
      }
      return [ga, gb];
    });
    if (this.ndim === 1) out = out.squeeze(-2);
    if (other.ndim === 1) out = out.squeeze(-1);
    return out;
  }

  // ----- views / shape -----------------------------------------------------------------------

  /** Primitive gather: out[i] = x[map[i]]; gradient scatter-adds gx[map[i]] += g[i]. */
  take(outShape: number[], map: Int32Array): Ref {
    const y = new Float64Array(map.length);
    for (let i = 0; i < map.length; i++) y[i] = this.data[map[i]];
    return Ref.result(y, outShape, [this], (g) => {
      const gx = new Float64Array(this.numel);
      for (let i = 0; i < map.length; i++) gx[map[i]] += g[i];
      return [gx];
    }, this.dtype);
  }

  reshape(shape: number[]): Ref {
    const known = prod(shape.filter((s) => s !== -1));
    const holes = shape.filter((s) => s === -1).length;
    const out = shape.map((s) => (s === -1 ? this.numel / known : s));
    if (holes > 1 || !out.every((s) => Number.isInteger(s) && s >= 0) || prod(out) !== this.numel)
      fail('reshape', `cannot reshape ${fmt(this.shape)} to ${fmt(shape)}`);
    return Ref.result(this.data.slice(), out, [this], (g) => [g], this.dtype);
  }
  view(shape: number[]): Ref {
    return this.reshape(shape);
  }
  flatten(startDim = 0, endDim = -1): Ref {
    if (this.ndim === 0) return this.reshape([1]);
    const s = normAxis(startDim, this.ndim, 'flatten');
    const e = normAxis(endDim, this.ndim, 'flatten');
    if (s > e) fail('flatten', `startDim ${startDim} after endDim ${endDim} for ${fmt(this.shape)}`);
    return this.reshape([...this.shape.slice(0, s), prod(this.shape.slice(s, e + 1)), ...this.shape.slice(e + 1)]);
  }
  contiguous(): Ref {
    return Ref.result(this.data.slice(), this.shape, [this], (g) => [g], this.dtype);
  }
  unsqueeze(axis: number): Ref {
    const ax = normAxis(axis, this.ndim + 1, 'unsqueeze');
    return this.reshape([...this.shape.slice(0, ax), 1, ...this.shape.slice(ax)]);
  }
  /** Removes size-1 dims (all of them, or only `axis`; a no-op if that dim is not 1, like PyTorch). */
  squeeze(axis?: number): Ref {
    if (axis === undefined) return this.reshape(this.shape.filter((s) => s !== 1));
    const ax = normAxis(axis, this.ndim, 'squeeze');
    return this.shape[ax] === 1 ? this.reshape(this.shape.filter((_, d) => d !== ax)) : this.reshape(this.shape);
  }

  permute(dims: number[]): Ref {
    const d = dims.map((a) => normAxis(a, this.ndim, 'permute'));
    if (d.length !== this.ndim || new Set(d).size !== d.length)
      fail('permute', `invalid dims ${fmt(dims)} for shape ${fmt(this.shape)}`);
    const st = stridesOf(this.shape);
    const shape = d.map((a) => this.shape[a]);
    return this.take(shape, stridedMap(shape, d.map((a) => st[a])));
  }
  transpose(a: number, b: number): Ref {
    const dims = [...this.shape.keys()];
    const i = normAxis(a, this.ndim, 'transpose');
    const j = normAxis(b, this.ndim, 'transpose');
    [dims[i], dims[j]] = [dims[j], dims[i]];
    return this.permute(dims);
  }
  get T(): Ref {
    return this.permute([...this.shape.keys()].reverse());
  }

  /** x[..., start:end, ...] along `axis`, with Python slice clamping (end exclusive). */
  slice(axis: number, start: number, end: number): Ref {
    const ax = normAxis(axis, this.ndim, 'slice');
    const n = this.shape[ax];
    const clampIdx = (v: number): number => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
    const s = clampIdx(start);
    const e = Math.max(clampIdx(end), s);
    const st = stridesOf(this.shape);
    const shape = this.shape.map((v, d) => (d === ax ? e - s : v));
    return this.take(shape, stridedMap(shape, st, s * st[ax]));
  }

  expand(shape: number[]): Ref {
    const k = shape.length - this.ndim;
    if (k < 0) fail('expand', `cannot expand ${fmt(this.shape)} to fewer dims ${fmt(shape)}`);
    const out = shape.map((s, d) => {
      if (d < k) {
        if (s < 0) fail('expand', `-1 not allowed for new leading dim in ${fmt(shape)}`);
        return s;
      }
      const cur = this.shape[d - k];
      const want = s === -1 ? cur : s;
      if (want !== cur && cur !== 1) fail('expand', `cannot expand ${fmt(this.shape)} to ${fmt(shape)}`);
      return want;
    });
    return this.take(out, broadcastMap(this.shape, out));
  }
  broadcastTo(shape: number[]): Ref {
    return this.expand(shape);
  }

  // ----- indexing ----------------------------------------------------------------------------

  indexSelect(axis: number, index: Ref): Ref {
    const ax = normAxis(axis, this.ndim, 'indexSelect');
    if (index.ndim !== 1) fail('indexSelect', `index must be 1-D, got ${fmt(index.shape)}`);
    const st = stridesOf(this.shape);
    const shape = this.shape.map((v, d) => (d === ax ? index.numel : v));
    const map = new Int32Array(prod(shape));
    forEachIndex(shape, (flat, idx) => {
      let o = 0;
      for (let d = 0; d < idx.length; d++)
        o += (d === ax ? checkIndex(index.data[idx[d]], this.shape[ax], 'indexSelect') : idx[d]) * st[d];
      map[flat] = o;
    });
    return this.take(shape, map);
  }

  /** torch.gather: out[i][j][k] = x[i][index[i][j][k]][k] (for axis = 1). */
  gather(axis: number, index: Ref): Ref {
    const ax = normAxis(axis, this.ndim, 'gather');
    if (index.ndim !== this.ndim || index.shape.some((s, d) => d !== ax && s > this.shape[d]))
      fail('gather', `index ${fmt(index.shape)} incompatible with input ${fmt(this.shape)} on axis ${axis}`);
    const st = stridesOf(this.shape);
    const map = new Int32Array(index.numel);
    forEachIndex(index.shape, (flat, idx) => {
      let o = 0;
      for (let d = 0; d < idx.length; d++)
        o += (d === ax ? checkIndex(index.data[flat], this.shape[ax], 'gather') : idx[d]) * st[d];
      map[flat] = o;
    });
    return this.take([...index.shape], map);
  }
}

/** A softmax row whose logsumexp is NaN or +inf held a NaN or a +inf: PyTorch's softmax is NaN there. */
const nonFiniteRow = (lse: number): boolean => Number.isNaN(lse) || lse === Infinity;

function groupLogSumExp(x: Float64Array, group: Int32Array, groups: number): Float64Array {
  const m = new Float64Array(groups).fill(-Infinity);
  x.forEach((v, i) => (m[group[i]] = Math.max(m[group[i]], v)));
  const shift = m.map((v) => (Number.isFinite(v) ? v : 0));
  const s = new Float64Array(groups);
  x.forEach((v, i) => (s[group[i]] += Math.exp(v - shift[group[i]])));
  return s.map((v, j) => shift[j] + Math.log(v));
}

// ---------------------------------------------------------------------------------------------
// Free functions
// ---------------------------------------------------------------------------------------------

/** cond ≠ 0 picks a, else b; all three broadcast. Gradients flow to a and b. */
export function where(cond: Ref, a: Scalarish, b: Scalarish): Ref {
  const A = Ref.lift(a);
  const B = Ref.lift(b);
  const shape = broadcastShapes('where', cond.shape, A.shape, B.shape);
  const ic = broadcastMap(cond.shape, shape);
  const ia = broadcastMap(A.shape, shape);
  const ib = broadcastMap(B.shape, shape);
  const pick = (i: number): boolean => cond.data[ic[i]] !== 0;
  const y = new Float64Array(prod(shape)).map((_, i) => (pick(i) ? A.data[ia[i]] : B.data[ib[i]]));
  return Ref.result(y, shape, [A, B], (g) => {
    const ga = new Float64Array(A.numel);
    const gb = new Float64Array(B.numel);
    g.forEach((gi, i) => (pick(i) ? (ga[ia[i]] += gi) : (gb[ib[i]] += gi)));
    return [ga, gb];
  });
}

export function concat(tensors: Ref[], axis = 0): Ref {
  if (tensors.length === 0) fail('concat', 'empty tensor list');
  const first = tensors[0];
  const ax = normAxis(axis, first.ndim, 'concat');
  const bad = tensors.some((t) => t.ndim !== first.ndim || t.shape.some((s, d) => d !== ax && s !== first.shape[d]));
  if (bad) fail('concat', `shapes ${tensors.map((t) => fmt(t.shape)).join(', ')} differ off axis ${axis}`);
  const shape = first.shape.map((s, d) => (d === ax ? tensors.reduce((acc, t) => acc + t.shape[ax], 0) : s));
  const st = stridesOf(shape);
  // maps[t][i] = flat position in the output of element i of tensor t
  let offset = 0;
  const maps = tensors.map((t) => {
    const m = stridedMap(t.shape, st, offset * st[ax]);
    offset += t.shape[ax];
    return m;
  });
  const y = new Float64Array(prod(shape));
  tensors.forEach((t, k) => t.data.forEach((v, i) => (y[maps[k][i]] = v)));
  const dtype: DType = tensors.every((t) => t.dtype === 'i32') ? 'i32' : 'f32';
  return Ref.result(y, shape, tensors, (g) => maps.map((m) => Float64Array.from(m, (j) => g[j])), dtype);
}

export function stack(tensors: Ref[], axis = 0): Ref {
  if (tensors.length === 0) fail('stack', 'empty tensor list');
  if (tensors.some((t) => fmt(t.shape) !== fmt(tensors[0].shape)))
    fail('stack', `shapes differ: ${tensors.map((t) => fmt(t.shape)).join(', ')}`);
  const ax = normAxis(axis, tensors[0].ndim + 1, 'stack');
  return concat(tensors.map((t) => t.unsqueeze(ax)), ax);
}

/** ids (integer, any shape), weight [V, D] → [...ids.shape, D] (PyTorch's order); gradient scatter-adds into weight. */
export function embedding(ids: Ref, weight: Ref): Ref {
  if (weight.ndim !== 2) fail('embedding', `weight must be 2-D, got ${fmt(weight.shape)}`);
  return weight.indexSelect(0, ids.reshape([-1])).reshape([...ids.shape, weight.shape[1]]);
}

/** Pieces along `axis`: of `size` elements each (the last shorter), or of the listed sizes. */
export function split(x: Ref, sizes: number | number[], axis = 0): Ref[] {
  const ax = normAxis(axis, x.ndim, 'split');
  const n = x.shape[ax];
  const lens: number[] = [];
  if (typeof sizes === 'number') for (let at = 0; at < n; at += sizes) lens.push(Math.min(sizes, n - at));
  else lens.push(...sizes);
  let at = 0;
  return lens.map((l) => x.slice(ax, at, (at += l)));
}

/** ids (i32, any shape) → [...shape, C] i32 with a 1 at each id. */
export function oneHot(ids: Ref, numClasses: number): Ref {
  const y = new Float64Array(ids.numel * numClasses);
  ids.data.forEach((v, i) => (y[i * numClasses + checkIndex(v, numClasses, 'oneHot')] = 1));
  return new Ref(y, [...ids.shape, numClasses], { dtype: 'i32' });
}

/**
 * x + src scattered along `axis` at index (torch.scatter_add): out[pos with pos[axis] := index[pos]] += src[pos]
 * for pos over index's shape. Gradients: g to x; g read back at the same places to src (0 outside index's block).
 */
export function scatterAdd(x: Ref, axis: number, index: Ref, src: Ref): Ref {
  const ax = normAxis(axis, x.ndim, 'scatterAdd');
  const sx = stridesOf(x.shape);
  const ss = stridesOf(src.shape);
  const dest = new Int32Array(index.numel);
  const from = new Int32Array(index.numel);
  forEachIndex(index.shape, (flat, idx) => {
    let o = 0;
    let f = 0;
    for (let d = 0; d < idx.length; d++) {
      o += (d === ax ? checkIndex(index.data[flat], x.shape[ax], 'scatterAdd') : idx[d]) * sx[d];
      f += idx[d] * ss[d];
    }
    dest[flat] = o;
    from[flat] = f;
  });
  const y = x.data.slice();
  dest.forEach((o, i) => (y[o] += src.data[from[i]]));
  return Ref.result(y, [...x.shape], [x, src], (g) => {
    const gs = new Float64Array(src.numel);
    dest.forEach((o, i) => (gs[from[i]] += g[o]));
    return [g.slice(), gs];
  });
}

/** Normalizes over the trailing `normalizedShape` dims (biased variance), then ·weight + bias. */
export function layerNorm(x: Ref, normalizedShape: number[], weight?: Ref, bias?: Ref, eps = 1e-5): Ref {
  const k = normalizedShape.length;
  if (k === 0 || k > x.ndim || fmt(x.shape.slice(x.ndim - k)) !== fmt(normalizedShape))
    fail('layerNorm', `normalizedShape ${fmt(normalizedShape)} does not match trailing dims of ${fmt(x.shape)}`);
  for (const p of [weight, bias])
    if (p && fmt(p.shape) !== fmt(normalizedShape))
      fail('layerNorm', `weight/bias shape ${fmt(p.shape)} must equal ${fmt(normalizedShape)}`);
  const axes = [...Array(k).keys()].map((i) => x.ndim - k + i);
  const xc = x.sub(x.mean(axes, true));
  let y = xc.mul(xc.mul(xc).mean(axes, true).add(eps).rsqrt());
  if (weight) y = y.mul(weight);
  if (bias) y = y.add(bias);
  return y;
}

export interface CrossEntropyOpts {
  ignoreIndex?: number;
  /** Per-class weights [C] (PyTorch's weight). Not differentiated. */
  weight?: Ref;
  /** Per-token (per-row) weights, same shape as targets. Not differentiated. */
  tokenWeight?: Ref;
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * l_i = logsumexp(logits_i) − logits_i[t_i], w_i = t_i == ignoreIndex ? 0 : weight[t_i] · tokenWeight_i (each 1 when absent).
 * 'none' → w·l (targets' shape), 'sum' → Σ w l, 'mean' → Σ w l / Σ w (0, with zero gradient, if Σ w = 0).
 * Logits [..., C] with targets [...]. Gradient only w.r.t. logits.
 */
export function crossEntropy(logits: Ref, targets: Ref, opts: CrossEntropyOpts = {}): Ref {
  const { ignoreIndex = -100, weight, tokenWeight, reduction = 'mean' } = opts;
  const C = logits.shape[logits.ndim - 1];
  if (logits.ndim < 1 || fmt(logits.shape.slice(0, -1)) !== fmt(targets.shape))
    fail('crossEntropy', `logits ${fmt(logits.shape)} vs targets ${fmt(targets.shape)}`);
  if (weight && fmt(weight.shape) !== fmt([C]))
    fail('crossEntropy', `class weight ${fmt(weight.shape)} vs ${C} classes`);
  if (tokenWeight && fmt(tokenWeight.shape) !== fmt(targets.shape))
    fail('crossEntropy', `tokenWeight ${fmt(tokenWeight.shape)} vs targets ${fmt(targets.shape)}`);
  const N = targets.numel;
  const ignored = (i: number): boolean => targets.data[i] === ignoreIndex;
  const t = Float64Array.from(targets.data, (v, i) => (ignored(i) ? 0 : checkIndex(v, C, 'crossEntropy')));
  const w = Float64Array.from(targets.data, (_, i) => (ignored(i) ? 0 : (weight ? weight.data[t[i]] : 1) * (tokenWeight ? tokenWeight.data[i] : 1)));
  const x = logits.reshape([N, C]);
  // −log_softmax[target] (NaN for a row holding NaN or +inf, as PyTorch); ignored rows contribute 0
  const picked = x.logSoftmax(-1).gather(1, new Ref(t, [N, 1], { dtype: 'i32' })).reshape([N]);
  const keep = new Ref(Float64Array.from(targets.data, (_, i) => (ignored(i) ? 0 : 1)), [N]);
  const losses = where(keep, picked.neg().mul(new Ref(w, [N])), 0);
  if (reduction === 'none') return losses.reshape([...targets.shape]);
  if (reduction === 'sum') return losses.sum();
  const total = w.reduce((a, b) => a + b, 0);
  return total === 0 ? losses.sum().mul(0) : losses.sum().div(total);
}
