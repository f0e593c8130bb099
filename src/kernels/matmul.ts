// Launcher for matmul.wgsl: batched, strided, broadcast-batch matrix product.
import type { Device } from '../tensor/device.js';
import { TrimpiError } from '../tensor/errors.js';
import { Params, View, bindingDecls, fill, paramsDecl, wgslSource } from './kernel.js';

const TM = 4;
const TN = 4;
const WGX = 8;
const WGY = 8;

/** out (contiguous [...batch, M, N]) = a ([...batch, M, K], strided) @ b ([...batch, K, N], strided). */
export function runMatmul(dev: Device, op: string, out: View, a: View, b: View): void {
  const r = a.shape.length;
  const [M, K] = a.shape.slice(-2);
  const N = b.shape[r - 1];
  const batchShape = a.shape.slice(0, -2);
  const batch = batchShape.reduce((x, y) => x * y, 1);
  if (M * N * batch === 0) return;
  if (K === 0) throw new TrimpiError(op, 'inner dimension K = 0 (empty product) is not supported');
  const maxWg = dev.limits.maxComputeWorkgroupsPerDimension;
  if (batch > maxWg) throw new TrimpiError(op, `batch of ${batch} matrices exceeds the dispatch limit ${maxWg}; reshape into fewer, larger matrices`);
  const rb = batchShape.length;
  const prm = new Params()
    .u(M, N, K, 0, a.offset, a.strides[r - 2], a.strides[r - 1], b.offset, b.strides[r - 2], b.strides[r - 1], rb, 0)
    .u(...batchShape, ...a.strides.slice(0, rb), ...b.strides.slice(0, rb));
  const key = `matmul|${TM}x${TN}|${WGX}x${WGY}|rb${rb}|${prm.vec4s}`;
  const pipe = dev.pipeline(key, op, () =>
    fill(wgslSource('matmul'), {
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls([{ name: 'out', type: 'f32', write: true }, { name: 'a', type: 'f32' }, { name: 'b', type: 'f32' }]),
      TM, TN, RB: rb, WGX, WGY,
    }),
  );
  dev.dispatch(op, pipe, prm.bytes(), [out.buffer, a.buffer, b.buffer],
    [Math.ceil(N / (TN * WGX)), Math.ceil(M / (TM * WGY)), batch]);
}
