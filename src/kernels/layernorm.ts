// Launcher for layernorm.wgsl. All views contiguous with offset 0 (the op makes them so).
import type { Device } from '../gpu/device.js';
import { Params, View, bindingDecls, f32Bits, fill, fixedSubgroupSize, grid1d, paramsDecl, wgslSource } from './kernel.js';
import { RowBinding, launchRows } from './rows.js';

// sums v over the workgroup (both lanes), result broadcast to every invocation
const WG_SUM = `var<workgroup> red: array<vec2<f32>, WG>;
fn wg_sum(t: u32, v: vec2<f32>) -> vec2<f32> {
  red[t] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (t < k) { red[t] += red[t + k]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;
const SUBGROUP_SUM = 'fn wg_sum(t: u32, v: vec2<f32>) -> vec2<f32> { return subgroupAdd(v); }';

const WG = 64;

function launch(dev: Device, op: string, key: string, main: string, bindings: { name: string; write?: boolean }[],
  views: View[], rows: number, D: number, eps: number): void {
  if (rows === 0 || D === 0) return;
  const sg = fixedSubgroupSize(dev);
  const prm = new Params().u(rows, D).f(eps);
  const pipe = dev.pipeline(`layernorm|${key}|${sg || WG}|${sg ? 'subgroup' : 'workgroup'}`, op, () =>
    fill(wgslSource('layernorm'), {
      ENABLE: sg ? 'enable subgroups;' : '',
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls(bindings.map((b) => ({ ...b, type: 'f32' }))),
      WG: sg || WG, REDUCE: sg ? SUBGROUP_SUM : WG_SUM, MAIN: main,
    }));
  dev.dispatch(op, pipe, prm.u32s, views.map((v) => v.buffer), grid1d(rows, 1, dev.limits.maxComputeWorkgroupsPerDimension));
}

// ---- the row-in-registers bodies (rows.wgsl): x (and g) read once --------------------------------

// forward: xs = x's row (with a residual: x + y, also written to sum); extra word [0] eps (f32)
const REGISTERS_FORWARD = (weight: boolean, bias: boolean, residual: boolean): string => `
  let invD = 1.0 / f32(n);
  var xs: array<V, C>;
  var sv = V(0.0);
  for (var j = 0u; j < NC; j++) {
    let i = j * WG + t;
    if (in_row(i, nv)) {
      xs[j] = x[off_x + row * nv + i]${residual ? ' + y[off_y + row * nv + i]; sum[off_sum + row * nv + i] = xs[j]' : ''};
      sv += xs[j];
    } else { xs[j] = V(0.0); }
  }
  let mu = row_sum(hsum(sv), t) * invD;
  var qv = V(0.0);
  for (var j = 0u; j < NC; j++) {
    let i = j * WG + t;
    if (in_row(i, nv)) { let d = xs[j] - mu; qv += d * d; }
  }
  let rs = inverseSqrt(row_sum(hsum(qv), t) * invD + bitcast<f32>(extra(0u)));
  for (var j = 0u; j < NC; j++) {
    let i = j * WG + t;
    if (in_row(i, nv)) { out[off_out + row * nv + i] = (xs[j] - mu) * rs${weight ? ' * w[off_w + i]' : ''}${bias ? ' + b[off_b + i]' : ''}; }
  }
  if (t == 0u) { mean[off_mean + row] = mu; rstd[off_rstd + row] = rs; }`;

// backward for x: xh = xhat, gw = g * w kept in registers
const REGISTERS_BACKWARD = (weight: boolean): string => `
  let invD = 1.0 / f32(n);
  let mu = mean[off_mean + row];
  let rs = rstd[off_rstd + row];
  var xh: array<V, C>;
  var gw: array<V, C>;
  var s1 = V(0.0);
  var s2 = V(0.0);
  for (var j = 0u; j < NC; j++) {
    let i = j * WG + t;
    if (in_row(i, nv)) {
      xh[j] = (x[off_x + row * nv + i] - mu) * rs;
      gw[j] = g[off_g + row * nv + i]${weight ? ' * w[off_w + i]' : ''};
    } else { xh[j] = V(0.0); gw[j] = V(0.0); }
    s1 += gw[j];
    s2 += gw[j] * xh[j];
  }
  let c1 = row_sum(hsum(s1), t) * invD;
  let c2 = row_sum(hsum(s2), t) * invD;
  for (var j = 0u; j < NC; j++) {
    let i = j * WG + t;
    if (in_row(i, nv)) { dx[off_dx + row * nv + i] = rs * (gw[j] - c1 - xh[j] * c2); }
  }`;

// ---- the streaming form, for rows too long for the registers ------------------------------------

/**
 * out, x: [rows, D]; mean, rstd: [rows] (written); weight, bias: [D] or null. With `residual`, the
 * row normalized is x + residual.y, written to residual.sum as well ([rows, D]; the pre-LN block's
 * residual add and the next layer norm in one pass: x and y read once, sum written once).
 */
export function runLayerNorm(dev: Device, op: string, out: View, mean: View, rstd: View, x: View,
  weight: View | null, bias: View | null, rows: number, D: number, eps: number, residual?: { y: View; sum: View }): void {
  const eps32 = f32Bits(eps);
  const res = !!residual;
  const inRegisters: RowBinding[] = [{ name: 'out', view: out, type: 'V', write: true }, { name: 'mean', view: mean, type: 'f32', write: true },
    { name: 'rstd', view: rstd, type: 'f32', write: true }, { name: 'x', view: x, type: 'V' }];
  if (weight) inRegisters.push({ name: 'w', view: weight, type: 'V' });
  if (bias) inRegisters.push({ name: 'b', view: bias, type: 'V' });
  if (residual) inRegisters.push({ name: 'y', view: residual.y, type: 'V' }, { name: 'sum', view: residual.sum, type: 'V', write: true });
  if (launchRows(dev, op, `layerNorm|${!!weight}|${!!bias}|${res}`, REGISTERS_FORWARD(!!weight, !!bias, res), inRegisters, rows, D, [eps32])) return;
  // the streaming form reads the row back from sum: each invocation reads only the elements it wrote
  const xr = res ? 'sum' : 'x';
  const main = `
  var s = vec2<f32>(0.0);
  for (var j = t; j < D; j += WG) { ${res ? 'let v = x[base + j] + y[base + j]; sum[base + j] = v; s.x += v;' : 's.x += x[base + j];'} }
  let mu = wg_sum(t, s).x * invD;
  var q = vec2<f32>(0.0);
  for (var j = t; j < D; j += WG) { let d = ${xr}[base + j] - mu; q.x += d * d; }
  let rs = inverseSqrt(wg_sum(t, q).x * invD + wordf(2u));
  for (var j = t; j < D; j += WG) {
    out[base + j] = (${xr}[base + j] - mu) * rs${weight ? ' * w[j]' : ''}${bias ? ' + b[j]' : ''};
  }
  if (t == 0u) { mean[row] = mu; rstd[row] = rs; }`;
  const bindings = [{ name: 'out', write: true }, { name: 'mean', write: true }, { name: 'rstd', write: true }, { name: 'x' }];
  const views = [out, mean, rstd, x];
  if (weight) { bindings.push({ name: 'w' }); views.push(weight); }
  if (bias) { bindings.push({ name: 'b' }); views.push(bias); }
  if (residual) { bindings.push({ name: 'y' }, { name: 'sum', write: true }); views.push(residual.y, residual.sum); }
  launch(dev, op, `fwd|${!!weight}|${!!bias}|${res}`, main, bindings, views, rows, D, eps);
}

/** dx, g, x: [rows, D]; weight: [D] or null; mean, rstd: [rows] from the forward. */
export function runLayerNormBackward(dev: Device, op: string, dx: View, g: View, x: View, weight: View | null,
  mean: View, rstd: View, rows: number, D: number): void {
  const inRegisters: RowBinding[] = [{ name: 'dx', view: dx, type: 'V', write: true }, { name: 'g', view: g, type: 'V' }, { name: 'x', view: x, type: 'V' },
    { name: 'mean', view: mean, type: 'f32' }, { name: 'rstd', view: rstd, type: 'f32' }];
  if (weight) inRegisters.push({ name: 'w', view: weight, type: 'V' });
  if (launchRows(dev, op, `layerNorm.bwd|${!!weight}`, REGISTERS_BACKWARD(!!weight), inRegisters, rows, D)) return;
  const gw = weight ? 'g[base + j] * w[j]' : 'g[base + j]';
  const main = `
  let mu = mean[row];
  let rs = rstd[row];
  var s = vec2<f32>(0.0);
  for (var j = t; j < D; j += WG) {
    let gw = ${gw};
    s += vec2<f32>(gw, gw * (x[base + j] - mu) * rs);
  }
  let c = wg_sum(t, s) * invD;
  for (var j = t; j < D; j += WG) {
    let xhat = (x[base + j] - mu) * rs;
    dx[base + j] = rs * (${gw} - c.x - xhat * c.y);
  }`;
  const bindings = [{ name: 'dx', write: true }, { name: 'g' }, { name: 'x' }, { name: 'mean' }, { name: 'rstd' }];
  const views = [dx, g, x, mean, rstd];
  if (weight) { bindings.push({ name: 'w' }); views.push(weight); }
  launch(dev, op, `bwd|${!!weight}`, main, bindings, views, rows, D, 0);
}
