// Launcher for topk.wgsl: the indices of the k largest or smallest elements along one axis.
import type { Device } from '../gpu/device.js';
import { Params, View, bindingDecls, fill, grid1d, paramsDecl, wgslSource } from './kernel.js';

/**
 * out (i32 view: x's shape with k along `axis`) = indices along `axis` of the k largest (`largest`)
 * or smallest elements of each row of x, best first, ties to the lower index, NaN the largest.
 * 1 <= k <= x.shape[axis]; x f32 or i32, any strides.
 */
export function runTopk(dev: Device, op: string, out: View, x: View, axis: number, k: number, largest: boolean): void {
  const rank = x.shape.length;
  const n = x.shape[axis];
  if (out.dtype !== 'i32') throw new Error(`${op}: topk writes i32 indices, got an ${out.dtype} output`);
  if (!(k >= 1 && k <= n)) throw new Error(`${op}: k = ${k} must be in [1, ${n}]`);
  const outer = [...Array(rank).keys()].filter((d) => d !== axis);
  const rows = outer.reduce((a, d) => a * x.shape[d], 1);
  if (rows === 0) return;
  const prm = new Params().u(rows, n, k, x.offset, x.strides[axis], out.offset, out.strides[axis], 0)
    .u(...outer.map((d) => x.shape[d])).u(...outer.map((d) => x.strides[d])).u(...outer.map((d) => out.strides[d]));
  const T = x.dtype;
  const key = `topk|${T}|${largest}|r${outer.length}|${prm.vec4s}`;
  const pipe = dev.pipeline(key, op, () =>
    fill(wgslSource('topk'), {
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls([{ name: 'out', type: 'i32', write: true }, { name: 'x', type: T }]),
      RO: outer.length,
      T,
      BEFORE: largest ? 'above(v, w)' : 'above(w, v)',
      IS_NAN: T === 'f32' ? 'return (bitcast<u32>(a) & 0x7fffffffu) > 0x7f800000u;' : 'return false;',
    }),
  );
  dev.dispatch(op, pipe, prm.u32s, [out.buffer, x.buffer], grid1d(rows, 64, dev.limits.maxComputeWorkgroupsPerDimension));
}
