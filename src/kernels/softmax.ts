// Launcher for softmax.wgsl (row-wise softmax family over contiguous [rows, n] views).
import type { Device } from '../tensor/device.js';
import { Params, View, bindingDecls, fill, grid1d, paramsDecl, wgslSource } from './kernel.js';

const WG = 64;

// x = word(3) offset of the input view; oo = output offset; running (m, s) merged across the workgroup
const REDUCE_MS = `
  let xo = word(3u) + base;
  var m = NEG_INF;
  var s = 0.0;
  for (var j = t; j < n; j += WG) {
    let v = x[xo + j];
    if (v > m) { s = s * exp(m - v) + 1.0; m = v; }
    else if (v != NEG_INF) { s += exp(v - m); }
  }
  sm[t] = m;
  ss[t] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (t < k) { merge(t, sm[t + k], ss[t + k]); }
    workgroupBarrier();
  }
  let mx = sm[0];
  let sum = ss[0];
  let shift = select(mx, 0.0, mx == NEG_INF);`;

const FORWARD: Record<'softmax' | 'logSoftmax' | 'logsumexp', string> = {
  softmax: `${REDUCE_MS}
  let oo = word(2u) + base;
  let inv = select(1.0 / sum, 0.0, sum == 0.0);
  for (var j = t; j < n; j += WG) { out[oo + j] = exp(x[xo + j] - shift) * inv; }`,
  logSoftmax: `${REDUCE_MS}
  let oo = word(2u) + base;
  let lse = shift + log(sum);
  for (var j = t; j < n; j += WG) { out[oo + j] = x[xo + j] - lse; }`,
  logsumexp: `${REDUCE_MS}
  if (t == 0u) { out[word(2u) + row] = shift + log(sum); }`,
};

// backward: reduce sum(g * y) (softmax) or sum(g) (logSoftmax), then write dx
const backward = (log: boolean): string => `
  let oo = word(2u) + base;
  let yo = word(3u) + base;
  let go = word(4u) + base;
  var acc = 0.0;
  for (var j = t; j < n; j += WG) { acc += ${log ? 'g[go + j]' : 'g[go + j] * y[yo + j]'}; }
  ss[t] = acc;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (t < k) { ss[t] += ss[t + k]; }
    workgroupBarrier();
  }
  let dot = ss[0];
  for (var j = t; j < n; j += WG) {
    ${log ? 'out[oo + j] = g[go + j] - exp(y[yo + j]) * dot;' : 'out[oo + j] = y[yo + j] * (g[go + j] - dot);'}
  }`;

function launch(dev: Device, op: string, key: string, main: string, views: View[], names: string[], rows: number, n: number): void {
  if (rows === 0 || n === 0) return;
  const prm = new Params().u(rows, n, ...views.map((v) => v.offset));
  const pipe = dev.pipeline(`softmax|${key}|${WG}|${prm.vec4s}`, op, () =>
    fill(wgslSource('softmax'), {
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls(names.map((name, i) => ({ name, type: 'f32', write: i === 0 }))),
      WG, MAIN: main,
    }));
  dev.dispatch(op, pipe, prm.bytes(), views.map((v) => v.buffer), grid1d(rows, 1, dev.limits.maxComputeWorkgroupsPerDimension));
}

function rowsOf(v: View): [number, number] {
  const n = v.shape[v.shape.length - 1] ?? 1;
  return [n === 0 ? 0 : v.shape.reduce((a, b) => a * b, 1) / n, n];
}

/** x: contiguous [rows, n]. out: contiguous [rows, n] (softmax, logSoftmax) or [rows] (logsumexp). */
export function runSoftmax(dev: Device, op: string, kind: 'softmax' | 'logSoftmax' | 'logsumexp', out: View, x: View): void {
  const [rows, n] = rowsOf(x);
  launch(dev, op, kind, FORWARD[kind], [out, x], ['out', 'x'], rows, n);
}

/** dx, y, g: contiguous [rows, n]. */
export function runSoftmaxBackward(dev: Device, op: string, log: boolean, dx: View, y: View, g: View): void {
  const [rows, n] = rowsOf(y);
  launch(dev, op, log ? 'logSoftmax.bwd' : 'softmax.bwd', backward(log), [dx, y, g], ['out', 'y', 'g'], rows, n);
}
