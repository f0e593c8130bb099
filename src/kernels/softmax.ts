// Launcher for softmax.wgsl (row-wise softmax family over contiguous [rows, n] views).
import type { AssertSlot, Device } from '../gpu/device.js';
import { Params, View, bindingDecls, fill, fixedSubgroupSize, grid1d, paramsDecl, wgslSource } from './kernel.js';
import { RowBinding, launchRows } from './rows.js';

const WG = 64;

// each lane's running (max m, sum s of exp(x - m)) over its strided share of the row
const LANE_MS = `
  let xo = word(3u) + base;
  var m = NEG_INF;
  var s = 0.0;
  var bad = 0.0;
  for (var j = t; j < n; j += WG) {
    let v = x[xo + j];
    bad = max(bad, bad_f(v));
    if (v > m) { s = s * exp(m - v) + 1.0; m = v; }
    else if (v != NEG_INF) { s += exp(v - m); }
  }`;

// merged across the workgroup through workgroup memory
const REDUCE_MS = `${LANE_MS}
  sm[t] = m;
  ss[t] = s;
  sb[t] = bad;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (t < k) { merge(t, sm[t + k], ss[t + k]); sb[t] = max(sb[t], sb[t + k]); }
    workgroupBarrier();
  }
  let mx = sm[0];
  let sum = ss[0];
  let flag = sb[0];
  let shift = select(mx, 0.0, mx == NEG_INF);`;

// the same reduction with subgroup operations (the workgroup is one subgroup): no barriers
const REDUCE_MS_SUBGROUP = `${LANE_MS}
  let mx = subgroupMax(m);
  let sum = subgroupAdd(select(s * exp(m - mx), 0.0, m == NEG_INF));
  let flag = subgroupMax(bad);
  let shift = select(mx, 0.0, mx == NEG_INF);`;

// the row's logsumexp from (shift, sum, flag): NaN for a NaN in the row, +inf for a +inf
const LSE = 'select(shift + log(sum), select(-neg_inf(), nan_f(), flag > 1.0), flag > 0.0)';

const forward = (reduce: string): Record<'softmax' | 'logSoftmax' | 'logsumexp', string> => ({
  softmax: `${reduce}
  let oo = word(2u) + base;
  let inv = select(1.0 / sum, 0.0, sum == 0.0);
  for (var j = t; j < n; j += WG) { out[oo + j] = select(exp(x[xo + j] - shift) * inv, nan_f(), flag > 0.0); }`,
  logSoftmax: `${reduce}
  let oo = word(2u) + base;
  let lse = shift + log(sum);
  for (var j = t; j < n; j += WG) { out[oo + j] = select(x[xo + j] - lse, nan_f(), flag > 0.0); }`,
  logsumexp: `${reduce}
  if (t == 0u) { out[word(2u) + row] = ${LSE}; }`,
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

// ---- the row-in-registers bodies (rows.wgsl): one read of the row, one exp per element ----------

// xs: the lane's slots (slot j = element j * WG + t of the row). LOAD_ROW_MAX loads x's row into xs
// (slots past the row: -inf) and takes the row max; shift = max, or 0 for an all -inf row so that
// exp(x - shift) is 0, not NaN; flag = the worst element (2: a NaN, 1: +inf, see rows.wgsl's bad_f)
const LOAD_ROW_MAX = `
  var xs: array<V, C>;
  var mv = V(NEG_INF);
  var bad = 0.0;
  for (var j = 0u; j < NC; j++) {
    let i = j * WG + t;
    if (in_row(i, nv)) { xs[j] = x[off_x + row * nv + i]; mv = max(mv, xs[j]); bad = max(bad, hbad(xs[j])); } else { xs[j] = V(NEG_INF); }
  }
  let mx = row_max(hmax(mv), t);
  let flag = row_max(bad, t);
  let shift = select(mx, 0.0, mx == NEG_INF);`;
// the row's sum of exp(x - shift); with store, xs becomes exp(xs - shift)
const EXP_SUM = (store: boolean): string => `
  var sv = V(0.0);
  for (var j = 0u; j < NC; j++) { ${store ? 'xs[j] = exp(xs[j] - shift); sv += xs[j];' : 'sv += exp(xs[j] - shift);'} }
  let sum = row_sum(hsum(sv), t);`;
const STORE_ROW = (expr: string): string => `
  for (var j = 0u; j < NC; j++) {
    let i = j * WG + t;
    if (in_row(i, nv)) { out[off_out + row * nv + i] = ${expr}; }
  }`;

const CACHED_FORWARD: Record<'softmax' | 'logSoftmax' | 'logsumexp', string> = {
  softmax: `${LOAD_ROW_MAX}${EXP_SUM(true)}
  let inv = select(1.0 / sum, 0.0, sum == 0.0);${STORE_ROW('select(xs[j] * inv, V(nan_f()), flag > 0.0)')}`,
  logSoftmax: `${LOAD_ROW_MAX}${EXP_SUM(false)}
  let lse = shift + log(sum);${STORE_ROW('select(xs[j] - lse, V(nan_f()), flag > 0.0)')}`,
  logsumexp: `${LOAD_ROW_MAX}${EXP_SUM(false)}
  if (t == 0u) { out[off_out + row] = ${LSE}; }`,
};

// backward: y and g loaded once; dot = sum(g * y) (softmax) or sum(g) (log-softmax)
const CACHED_BACKWARD = (log: boolean): string => `
  var ys: array<V, C>;
  var gs: array<V, C>;
  var dv = V(0.0);
  for (var j = 0u; j < NC; j++) {
    let i = j * WG + t;
    if (in_row(i, nv)) { ys[j] = y[off_y + row * nv + i]; gs[j] = g[off_g + row * nv + i]; } else { ys[j] = V(0.0); gs[j] = V(0.0); }
    dv += ${log ? 'gs[j]' : 'gs[j] * ys[j]'};
  }
  let dot = row_sum(hsum(dv), t);${STORE_ROW(log ? 'gs[j] - exp(ys[j]) * dot' : 'ys[j] * (gs[j] - dot)')}`;

// token log-probs forward: extra words [0] targets' stride, [1] the error-flag word
const CACHED_TOKEN_LOGPROBS = `${LOAD_ROW_MAX}${EXP_SUM(false)}
  if (t == 0u) {
    let tg = tgt[off_tgt + row * extra(0u)];
    let l = ${LSE};
    lse[off_lse + row] = l;
    if (tg >= 0 && u32(tg) < n) { out[off_out + row] = select(component(x[off_x + row * nv + u32(tg) / WIDTH], u32(tg) % WIDTH) - l, nan_f(), flag > 0.0); }
    else { out[off_out + row] = 0.0; atomicStore(&err[extra(1u)], 1u); }
  }`;

// token log-probs backward (streaming, no reduction): extra words [0] g's stride, [1] targets' stride
const STREAM_TOKEN_LOGPROBS_BACKWARD = `
  let gi = g[off_g + row * extra(0u)];
  let l = lse[off_lse + row];
  let tg = tgt[off_tgt + row * extra(1u)];
  for (var i = t; i < nv; i += WG) {
    out[off_out + row * nv + i] = gi * (one_hot(i, tg) - exp(x[off_x + row * nv + i] - l));
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
  dev.dispatch(op, pipe, prm.u32s, views.map((v) => v.buffer), grid1d(rows, 1, dev.limits.maxComputeWorkgroupsPerDimension));
}

function rowsOf(v: View): [number, number] {
  const n = v.shape[v.shape.length - 1] ?? 1;
  return [n === 0 ? 0 : v.shape.reduce((a, b) => a * b, 1) / n, n];
}

let forceOnline = false;
/** @internal Tests and benchmarks: force the online (streaming) form even where the row fits in registers. */
export function setSoftmaxOnline(on: boolean): void {
  forceOnline = on;
}

/**
 * x: contiguous [rows, n]. out: contiguous [rows, n] (softmax, logSoftmax) or [rows] (logsumexp).
 * Rows that fit in registers take the cached form (one read), longer ones the online form.
 */
export function runSoftmax(dev: Device, op: string, kind: 'softmax' | 'logSoftmax' | 'logsumexp', out: View, x: View): void {
  const [rows, n] = rowsOf(x);
  const outBinding: RowBinding = { name: 'out', view: out, type: kind === 'logsumexp' ? 'f32' : 'V', write: true };
  if (!forceOnline && launchRows(dev, op, kind, CACHED_FORWARD[kind], [outBinding, { name: 'x', view: x, type: 'V' }], rows, n)) return;
  launch(dev, op, kind, (sub) => (sub ? FORWARD_SUBGROUP : FORWARD)[kind], [out, x], ['out', 'x'], rows, n);
}

/** dx, y, g: contiguous [rows, n]. */
export function runSoftmaxBackward(dev: Device, op: string, log: boolean, dx: View, y: View, g: View): void {
  const [rows, n] = rowsOf(y);
  const key = log ? 'logSoftmax.bwd' : 'softmax.bwd';
  const bindings: RowBinding[] = [{ name: 'out', view: dx, type: 'V', write: true }, { name: 'y', view: y, type: 'V' }, { name: 'g', view: g, type: 'V' }];
  if (!forceOnline && launchRows(dev, op, key, CACHED_BACKWARD(log), bindings, rows, n)) return;
  launch(dev, op, key, (sub) => backward(log, sub), [dx, y, g], ['out', 'y', 'g'], rows, n);
}

// ---- token log-probs (the fused cross-entropy core) ---------------------------------------------

/**
 * out[row] = x[row, t] - logsumexp(x[row, :]) and lse[row] (saved for the backward), t = targets[row].
 * x: contiguous [rows, n]; targets: i32 view [rows]; out, lse: contiguous [rows]. A target outside
 * [0, n) gives 0 and sets errorFlag's word.
 */
export function runTokenLogProbs(dev: Device, op: string, out: View, lse: View, x: View, targets: View, errorFlag: AssertSlot): void {
  const [rows, n] = rowsOf(x);
  if (rows === 0 || n === 0) return;
  const bindings: RowBinding[] = [{ name: 'out', view: out, type: 'f32', write: true }, { name: 'lse', view: lse, type: 'f32', write: true },
    { name: 'x', view: x, type: 'V' }, { name: 'tgt', view: targets, type: 'i32' }, { name: 'err', view: errorFlag.buffer, type: 'u32', write: true, atomic: true }];
  if (!forceOnline && launchRows(dev, op, 'tokenLogProbs', CACHED_TOKEN_LOGPROBS, bindings, rows, n, [targets.strides[0] ?? 1, errorFlag.word])) return;
  const sg = fixedSubgroupSize(dev);
  const main = (sub: boolean): string => `${sub ? REDUCE_MS_SUBGROUP : REDUCE_MS}
  if (t == 0u) {
    let tg = tgt[word(4u) + row * word(5u)];
    let l = ${LSE};
    lse[row] = l;
    if (tg >= 0 && u32(tg) < n) { out[word(2u) + row] = select(x[xo + u32(tg)] - l, nan_f(), flag > 0.0); }
    else { out[word(2u) + row] = 0.0; atomicStore(&err[word(6u)], 1u); }
  }`;
  const wg = sg || WG;
  const prm = new Params().u(rows, n, out.offset, x.offset, targets.offset, targets.strides[0] ?? 1, errorFlag.word);
  const pipe = dev.pipeline(`softmax|tokenLogProbs|${wg}|${sg ? 'subgroup' : 'workgroup'}`, op, () =>
    fill(wgslSource('softmax'), {
      ENABLE: sg ? 'enable subgroups;' : '',
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls([{ name: 'out', type: 'f32', write: true }, { name: 'lse', type: 'f32', write: true }, { name: 'x', type: 'f32' },
        { name: 'tgt', type: 'i32' }, { name: 'err', type: 'u32', write: true, atomic: true }]),
      WG: wg, MAIN: main(sg > 0),
    }));
  dev.dispatch(op, pipe, prm.u32s, [out.buffer, lse.buffer, x.buffer, targets.buffer, errorFlag.buffer], grid1d(rows, 1, dev.limits.maxComputeWorkgroupsPerDimension));
}

/**
 * dx[row, j] = g[row] * ([j == t] - exp(x[row, j] - lse[row])): the softmax is recomputed from the
 * saved logsumexp, never stored. dx, x: contiguous [rows, n]; g, lse: [rows]; targets: i32 [rows].
 */
export function runTokenLogProbsBackward(dev: Device, op: string, dx: View, g: View, x: View, lse: View, targets: View): void {
  const [rows, n] = rowsOf(x);
  if (rows === 0 || n === 0) return;
  launchRows(dev, op, 'tokenLogProbs.bwd', STREAM_TOKEN_LOGPROBS_BACKWARD, [{ name: 'out', view: dx, type: 'V', write: true },
    { name: 'g', view: g, type: 'f32' }, { name: 'x', view: x, type: 'V' }, { name: 'lse', view: lse, type: 'f32' }, { name: 'tgt', view: targets, type: 'i32' }],
  rows, n, [g.strides[0] ?? 1, targets.strides[0] ?? 1], false);
}
