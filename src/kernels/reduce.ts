// Launcher for reduce.wgsl (sum, prod, max, min, argmax, argmin over trailing dims of a strided view).
import type { Device } from '../gpu/device.js';
import { Params, View, bindingDecls, fill, fixedSubgroupSize, grid1d, isCpuAdapter, paramsDecl, wgslSource } from './kernel.js';

export type ReduceKind = 'sum' | 'prod' | 'max' | 'min' | 'argmax' | 'argmin';

const WG = 64;

/**
 * out (contiguous, the outer shape) = reduce of x over its last `redRank` dims, times `scale` (sum only).
 * x: strided view [outer..., reduced...]. `square`: sum x² instead of x (sum only: gradient norms).
 */
export function runReduce(dev: Device, op: string, kind: ReduceKind, out: View, x: View, redRank: number, scale = 1, square = false): void {
  if (square && kind !== 'sum') throw new Error(`${op}: square applies to sum only`);
  const ro = x.shape.length - redRank;
  const outN = x.shape.slice(0, ro).reduce((a, b) => a * b, 1);
  const R = x.shape.slice(ro).reduce((a, b) => a * b, 1);
  if (outN === 0) return;
  const T = x.dtype;
  const neg = T === 'f32' ? 'neg_inf()' : 'i32(-2147483647 - 1)';
  const pos = T === 'f32' ? 'pos_inf()' : 'i32(2147483647)';
  const init = { sum: `${T}(0)`, prod: `${T}(1)`, max: neg, argmax: neg, min: pos, argmin: pos }[kind];
  // a NaN beats every number (max, min and their indices propagate NaN, as PyTorch), the first NaN
  // the later ones; is_nan tests the bits (compilers may fold comparisons with a NaN)
  const nanFirst = T === 'f32' ? 'if (is_nan(v) || is_nan(acc)) { return is_nan(v) && (!is_nan(acc) || vi < ai); }\n  ' : '';
  const better = {
    sum: 'return false;',
    prod: 'return false;',
    max: `${nanFirst}return v > acc || (v == acc && vi < ai);`,
    argmax: `${nanFirst}return v > acc || (v == acc && vi < ai);`,
    min: `${nanFirst}return v < acc || (v == acc && vi < ai);`,
    argmin: `${nanFirst}return v < acc || (v == acc && vi < ai);`,
  }[kind];
  // the summand of an element v (its square for a sum of squares)
  const term = (v: string): string => (square ? `${v} * ${v}` : v);
  // sums accumulate in blocks of BLOCK terms per invocation (blk), each block then added to acc: a
  // long f32 sum stays accurate (a running sum of ones would stop growing at 2^24), and sums of at
  // most BLOCK terms per invocation are bit for bit what one accumulator gives
  const sumStep = `blk = blk + ${term('v')};
    nb++;
    if (nb == BLOCK) { acc = acc + blk; blk = ${T}(0); nb = 0u; }`;
  const step = kind === 'sum' ? sumStep : kind === 'prod' ? 'acc = acc * v;' : 'if (better(v, j, acc, ai)) { acc = v; ai = j; }';
  const blockDecl = kind === 'sum' ? `\n  var blk = ${T}(0);\n  var nb = 0u;` : '';
  const blockEnd = kind === 'sum' ? '\n  acc = acc + blk;' : '';
  const result = kind === 'argmax' || kind === 'argmin' ? 'i32(ai)' : kind === 'sum' && T === 'f32' ? 'acc * scale' : 'acc';
  // thread mode (an invocation per output) for short reductions, for many outputs, and on CPU
  // adapters when the reduced elements are strided (column sums such as bias gradients): there
  // neighbouring lanes read neighbouring outputs' elements and one workgroup serves 64 outputs,
  // where row mode pays a workgroup (a fixed cost on CPUs) per output for strided gathers
  const stridedColumns = x.strides[x.strides.length - 1] !== 1 && outN >= 64 && isCpuAdapter(dev);
  // products always run in thread mode (a serial loop per output: no tree of partial products)
  const rowMode = kind !== 'prod' && !(R <= 32 || (outN >= 4096 && R <= 512) || stridedColumns);
  const sg = fixedSubgroupSize(dev);
  const wg = rowMode && sg ? sg : WG;
  // one subgroup per output: subgroup reductions replace the barrier tree
  // (a lane holding a NaN wins: its first NaN is the lowest index among the NaN lanes)
  const subgroupMerge = kind === 'sum'
    ? '  let total = subgroupAdd(acc);\n  if (lid.x == 0u) { acc = total; out[word(2u) + o] = ' + result + '; }'
    : `  let lane_nan = is_nan(acc);
  let any_nan = subgroupAny(lane_nan);
  let best = ${kind === 'min' || kind === 'argmin' ? 'subgroupMin' : 'subgroupMax'}(select(acc, ${init}, lane_nan));
  let first = subgroupMin(select(0xffffffffu, ai, select(acc == best && !lane_nan, lane_nan, any_nan)));
  if (lid.x == 0u) { acc = select(best, nan_v(), any_nan); ai = first; out[word(2u) + o] = ${result}; }`;
  // row mode: one workgroup per output, each lane over its strided share of the reduced elements;
  // sums over a contiguous, 16-byte aligned block of reduced elements read it as vec4s instead
  // (no index walk per element, a quarter of the loads)
  const redShape = x.shape.slice(ro);
  const redStrides = x.strides.slice(ro);
  const contiguousBlock = redStrides.every((st, d) => redShape[d] === 1 || st === redShape.slice(d + 1).reduce((a, b) => a * b, 1));
  const vec4Rows = rowMode && kind === 'sum' && T === 'f32' && contiguousBlock && R % 4 === 0 && x.offset % 4 === 0 &&
    x.strides.slice(0, ro).every((st) => st % 4 === 0);
  const laneLoop = vec4Rows ? `  let o = wid.x + wid.y * nwg.x;
  if (o >= outN) { return; }
  let base4 = outer_offset(o) / 4u;
  var acc4 = vec4<f32>(0.0);
  var blk4 = vec4<f32>(0.0);
  var nb = 0u;
  for (var j = lid.x; j < R / 4u; j += WG) {
    let v = x[base4 + j];
    blk4 = blk4 + ${term('v')};
    nb++;
    if (nb == BLOCK) { acc4 = acc4 + blk4; blk4 = vec4<f32>(0.0); nb = 0u; }
  }
  acc4 = acc4 + blk4;
  var acc = (acc4.x + acc4.y) + (acc4.z + acc4.w);
  var ai = 0xffffffffu;` : `  let o = wid.x + wid.y * nwg.x;
  if (o >= outN) { return; }
  let base = outer_offset(o);
  var acc = ${init};
  var ai = 0xffffffffu;${blockDecl}
  for (var j = lid.x; j < R; j += WG) {
    let v = x[base + red_offset(j)];
    ${step}
  }${blockEnd}`;
  const body = rowMode && sg
    ? `${laneLoop}
${subgroupMerge}`
    : rowMode
    ? `${laneLoop}
  sv[lid.x] = acc;
  si[lid.x] = ai;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      let v = sv[lid.x + s];
      let vi = si[lid.x + s];
      ${kind === 'sum' ? 'sv[lid.x] = sv[lid.x] + v;' : 'if (better(v, vi, sv[lid.x], si[lid.x])) { sv[lid.x] = v; si[lid.x] = vi; }'}
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) { acc = sv[0]; ai = si[0]; out[word(2u) + o] = ${result}; }`
    : `  let o = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (o >= outN) { return; }
  let base = outer_offset(o);
  var acc = ${init};
  var ai = 0xffffffffu;${blockDecl}
  for (var j = 0u; j < R; j++) {
    let v = x[base + red_offset(j)];
    ${step}
  }${blockEnd}
  out[word(2u) + o] = ${result};`;
  // column sums of 16-byte aligned rows ([C, R] views with unit outer stride: sum(0) of a contiguous
  // [R, C], bias gradients) in thread mode: each invocation sums a vec4 of columns down the rows
  const vec4Columns = !rowMode && kind === 'sum' && T === 'f32' && ro === 1 && redRank === 1 && x.strides[0] === 1 &&
    x.strides[1] % 4 === 0 && outN % 4 === 0 && x.offset % 4 === 0 && out.offset % 4 === 0;
  const columnBody = `  let c4 = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (c4 * 4u >= outN) { return; }
  let s4 = word(8u) / 4u;
  var at = word(4u) / 4u + c4;
  var acc = vec4<f32>(0.0);
  var blk = vec4<f32>(0.0);
  var nb = 0u;
  for (var j = 0u; j < R; j++) {
    let v = x[at];
    blk = blk + ${term('v')};
    nb++;
    if (nb == BLOCK) { acc = acc + blk; blk = vec4<f32>(0.0); nb = 0u; }
    at += s4;
  }
  acc = acc + blk;
  out[word(2u) / 4u + c4] = acc * scale;`;
  const prm = new Params().u(outN, R, out.offset).f(scale).u(x.offset, ...x.shape.slice(0, ro), ...x.strides.slice(0, ro), ...x.shape.slice(ro), ...x.strides.slice(ro));
  const key = `reduce|${kind}${square ? '²' : ''}|${T}|${out.dtype}|${ro}|${redRank}|${vec4Columns ? 'columns4' : vec4Rows ? 'rows4' : rowMode}|${wg}|${rowMode && sg ? 'subgroup' : ''}|${prm.vec4s}`;
  const pipe = dev.pipeline(key, op, () =>
    fill(wgslSource('reduce'), {
      ENABLE: rowMode && sg ? 'enable subgroups;' : '',
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls([{ name: 'out', type: vec4Columns ? 'vec4<f32>' : out.dtype, write: true }, { name: 'x', type: vec4Columns || vec4Rows ? 'vec4<f32>' : T }]),
      WG: wg, RO: ro, RR: redRank, T, BETTER: better, MAIN: vec4Columns ? columnBody : body,
      IS_NAN: T === 'f32' ? 'return (bitcast<u32>(a) & 0x7fffffffu) > 0x7f800000u;' : 'return false;',
    }),
  );
  const groups = rowMode ? grid1d(outN, 1, dev.limits.maxComputeWorkgroupsPerDimension)
    : grid1d(vec4Columns ? outN / 4 : outN, WG, dev.limits.maxComputeWorkgroupsPerDimension);
  dev.dispatch(op, pipe, prm.u32s, [out.buffer, x.buffer], groups);
}
