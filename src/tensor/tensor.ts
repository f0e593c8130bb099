// The Tensor: a strided view (shape, strides, offset) of a reference-counted GPU storage, with an
// optional autograd node. Views (reshape, permute, slice, expand, ...) share the storage; every
// computation is recorded as GPU work and only toArray()/item() wait for the GPU.
import { Device, currentDevice } from '../gpu/device.js';
import { DType, BYTES_PER_ELEMENT } from '../gpu/dtype.js';
import { TrimpiError, check, fmtShape } from '../gpu/errors.js';
import { Storage } from '../gpu/memory.js';
import { Shape, contiguousStrides, isContiguous, numel } from '../gpu/shape.js';
import { Disposable, keep as keepTensor, track } from './memory.js';
import type { GradNode } from './autograd.js';
import { backward as runBackward } from './autograd.js';
import * as ops from './ops.js';
import { formatTensor } from '../gpu/format.js';

/** The host copy of a tensor's values: Float32Array for f32, Int32Array for i32. */
export type TensorData = Float32Array | Int32Array;
/** A number or (nested) arrays of numbers: tensor() input and toNested() output. */
export type NestedArray = number | NestedArray[];

let nextId = 1;

/**
 * An n-dimensional f32 or i32 array on the GPU: a strided view (shape, strides, offset) of a
 * reference-counted buffer, with an optional autograd node. Ops are functions of the package
 * (`t.add(a, b)`) and methods (`a.add(b)`); work is recorded and runs on the GPU, and only
 * toArray() / item() / toNested() wait for it. Create with tensor(), zeros(), randn(), ...; free
 * with dispose() or tidy().
 */
export class Tensor implements Disposable {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
  readonly device: Device;
  /** Whether gradients flow to this tensor. Set it on leaves (parameters); ops propagate it. */
  requiresGrad = false;
  /** Accumulated gradient of a leaf after backward(); owned by this tensor (disposed with it). */
  grad: Tensor | null = null;
  /** @internal autograd node that produced this tensor (null for leaves and under noGrad). */
  node: GradNode | null = null;
  /** Optional name, shown in errors and printing. */
  name?: string;
  private readonly storage: Storage;
  private disposed = false;

  /** @internal Use the creation functions (tensor, zeros, randn, ...) instead. */
  constructor(device: Device, storage: Storage, shape: Shape, dtype: DType, strides?: readonly number[], offset = 0) {
    this.device = device;
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.offset = offset;
    this.dtype = dtype;
    track(this);
  }

  /**
   * @internal A fresh uninitialised contiguous tensor; `op` names the caller in errors; `hostWrite`
   * when its data will be uploaded (device.write) rather than computed.
   */
  static empty(shape: Shape, dtype: DType = 'f32', device: Device = currentDevice('empty'), op = 'empty', hostWrite = false): Tensor {
    const n = numel(shape);
    check(shape.every((d) => Number.isInteger(d) && d >= 0), op, () => `invalid shape ${fmtShape(shape)}`);
    const bytes = Math.max(n, 1) * BYTES_PER_ELEMENT;
    const max = device.limits.maxStorageBufferBindingSize;
    check(bytes <= max, op, () => `a tensor of shape ${fmtShape(shape)} (${bytes} bytes) exceeds the device's maxStorageBufferBindingSize (${max} bytes)`);
    const storage = new Storage(device.alloc(bytes, op, hostWrite), bytes, device.pool);
    return new Tensor(device, storage, shape, dtype);
  }

  /** @internal A view sharing this tensor's storage. */
  view_(shape: Shape, strides: readonly number[], offset: number): Tensor {
    this.assertAlive('view');
    return new Tensor(this.device, this.storage.retain(), shape, this.dtype, strides, offset);
  }

  get buffer(): GPUBuffer {
    this.assertAlive('buffer');
    return this.storage.buffer;
  }
  get numel(): number {
    return numel(this.shape);
  }
  get ndim(): number {
    return this.shape.length;
  }
  get isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }
  get isDisposed(): boolean {
    return this.disposed;
  }
  /** True if no other live tensor views this tensor's memory. */
  get ownsStorage(): boolean {
    return this.storage.refCount === 1;
  }
  /**
   * The in-place write counter of this tensor's memory (shared by its views), as PyTorch's
   * `_version`: every assign(), addInPlace and optimizer step into it adds one. Backward checks that
   * the tensors a gradient needs were not written since the forward.
   */
  get version(): number {
    return this.storage.version;
  }
  /** @internal Records an in-place write into this tensor's memory (kernels that write in place call it). */
  bumpVersion(): void {
    this.storage.version++;
  }
  /** True if this tensor and `other` share GPU memory. */
  sharesStorage(other: Tensor): boolean {
    return this.storage === other.storage;
  }

  /** Throws a TrimpiError naming `op` if this tensor was disposed. */
  assertAlive(op: string): void {
    if (this.disposed || !this.storage.alive) {
      throw new TrimpiError(op, `tensor ${this.describe()} was used after dispose()`);
    }
  }

  describe(): string {
    return `${this.name ? this.name + ' ' : ''}(${fmtShape(this.shape)}, ${this.dtype})`;
  }

  /** Frees the GPU memory (once the last view of it is disposed) and this tensor's gradient. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.node = null;
    this.storage.release();
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  /** Keeps this tensor alive past enclosing tidy() scopes. */
  keep(): this {
    return keepTensor(this);
  }

  // ---- readback ---------------------------------------------------------------------------------

  /** Copies the data to the CPU (row-major), waiting for the GPU. */
  async toArray(): Promise<TensorData> {
    this.assertAlive('toArray');
    const src = this.isContiguous ? this : ops.contiguous(this);
    try {
      const bytes = await this.device.read('toArray', src.buffer, src.offset * BYTES_PER_ELEMENT, this.numel * BYTES_PER_ELEMENT);
      return this.dtype === 'i32' ? new Int32Array(bytes) : new Float32Array(bytes);
    } finally {
      if (src !== this) src.dispose();
    }
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    check(this.numel === 1, 'item', () => `expected a tensor with one element, got shape ${fmtShape(this.shape)}`);
    return (await this.toArray())[0];
  }

  /** Nested JS arrays (numbers for a scalar). */
  async toNested(): Promise<NestedArray> {
    const data = await this.toArray();
    const build = (dim: number, off: number): NestedArray => {
      if (dim === this.shape.length) return data[off];
      const step = this.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, off + i * step));
    };
    return build(0, 0);
  }

  /** Readable text of the values, NumPy style (waits for the GPU). */
  async format(opts?: { precision?: number; maxPerDim?: number }): Promise<string> {
    return formatTensor(await this.toArray(), this.shape, this.dtype, opts);
  }

  /** Prints the values (waits for the GPU). */
  async print(): Promise<void> {
    console.log(`tensor${this.describe()}\n${await this.format()}`);
  }

  toString(): string {
    return `Tensor${this.describe()}${this.requiresGrad ? ' requiresGrad' : ''}`;
  }

  // ---- autograd ---------------------------------------------------------------------------------

  /**
   * Reverse-mode pass from this tensor: accumulates d(this)/d(leaf) into every leaf's .grad.
   * `gradient` (same shape) is required unless this tensor has exactly one element.
   */
  backward(gradient?: Tensor): void {
    runBackward(this, gradient);
  }

  /** A tensor sharing the data, cut from the graph (requiresGrad false). */
  detach(): Tensor {
    return this.view_(this.shape, this.strides, this.offset);
  }

  /** Sets requiresGrad and returns this (for chaining at creation). */
  requiresGrad_(flag = true): this {
    check(typeof flag === 'boolean', 'requiresGrad_', () => `flag must be true or false, got ${String(flag)}`);
    check(!flag || this.dtype === 'f32', 'requiresGrad_', () => `only f32 tensors can require gradients, got ${this.dtype}`);
    this.requiresGrad = flag;
    return this;
  }

  /** Disposes and clears .grad. */
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  // ---- views (no copies) --------------------------------------------------------------------------
  reshape(shape: readonly number[]): Tensor { return ops.reshape(this, shape); }
  view(shape: readonly number[]): Tensor { return ops.reshape(this, shape); }
  flatten(): Tensor { return ops.reshape(this, [-1]); }
  permute(dims: readonly number[]): Tensor { return ops.permute(this, dims); }
  transpose(a = -2, b = -1): Tensor { return ops.transpose(this, a, b); }
  /** All dims reversed (PyTorch/NumPy .T). */
  get T(): Tensor { return ops.permute(this, [...this.shape.keys()].reverse()); }
  /** The last two dims swapped (batched matrix transpose). */
  get mT(): Tensor { return ops.transpose(this, -2, -1); }
  slice(axis: number, start: number, end?: number): Tensor { return ops.slice(this, axis, start, end); }
  expand(shape: readonly number[]): Tensor { return ops.expand(this, shape); }
  unsqueeze(axis: number): Tensor { return ops.unsqueeze(this, axis); }
  squeeze(axis?: number): Tensor { return ops.squeeze(this, axis); }
  contiguous(): Tensor { return ops.contiguous(this); }
  split(sizes: number | readonly number[], axis = 0): Tensor[] { return ops.split(this, sizes, axis); }
  chunk(chunks: number, axis = 0): Tensor[] { return ops.chunk(this, chunks, axis); }
  flip(axes: number | readonly number[]): Tensor { return ops.flip(this, axes); }
  repeat(sizes: readonly number[]): Tensor { return ops.repeat(this, sizes); }
  tile(dims: readonly number[]): Tensor { return ops.tile(this, dims); }
  tril(diagonal = 0): Tensor { return ops.tril(this, diagonal); }
  triu(diagonal = 0): Tensor { return ops.triu(this, diagonal); }

  // ---- element-wise ------------------------------------------------------------------------------
  neg(): Tensor { return ops.neg(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  rsqrt(): Tensor { return ops.rsqrt(this); }
  tanh(): Tensor { return ops.tanh(this); }
  sigmoid(): Tensor { return ops.sigmoid(this); }
  relu(): Tensor { return ops.relu(this); }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return ops.gelu(this, approximate); }
  silu(): Tensor { return ops.silu(this); }
  abs(): Tensor { return ops.abs(this); }
  log1p(): Tensor { return ops.log1p(this); }
  expm1(): Tensor { return ops.expm1(this); }
  erf(): Tensor { return ops.erf(this); }
  sin(): Tensor { return ops.sin(this); }
  cos(): Tensor { return ops.cos(this); }
  sign(): Tensor { return ops.sign(this); }
  floor(): Tensor { return ops.floor(this); }
  round(): Tensor { return ops.round(this); }
  lerp(end: Tensor | number, weight: Tensor | number): Tensor { return ops.lerp(this, end, weight); }
  square(): Tensor { return ops.mul(this, this); }
  add(b: Tensor | number): Tensor { return ops.add(this, b); }
  sub(b: Tensor | number): Tensor { return ops.sub(this, b); }
  mul(b: Tensor | number): Tensor { return ops.mul(this, b); }
  div(b: Tensor | number): Tensor { return ops.div(this, b); }
  pow(b: Tensor | number): Tensor { return ops.pow(this, b); }
  maximum(b: Tensor | number): Tensor { return ops.maximum(this, b); }
  minimum(b: Tensor | number): Tensor { return ops.minimum(this, b); }
  eq(b: Tensor | number): Tensor { return ops.eq(this, b); }
  ne(b: Tensor | number): Tensor { return ops.ne(this, b); }
  lt(b: Tensor | number): Tensor { return ops.lt(this, b); }
  le(b: Tensor | number): Tensor { return ops.le(this, b); }
  gt(b: Tensor | number): Tensor { return ops.gt(this, b); }
  ge(b: Tensor | number): Tensor { return ops.ge(this, b); }
  clamp(min?: number, max?: number): Tensor { return ops.clamp(this, min, max); }
  maskedFill(mask: Tensor, value: number): Tensor { return ops.maskedFill(this, mask, value); }
  cast(dtype: DType): Tensor { return ops.cast(this, dtype); }
  dropout(p: number, training = true): Tensor { return ops.dropout(this, p, training); }

  // ---- reductions --------------------------------------------------------------------------------
  sum(axis?: number | readonly number[], keepdim = false): Tensor { return ops.sum(this, axis, keepdim); }
  mean(axis?: number | readonly number[], keepdim = false): Tensor { return ops.mean(this, axis, keepdim); }
  max(axis?: number | readonly number[], keepdim = false): Tensor { return ops.max(this, axis, keepdim); }
  min(axis?: number | readonly number[], keepdim = false): Tensor { return ops.min(this, axis, keepdim); }
  prod(axis?: number | readonly number[], keepdim = false): Tensor { return ops.prod(this, axis, keepdim); }
  var(axis?: number | readonly number[], keepdim = false, correction = 1): Tensor { return ops.variance(this, axis, keepdim, correction); }
  std(axis?: number | readonly number[], keepdim = false, correction = 1): Tensor { return ops.std(this, axis, keepdim, correction); }
  norm(p = 2, axis?: number | readonly number[], keepdim = false): Tensor { return ops.norm(this, p, axis, keepdim); }
  argmax(axis?: number, keepdim = false): Tensor { return ops.argmax(this, axis, keepdim); }
  argmin(axis?: number, keepdim = false): Tensor { return ops.argmin(this, axis, keepdim); }
  maxWithIndices(axis: number, keepdim = false): { values: Tensor; indices: Tensor } { return ops.maxWithIndices(this, axis, keepdim); }
  minWithIndices(axis: number, keepdim = false): { values: Tensor; indices: Tensor } { return ops.minWithIndices(this, axis, keepdim); }
  cumsum(axis: number): Tensor { return ops.cumsum(this, axis); }
  topk(k: number, axis = -1, largest = true): { values: Tensor; indices: Tensor } { return ops.topk(this, k, axis, largest); }

  // ---- linear algebra, normalisation, indexing ---------------------------------------------------------
  matmul(b: Tensor): Tensor { return ops.matmul(this, b); }
  softmax(axis = -1): Tensor { return ops.softmax(this, axis); }
  logSoftmax(axis = -1): Tensor { return ops.logSoftmax(this, axis); }
  logsumexp(axis: number | readonly number[], keepdim = false): Tensor { return ops.logsumexp(this, axis, keepdim); }
  indexSelect(axis: number, index: Tensor): Tensor { return ops.indexSelect(this, axis, index); }
  gather(axis: number, index: Tensor): Tensor { return ops.gather(this, axis, index); }
  scatterAdd(axis: number, index: Tensor, src: Tensor): Tensor { return ops.scatterAdd(this, axis, index, src); }

  // ---- in place (optimizers; not recorded by autograd) ------------------------------------------------
  /** Overwrites this tensor's elements with `src` (broadcast to this shape). */
  assign(src: Tensor | number): this { ops.assign(this, src); return this; }
}
