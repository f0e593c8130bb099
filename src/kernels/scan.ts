// Launcher for scan.wgsl: cumulative sums and products along one axis (cumsum, its gradient, and the
// exact gradient of prod).
import type { Device } from '../gpu/device.js';
import { Params, View, bindingDecls, fill, grid1d, paramsDecl, wgslSource } from './kernel.js';

export type ScanKind = 'sum' | 'prod';

export interface ScanOptions {
  /** out[j] combines the elements before j only (the identity at the start). */
  exclusive?: boolean;
  /** Scan from the end of the row towards its start. */
  reverse?: boolean;
}

/**
 * out = cumulative `kind` of x along `axis` (both views of the same shape; out must not share x's
 * buffer). x and out may have any strides; the element type is x's (f32 or i32, out the same).
 */
export function runScan(dev: Device, op: string, kind: ScanKind, out: View, x: View, axis: number, opts: ScanOptions = {}): void {
  const rank = x.shape.length;
  if (out.buffer === x.buffer) throw new Error(`${op}: the scan output must not share the input's buffer`);
  if (out.dtype !== x.dtype) throw new Error(`${op}: the scan output dtype ${out.dtype} differs from the input's ${x.dtype}`);
  const n = rank === 0 ? 1 : x.shape[axis];
  const outer = [...x.shape.keys()].filter((d) => d !== axis);
  const rows = outer.reduce((a, d) => a * x.shape[d], 1);
  if (rows === 0 || n === 0) return;
  const sx = rank === 0 ? 0 : x.strides[axis];
  const so = rank === 0 ? 0 : out.strides[axis];
  const prm = new Params().u(rows, n, x.offset, out.offset, sx, so)
    .u(...outer.map((d) => x.shape[d])).u(...outer.map((d) => x.strides[d])).u(...outer.map((d) => out.strides[d]));
  const T = x.dtype;
  const exclusive = opts.exclusive ?? false;
  const reverse = opts.reverse ?? false;
  const key = `scan|${kind}|${T}|${exclusive}|${reverse}|r${outer.length}|${prm.vec4s}`;
  const pipe = dev.pipeline(key, op, () =>
    fill(wgslSource('scan'), {
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls([{ name: 'out', type: T, write: true }, { name: 'x', type: T }]),
      RO: outer.length,
      T,
      OP: kind === 'sum' ? '+' : '*',
      IDENTITY: `${T}(${kind === 'sum' ? 0 : 1})`,
      EXCLUSIVE: String(exclusive),
      REVERSE: String(reverse),
    }),
  );
  dev.dispatch(op, pipe, prm.u32s, [out.buffer, x.buffer], grid1d(rows, 64, dev.limits.maxComputeWorkgroupsPerDimension));
}
