// rows.wgsl: the frame of the row-in-registers kernels (softmax family, layer norm, token log-probs).
//
// Each workgroup takes R consecutive rows of [rows, n] views (R = 1 on GPUs, up to 16 on CPU
// adapters where a workgroup has a fixed cost; 2-D grid past 65535 workgroups). The row is read as nv
// elements of type V: vec4<f32> when n and every row view's offset are multiples of 4, else f32.
// Lane t owns slots j = 0 .. NC-1, slot j being element j * WG + t (neighbouring lanes read
// neighbouring elements); a body loads its slots once into a private array<V, C>, reduces with
// row_max / row_sum, and writes from the registers: one read and one write of the row, where the
// streaming forms read it two or three times. On CPU adapters (lavapipe) the private arrays spill to
// L1, which is still cheaper than a second bounds-checked gather of the row.
//
// Reductions over the row's lanes: subgroupMax / subgroupAdd when the workgroup is one subgroup (a
// fixed subgroup size: no barriers), else a tree in workgroup memory (WG a power of two). Every lane
// calls them (uniform control flow).
//
// Bodies see: row, t, n, nv, NC (slot count: the constant C, declared const, which lavapipe unrolls
// and keeps in registers where a let of it did not; or read at run time where unrolled loops would
// compile for seconds), in_row(i) (constant true when every slot is inside the
// row), NEG_INF, nan_f(), bad_f(x) / hbad(v) (2 for a NaN, 1 for +inf), extra(i) (launcher-specific words) and off_<binding> (each binding's offset, in V
// for row views). A row view's row r starts at off + r * nv.
//
// Bodies may bring their own functions (HELPERS, e.g. threefry.wgsl for a sampler).
//
// params (u32 words): [0] rows, [1] n, [2] nv, [3] NC, [4] R, then one offset per binding, then the
// extras.
{{ENABLE}}
{{PARAMS}}
{{BINDINGS}}

const WG: u32 = {{WG}}u;
const C: u32 = {{C}}u;
{{ELEMENT}}

// -inf and NaN built at run time (constant-expression infinities and NaNs are WGSL compile errors)
fn neg_inf() -> f32 { var u = 0xff800000u; return bitcast<f32>(u); }
fn nan_f() -> f32 { var u = 0x7fc00000u; return bitcast<f32>(u); }
// 2 for a NaN, 1 for +inf, else 0, tested on the bits (compilers may assume finite floats): the
// softmax family turns a row holding either into NaN (logsumexp: NaN or +inf), as PyTorch
fn bad_f(x: f32) -> f32 {
  let b = bitcast<u32>(x);
  if ((b & 0x7fffffffu) > 0x7f800000u) { return 2.0; }
  return select(0.0, 1.0, b == 0x7f800000u);
}
fn extra(i: u32) -> u32 { return word({{EXTRA}}u + i); }
const FULL = {{FULL}};
fn in_row(i: u32, nv: u32) -> bool { return FULL || i < nv; }
{{REDUCE}}
{{HELPERS}}

@compute @workgroup_size({{WG}})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let group = wid.x + wid.y * nwg.x;
  let n = word(1u);
  let nv = word(2u);
  {{NC}}
  let t = lid.x;
  let NEG_INF = neg_inf();
{{OFFSETS}}
  let first = group * word(4u);
  let last = min(first + word(4u), word(0u));
  for (var row = first; row < last; row++) {
{{MAIN}}
  }
}
