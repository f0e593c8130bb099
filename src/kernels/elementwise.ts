// Launcher for elementwise.wgsl: out = EXPR(a, b, c) over strided, broadcast operands.
import type { Device } from '../gpu/device.js';
import type { DType } from '../gpu/dtype.js';
import { isContiguous } from '../gpu/shape.js';
import { Params, View, bindingDecls, fill, grid1d, paramsDecl, wgslSource } from './kernel.js';

/** An operand: a view already broadcast to the output's shape (stride 0 on broadcast dims), or a JS number. */
export type MapOperand = View | number;

export interface MapSpec {
  /** WGSL expression in a, b, c (the operands, converted to `compute`) and p (vec4 of f32 scalars). */
  expr: string;
  /** Type the operands are converted to before EXPR. */
  compute: DType;
}

const WG = 256;
const ELEMENTS_PER_INVOCATION = 4;
const RUN = 4;
const NAMES = ['a', 'b', 'c', 'd'] as const;

// contiguous like out, scalar (all strides 0), general strided, or the output itself (in-place)
type Mode = 'c' | 's' | 'g' | 'o';

function sameView(a: View, b: View): boolean {
  return a.buffer === b.buffer && a.offset === b.offset && a.strides.every((s, d) => s === b.strides[d]);
}

function modeOf(v: View, out: View, outContig: boolean): Mode {
  if (v.buffer === out.buffer) {
    // WebGPU forbids binding a buffer as both read and read_write: an in-place operand reads out[o0].
    if (!sameView(v, out)) throw new Error('elementwise: an operand overlaps the output with a different layout; copy it first');
    return 'o';
  }
  if (v.strides.every((s, d) => s === 0 || v.shape[d] === 1)) return 's';
  if (outContig && isContiguous(v.shape, v.strides) && v.shape.every((d, k) => d === out.shape[k])) return 'c';
  return 'g';
}

/**
 * Records out[...] = EXPR(operands...) for every element of `out` (which may itself be a strided view,
 * e.g. a slice of a larger tensor being written). `scalars` fill p.x.. first, then numeric operands.
 */
export function runMap(dev: Device, op: string, spec: MapSpec, out: View, operands: readonly MapOperand[], scalars: readonly number[] = []): void {
  const rank = out.shape.length;
  let n = 1;
  for (const d of out.shape) n *= d;
  if (n === 0) return;
  const outContig = isContiguous(out.shape, out.strides);
  // contiguous and scalar operands need no index walk, hence no shape: such a map runs as one flat
  // dimension, so maps of every rank share one pipeline (fewer compiles)
  if (rank !== 1 && outContig && operands.every((o) => typeof o === 'number' || modeOf(o, out, true) !== 'g')) {
    // (fields copied one by one: a Tensor passed as a View has its buffer behind a getter)
    const flatOut: View = { buffer: out.buffer, dtype: out.dtype, shape: [n], strides: [1], offset: out.offset };
    const flat = (o: View): View => (o.buffer === out.buffer ? flatOut
      : { buffer: o.buffer, dtype: o.dtype, shape: [n], strides: [modeOf(o, out, true) === 's' ? 0 : 1], offset: o.offset });
    runMap(dev, op, spec, flatOut, operands.map((o) => (typeof o === 'number' ? o : flat(o))), scalars);
    return;
  }
  const ops = operands.map((o, k) => ({ o, name: NAMES[k], mode: typeof o === 'number' ? null : modeOf(o, out, outContig) }));
  // vec4 form: every operand contiguous like the output (or a scalar, or the output itself), all
  // 16-byte aligned: each invocation moves vec4s (per-lane loads cost the same for a vec4 as for a
  // scalar on CPU adapters) and EXPR runs once per component
  // (not for EXPRs that read the element's offset o0, e.g. arange)
  const vec4 = outContig && n % 4 === 0 && out.offset % 4 === 0 && !/\bo0\b/.test(spec.expr) &&
    ops.every(({ o, mode }) => typeof o === 'number' || mode === 's' || mode === 'o' || (mode === 'c' && (o as View).offset % 4 === 0));
  const pvals = [...scalars];
  const views: { v: View; mode: Mode; name: string }[] = [];
  for (const { o, name, mode } of ops) {
    if (typeof o === 'number') pvals.push(o);
    else if (mode !== 'o') views.push({ v: o, mode: mode!, name });
  }
  if (pvals.length > 4) throw new Error(`${op}: at most 4 scalar parameters`);

  // params: numel, pad, scalars, shape, then (strides, offset) for out and each view operand
  const width = vec4 ? 4 : 1;
  const prm = new Params().u(n / width, 0, 0, 0);
  prm.f(...pvals, ...new Array(4 - pvals.length).fill(0));
  prm.u(...out.shape);
  const all = [{ v: out, mode: (outContig ? 'c' : 'g') as Mode, name: '0' }, ...views];
  const bases: number[] = [];
  for (const { v, mode } of all) {
    bases.push(prm.length);
    prm.u(...v.strides, mode === 'c' ? v.offset / width : v.offset);
  }
  const anyGeneral = all.some((a) => a.mode === 'g');
  // Strided operands whose innermost dim holds whole runs of RUN elements: an invocation walks the
  // index once per run and steps each offset by its innermost stride (a quarter of the div/mod walks
  // and workgroups). Contiguous/scalar-only maps: E elements per invocation, 256 apart.
  const runs = anyGeneral && rank > 0 && out.shape[rank - 1] % RUN === 0;
  const E = runs ? RUN : anyGeneral ? 1 : ELEMENTS_PER_INVOCATION;
  // the key holds everything the source depends on; the source is only built on a cache miss
  const operandKey = ops.map(({ o, mode }) => (typeof o === 'number' ? 'n' : mode! + o.dtype)).join(',');
  const key = `map|${vec4 ? 'vec4' : runs ? 'run' : 'E'}${E}|${spec.expr}|${spec.compute}|${out.dtype}|r${rank}|${outContig ? 'c' : 'g'}:${operandKey}|s${scalars.length}|${prm.vec4s}`;
  const pipe = dev.pipeline(key, op, () => {
    const loads: string[] = [];
    const lanes: string[] = []; // operands read as vec4 (vec4 form)
    let scalar = scalars.length;
    for (const { o, name, mode } of ops) {
      if (typeof o === 'number') {
        loads.push(`  let ${name} = ${spec.compute}(p[${scalar++}]);`);
        continue;
      }
      const src = mode === 'o' ? 'out[o0]' : `in_${name}[o_${name}]`;
      if (vec4 && mode !== 's') {
        loads.push(`  let ${name}4 = vec4<${spec.compute}>(${src});`);
        lanes.push(name);
      } else {
        loads.push(`  let ${name} = ${spec.compute}(${src});`);
      }
    }
    if (vec4) {
      loads.push(`  var r: vec4<${out.dtype}>;`);
      for (const k of ['x', 'y', 'z', 'w']) loads.push(`  { ${lanes.map((nm) => `let ${nm} = ${nm}4.${k}; `).join('')}r.${k} = ${out.dtype}(${spec.expr}); }`);
    }
    const index: string[] = [];
    const step: string[] = [];
    const general: { name: string; base: number }[] = [];
    all.forEach(({ mode, name }, k) => {
      const base = bases[k];
      const offWord = base + rank;
      const oname = name === '0' ? 'o0' : `o_${name}`;
      // with runs, the walk computes the run's first offsets (r*) and the loop steps them
      const iname = runs ? oname.replace(/^o/, 'r') : oname;
      if (mode === 'c') index.push(`  let ${iname} = i + word(${offWord}u);`);
      else if (mode === 's') index.push(`  let ${iname} = word(${offWord}u);`);
      else {
        index.push(`  var ${iname} = word(${offWord}u);`);
        general.push({ name: iname, base });
      }
      if (runs) {
        const stride = mode === 'c' ? 'e' : mode === 's' ? '0u' : `e * word(${base + rank - 1}u)`;
        step.push(`    let ${oname} = ${iname} + ${stride};`);
      }
    });
    if (general.length > 0) {
      index.push('  var rem = i;');
      for (let d = rank - 1; d >= 0; d--) {
        index.push(`  { let sz = word(${8 + d}u); let c = rem % sz; rem = rem / sz;`);
        index.push('    ' + general.map((g) => `${g.name} += c * word(${g.base + d}u);`).join(' ') + ' }');
      }
    }
    const store = vec4 ? '    out[o0] = r;' : `    out[o0] = ${out.dtype}(${spec.expr});`;
    const body = runs
      ? `  let i = ((wid.x + wid.y * nwg.x) * 256u + lid.x) * ${RUN}u;
  if (i >= word(0u)) { return; }
${index.join('\n')}
  for (var e = 0u; e < ${RUN}u; e++) {
${step.join('\n')}
${loads.join('\n')}
${store}
  }`
      : `  let first = (wid.x + wid.y * nwg.x) * 256u * ${E}u + lid.x;
  for (var e = 0u; e < ${E}u; e++) {
    let i = first + e * 256u;
    if (i >= word(0u)) { return; }
${index.join('\n')}
${loads.join('\n')}
${store}
  }`;
    return fill(wgslSource('elementwise'), {
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls([
        { name: 'out', type: vec4 ? `vec4<${out.dtype}>` : out.dtype, write: true },
        ...views.map((x) => ({ name: `in_${x.name}`, type: vec4 && x.mode === 'c' ? `vec4<${x.v.dtype}>` : x.v.dtype })),
      ]),
      MATH: wgslSource('math'),
      BODY: body,
    });
  });
  dev.dispatch(op, pipe, prm.u32s, [out.buffer, ...views.map((x) => x.v.buffer)], grid1d(n / width, WG * E, dev.limits.maxComputeWorkgroupsPerDimension));
}
