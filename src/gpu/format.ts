// NumPy-style printing of tensor values.
import type { DType } from './dtype.js';

export function formatTensor(data: ArrayLike<number>, shape: readonly number[], dtype: DType,
  opts: { precision?: number; maxPerDim?: number } = {}): string {
  const precision = opts.precision ?? 4;
  const maxPerDim = opts.maxPerDim ?? 6;
  const fmt = (v: number): string => {
    if (dtype === 'i32') return String(v);
    if (!Number.isFinite(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a >= 1e5 || a < 1e-4) ? v.toExponential(precision) : v.toFixed(precision);
  };
  if (shape.length === 0) return fmt(data[0]);
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((p, d) => p * d, 1));
  const rec = (dim: number, off: number, indent: string): string => {
    const n = shape[dim];
    const idx = n > maxPerDim ? [...Array(maxPerDim >> 1).keys(), -1, ...Array.from({ length: maxPerDim >> 1 }, (_, k) => n - (maxPerDim >> 1) + k)] : [...Array(n).keys()];
    if (dim === shape.length - 1) {
      return '[' + idx.map((i) => (i < 0 ? '...' : fmt(data[off + i]))).join(', ') + ']';
    }
    const sep = ',' + '\n'.repeat(shape.length - dim - 1) + indent + ' ';
    return '[' + idx.map((i) => (i < 0 ? '...' : rec(dim + 1, off + i * strides[dim], indent + ' '))).join(sep) + ']';
  };
  return rec(0, 0, '');
}
