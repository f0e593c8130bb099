// Shape and stride arithmetic shared by views, broadcasting and the kernels' index math.
import { check, describeValue, fmtShape } from './errors.js';

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/** True if (shape, strides) addresses memory in row-major order without gaps (size-1 dims ignored). */
export function isContiguous(shape: Shape, strides: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] === 1) continue;
    if (strides[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

/**
 * Normalises a possibly negative axis; `op` names the caller for the error. A 0-d tensor takes axis
 * 0 or -1 (as in PyTorch, which wraps dims of a scalar as if it had one): the result is then 0, and
 * the caller decides what an axis of a scalar means.
 */
export function normAxis(axis: number, rank: number, op: string): number {
  check(typeof axis === 'number' && Number.isInteger(axis), op, () => `axis must be an integer, got ${describeValue(axis)}`);
  const r = Math.max(rank, 1);
  const a = axis < 0 ? axis + r : axis;
  check(a >= 0 && a < r, op, () => `axis ${axis} is out of range for a tensor of rank ${rank} (expected ${-r} <= axis < ${r})`);
  return a;
}

/**
 * Axes for a reduction: undefined (or an empty list, as PyTorch's dim=[]) means all; returns sorted
 * unique non-negative axes. On a 0-d tensor axes 0 and -1 are accepted and nothing is reduced ([]).
 */
export function normAxes(axis: number | readonly number[] | undefined, rank: number, op: string): number[] {
  if (axis === undefined) return Array.from({ length: rank }, (_, i) => i);
  check(typeof axis === 'number' || Array.isArray(axis), op,
    () => `axis must be an integer, a list of integers, or undefined (every axis), got ${describeValue(axis)}`);
  const list = typeof axis === 'number' ? [axis] : [...axis];
  if (list.length === 0) return Array.from({ length: rank }, (_, i) => i);
  const out = [...new Set(list.map((a) => normAxis(a, rank, op)))].sort((x, y) => x - y);
  check(out.length === list.length, op, () => `repeated axis in ${JSON.stringify(axis)}`);
  return rank === 0 ? [] : out;
}

/** Checks that `shape` is a list of non-negative integers (a tensor shape); `name` is the argument. */
export function checkShape(op: string, name: string, shape: unknown): asserts shape is readonly number[] {
  check(Array.isArray(shape) || ArrayBuffer.isView(shape), op, () => `${name} must be a list of non-negative integers, got ${describeValue(shape)}`);
  const s = shape as ArrayLike<unknown>;
  for (let i = 0; i < s.length; i++) {
    const d = s[i];
    check(typeof d === 'number' && Number.isInteger(d) && d >= 0, op,
      () => `${name} must be a list of non-negative integers, got ${describeValue(Array.from(s))} (dimension ${i} is ${describeValue(d)})`);
  }
  check(numel(s as readonly number[]) <= Number.MAX_SAFE_INTEGER, op, () => `${name} ${fmtShape(Array.from(s as ArrayLike<number>))} has too many elements`);
}

/** NumPy/PyTorch broadcasting of two or more shapes. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i];
      if (d === out[o] || d === 1) continue;
      check(out[o] === 1, op, () =>
        `shapes ${shapes.map(fmtShape).join(' and ')} cannot be broadcast together (dimension ${o - rank}: ${out[o]} vs ${d})`);
      out[o] = d;
    }
  }
  return out;
}

/** Strides that read a tensor of (shape, strides) as if it had `target` shape (stride 0 on broadcast dims). */
export function broadcastStrides(shape: Shape, strides: readonly number[], target: Shape): number[] {
  const out = new Array<number>(target.length).fill(0);
  const off = target.length - shape.length;
  for (let i = 0; i < shape.length; i++) out[off + i] = shape[i] === 1 && target[off + i] !== 1 ? 0 : strides[i];
  return out;
}

/** Resolves a single -1 in a reshape target. */
export function inferShape(op: string, from: Shape, to: readonly number[]): number[] {
  check(Array.isArray(to), op, () => `the target shape must be a list of integers, got ${describeValue(to)}`);
  const n = numel(from);
  const unknown = to.filter((d) => d === -1).length;
  check(unknown <= 1 && to.every((d) => Number.isInteger(d) && d >= -1), op,
    () => `invalid target shape ${fmtShape(to)} (at most one -1, other sizes non-negative integers)`);
  const known = to.reduce((p, d) => (d === -1 ? p : p * d), 1);
  const out = to.map((d) => (d === -1 ? (known === 0 ? 0 : n / known) : d));
  check(numel(out) === n && out.every((d) => Number.isInteger(d)), op,
    () => `cannot reshape a tensor of shape ${fmtShape(from)} (${n} elements) into ${fmtShape(to)}`);
  return out;
}

/**
 * Strides for viewing (shape, strides) as `to` without a copy, or null when impossible.
 * Merges/splits runs of dims that are contiguous with each other (as PyTorch's computeStride).
 */
export function viewStrides(shape: Shape, strides: readonly number[], to: Shape): number[] | null {
  if (numel(shape) === 0) return contiguousStrides(to);
  const newStrides = new Array<number>(to.length).fill(0);
  let viewD = to.length - 1;
  let chunkBase = strides[strides.length - 1] ?? 1;
  let tensorNumel = 1;
  let viewNumel = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    tensorNumel *= shape[d];
    if (d === 0 || (shape[d - 1] !== 1 && strides[d - 1] !== tensorNumel * chunkBase)) {
      while (viewD >= 0 && (viewNumel < tensorNumel || to[viewD] === 1)) {
        newStrides[viewD] = viewNumel * chunkBase;
        viewNumel *= to[viewD];
        viewD--;
      }
      if (viewNumel !== tensorNumel) return null;
      if (d > 0) {
        chunkBase = strides[d - 1];
        tensorNumel = 1;
        viewNumel = 1;
      }
    }
  }
  if (viewD !== -1) {
    // remaining leading size-1 dims
    for (; viewD >= 0; viewD--) { if (to[viewD] !== 1) return null; newStrides[viewD] = 1; }
  }
  return newStrides;
}
