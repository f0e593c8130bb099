// Launcher for softmax.wgsl (row-wise softmax family over contiguous [rows, n] views).
import type { Device } from '../tensor/device.js';
import { Params, View, bindingDecls, fill, fixedSubgroupSize, grid1d, paramsDecl, wgslSource } from './kernel.js';

const WG = 64;

// each lane's running (max m, sum s of exp(x - m)) over its strided share of the row
const LANE_MS = `
  let xo = word(3u) + base;
  var m = NEG_INF;
  var s = 0.0;
  for (var j = t; j < n; j += WG) {
    let v = x[xo + j];
    if (v > m) { s = s * exp(m - v) + 1.0; m = v; }
    else if (v != NEG_INF) { s += exp(v - m); }
  }`;

// merged across the workgroup through workgroup memory
const REDUCE_MS = `${LANE_MS}
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

// the same reduction with subgroup operations (the workgroup is one subgroup): no barriers
const REDUCE_MS_SUBGROUP = `${LANE_MS}
  let mx = subgroupMax(m);
  let sum = subgroupAdd(select(s * exp(m - mx), 0.0, m == NEG_INF));
  let shift = select(mx, 0.0, mx == NEG_INF);`;

const forward = (reduce: string): Record<'softmax' | 'logSoftmax' | 'logsumexp', string> => ({
  softmax: `${reduce}
  let oo = word(2u) + base;
  let inv = select(1.0 / sum, 0.0, sum == 0.0);
  for (var j = t; j < n; j += WG) { out[oo + j] = exp(x[xo + j] - shift) * inv; }`,
  logSoftmax: `${reduce}
  let oo = word(2u) + base;
  let lse = shift + log(sum);
  for (var j = t; j < n; j += WG) { out[oo + j] = x[xo + j] - lse; }`,
  logsumexp: `${reduce}
  if (t == 0u) { out[word(2u) + row] = shift + log(sum); }`,
});
const FORWARD = forward(REDUCE_MS);
const FORWARD_SUBGROUP = forward(REDUCE_MS_SUBGROUP);

// backward: reduce sum(g * y) (softmax) or sum(g) (logSoftmax), then write dx
const backward = (log: boolean, subgroup: boolean): string => subgroup ? `
  let oo = word(2u) + base;
  let yo = word(3u) + base;
  let go = word(4u) + base;
  var acc = 0.0;
  for (var j = t; j < n; j += WG) { acc += ${log ? 'g[go + j]' : 'g[go + j] * y[yo + j]'}; }
  let dot = subgroupAdd(acc);
  for (var j = t; j < n; j += WG) {
    ${log ? 'out[oo + j] = g[go + j] - exp(y[yo + j]) * dot;' : 'out[oo + j] = y[yo + j] * (g[go + j] - dot);'}
  }` : `
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

function launch(dev: Device, op: string, key: string, main: (subgroup: boolean) => string, views: View[], names: string[], rows: number, n: number): void {
  if (rows === 0 || n === 0) return;
  const sg = fixedSubgroupSize(dev);
  const wg = sg || WG;
  const prm = new Params().u(rows, n, ...views.map((v) => v.offset));
  const pipe = dev.pipeline(`softmax|${key}|${wg}|${sg ? 'subgroup' : 'workgroup'}|${prm.vec4s}`, op, () =>
    fill(wgslSource('softmax'), {
      ENABLE: sg ? 'enable subgroups;' : '',
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls(names.map((name, i) => ({ name, type: 'f32', write: i === 0 }))),
      WG: wg, MAIN: main(sg > 0),
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
  launch(dev, op, kind, (sub) => (sub ? FORWARD_SUBGROUP : FORWARD)[kind], [out, x], ['out', 'x'], rows, n);
}

/** dx, y, g: contiguous [rows, n]. */
export function runSoftmaxBackward(dev: Device, op: string, log: boolean, dx: View, y: View, g: View): void {
  const [rows, n] = rowsOf(y);
  launch(dev, op, log ? 'logSoftmax.bwd' : 'softmax.bwd', (sub) => backward(log, sub), [dx, y, g], ['out', 'y', 'g'], rows, n);
}

// ---- token log-probs (the fused cross-entropy core) ---------------------------------------------

/**
 * out[row] = x[row, t] - logsumexp(x[row, :]) and lse[row] (saved for the backward), t = targets[row].
 * x: contiguous [rows, n]; targets: i32 view [rows]; out, lse: contiguous [rows]. A target outside
 * [0, n) gives 0 and sets errorFlag.
 */
export function runTokenLogProbs(dev: Device, op: string, out: View, lse: View, x: View, targets: View, errorFlag: GPUBuffer): void {
  const [rows, n] = rowsOf(x);
  if (rows === 0 || n === 0) return;
  const sg = fixedSubgroupSize(dev);
  const main = (sub: boolean): string => `${sub ? REDUCE_MS_SUBGROUP : REDUCE_MS}
  if (t == 0u) {
    let tg = tgt[word(4u) + row * word(5u)];
    let l = shift + log(sum);
    lse[row] = l;
    if (tg >= 0 && u32(tg) < n) { out[word(2u) + row] = x[xo + u32(tg)] - l; }
    else { out[word(2u) + row] = 0.0; atomicStore(&err[0], 1u); }
  }`;
  const wg = sg || WG;
  const prm = new Params().u(rows, n, out.offset, x.offset, targets.offset, targets.strides[0] ?? 1);
  const pipe = dev.pipeline(`softmax|tokenLogProbs|${wg}|${sg ? 'subgroup' : 'workgroup'}`, op, () =>
    fill(wgslSource('softmax'), {
      ENABLE: sg ? 'enable subgroups;' : '',
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls([{ name: 'out', type: 'f32', write: true }, { name: 'lse', type: 'f32', write: true }, { name: 'x', type: 'f32' },
        { name: 'tgt', type: 'i32' }, { name: 'err', type: 'u32', write: true, atomic: true }]),
      WG: wg, MAIN: main(sg > 0),
    }));
  dev.dispatch(op, pipe, prm.bytes(), [out.buffer, lse.buffer, x.buffer, targets.buffer, errorFlag], grid1d(rows, 1, dev.limits.maxComputeWorkgroupsPerDimension));
}

/**
 * dx[row, j] = g[row] * ([j == t] - exp(x[row, j] - lse[row])): the softmax is recomputed from the
 * saved logsumexp, never stored. dx, x: contiguous [rows, n]; g, lse: [rows]; targets: i32 [rows].
 */
export function runTokenLogProbsBackward(dev: Device, op: string, dx: View, g: View, x: View, lse: View, targets: View): void {
  const [rows, n] = rowsOf(x);
  if (rows === 0 || n === 0) return;
  const sg = fixedSubgroupSize(dev);
  const wg = sg || WG;
  const main = `
  let gi = g[word(4u) + row * word(5u)];
  let l = lse[row];
  let tg = tgt[word(6u) + row * word(7u)];
  let xo = word(3u) + base;
  let oo = word(2u) + base;
  for (var j = t; j < n; j += WG) {
    out[oo + j] = gi * (select(0.0, 1.0, i32(j) == tg) - exp(x[xo + j] - l));
  }`;
  const prm = new Params().u(rows, n, dx.offset, x.offset, g.offset, g.strides[0] ?? 1, targets.offset, targets.strides[0] ?? 1);
  const pipe = dev.pipeline(`softmax|tokenLogProbs.bwd|${wg}`, op, () =>
    fill(wgslSource('softmax'), {
      ENABLE: '',
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls([{ name: 'out', type: 'f32', write: true }, { name: 'g', type: 'f32' }, { name: 'x', type: 'f32' },
        { name: 'lse', type: 'f32' }, { name: 'tgt', type: 'i32' }]),
      WG: wg, MAIN: main,
    }));
  dev.dispatch(op, pipe, prm.bytes(), [dx.buffer, g.buffer, x.buffer, lse.buffer, targets.buffer], grid1d(rows, 1, dev.limits.maxComputeWorkgroupsPerDimension));
}
