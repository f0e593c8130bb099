// Launcher for layernorm.wgsl. All views contiguous with offset 0 (the op makes them so).
import type { Device } from '../tensor/device.js';
import { Params, View, bindingDecls, fill, fixedSubgroupSize, grid1d, paramsDecl, wgslSource } from './kernel.js';

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
  dev.dispatch(op, pipe, prm.bytes(), views.map((v) => v.buffer), grid1d(rows, 1, dev.limits.maxComputeWorkgroupsPerDimension));
}

/** out, x: [rows, D]; mean, rstd: [rows] (written); weight, bias: [D] or null. */
export function runLayerNorm(dev: Device, op: string, out: View, mean: View, rstd: View, x: View,
  weight: View | null, bias: View | null, rows: number, D: number, eps: number): void {
  const main = `
  var s = vec2<f32>(0.0);
  for (var j = t; j < D; j += WG) { s.x += x[base + j]; }
  let mu = wg_sum(t, s).x * invD;
  var q = vec2<f32>(0.0);
  for (var j = t; j < D; j += WG) { let d = x[base + j] - mu; q.x += d * d; }
  let rs = inverseSqrt(wg_sum(t, q).x * invD + wordf(2u));
  for (var j = t; j < D; j += WG) {
    out[base + j] = (x[base + j] - mu) * rs${weight ? ' * w[j]' : ''}${bias ? ' + b[j]' : ''};
  }
  if (t == 0u) { mean[row] = mu; rstd[row] = rs; }`;
  const bindings = [{ name: 'out', write: true }, { name: 'mean', write: true }, { name: 'rstd', write: true }, { name: 'x' }];
  const views = [out, mean, rstd, x];
  if (weight) { bindings.push({ name: 'w' }); views.push(weight); }
  if (bias) { bindings.push({ name: 'b' }); views.push(bias); }
  launch(dev, op, `fwd|${!!weight}|${!!bias}`, main, bindings, views, rows, D, eps);
}

/** dx, g, x: [rows, D]; weight: [D] or null; mean, rstd: [rows] from the forward. */
export function runLayerNormBackward(dev: Device, op: string, dx: View, g: View, x: View, weight: View | null,
  mean: View, rstd: View, rows: number, D: number): void {
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
