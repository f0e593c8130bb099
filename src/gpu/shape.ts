// Shape and stride arithmetic shared by views, broadcasting and the kernels' index math.
import { check, fmtShape } from './errors.js';

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

/** Normalises a possibly negative axis; `op` names the caller for the error. */
export function normAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  check(Number.isInteger(axis) && a >= 0 && a < Math.max(rank, 1), op,
    () => `axis ${axis} is out of range for a tensor of rank ${rank} (expected ${-rank} <= axis < ${rank})`);
  return a;
}

/** Axes for a reduction: undefined means all; returns sorted unique non-negative axes. */
export function normAxes(axis: number | readonly number[] | undefined, rank: number, op: string): number[] {
  if (axis === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axis === 'number' ? [axis] : [...axis];
  const out = [...new Set(list.map((a) => normAxis(a, rank, op)))].sort((x, y) => x - y);
  check(out.length === list.length, op, () => `repeated axis in ${JSON.stringify(axis)}`);
  return out;
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
