// softmax.wgsl: softmax, log-softmax and logsumexp over the rows of a contiguous [rows, n] tensor,
// the softmax / log-softmax backward, and the token log-probs forward, in the online (streaming)
// form, for rows too long to keep in registers. Rows that fit (up to 2,048 on lavapipe, 1,024 on a
// GPU with 32-wide subgroups) take the row-in-registers bodies in softmax.ts on rows.wgsl: one read
// of the row and one exp per element instead of the two reads and two to three exps here.
//
// Forward (online form): each invocation keeps a running (max m, sum s of exp(x - m)) over its
// strided share of the row, the workgroup merges pairs (m, s) ⊕ (m', s') = (M, s e^{m-M} + s' e^{m'-M}),
// then one more pass writes y. Rows that are all -inf give softmax 0 (not NaN: fully masked attention
// rows) and logsumexp -inf (logSoftmax NaN, as PyTorch). A row holding a
// NaN or +inf gives NaN everywhere (logsumexp: NaN, or +inf when there is no NaN), as PyTorch: each
// lane notes the worst element it saw (bad_f: tested on the bits, compilers may assume finite floats).
//   softmax:    y = exp(x - m) / s            logSoftmax: y = x - m - log(s)
//   logsumexp:  out[row] = m + log(s)
// Backward, with y the forward output and g the upstream gradient:
//   softmax:    dx = y * (g - sum(g * y))     logSoftmax: dx = g - exp(y) * sum(g)
// One workgroup per row (2-D grid past 65535 rows). Floor: forward reads x twice and writes y once;
// backward reads y and g (twice) and writes dx.
//
// Token log-probs (the fused cross-entropy core): out[row] = x[row, t] - logsumexp(x[row]) and the
// logsumexp saved; the backward dx = g * (onehot(t) - exp(x - lse)) (a streaming body on rows.wgsl)
// recomputes the softmax: the (rows x vocab) probabilities are never stored.
//
// With a fixed subgroup size the workgroup is one subgroup and the merges are subgroupMax/Add
// (no barriers); otherwise a tree in workgroup memory.
//
// params (u32 words): [0] rows, [1] n, [2] out offset, [3] x (or y) offset, [4] g offset.
{{ENABLE}}
{{PARAMS}}
{{BINDINGS}}

const WG: u32 = {{WG}}u;
// -inf and NaN built at run time (constant-expression infinities and NaNs are WGSL compile errors)
fn neg_inf() -> f32 { var u = 0xff800000u; return bitcast<f32>(u); }
fn nan_f() -> f32 { var u = 0x7fc00000u; return bitcast<f32>(u); }
// 2 for a NaN, 1 for +inf, else 0
fn bad_f(x: f32) -> f32 {
  let b = bitcast<u32>(x);
  if ((b & 0x7fffffffu) > 0x7f800000u) { return 2.0; }
  return select(0.0, 1.0, b == 0x7f800000u);
}

var<workgroup> sm: array<f32, WG>;
var<workgroup> ss: array<f32, WG>;
var<workgroup> sb: array<f32, WG>;

// merges (m2, s2) into slot i of the workgroup arrays
fn merge(i: u32, m2: f32, s2: f32) {
  let NEG_INF = neg_inf();
  let m1 = sm[i];
  let m = max(m1, m2);
  if (m == NEG_INF) { return; }
  ss[i] = ss[i] * exp(m1 - m) + s2 * exp(m2 - m);
  sm[i] = m;
}

@compute @workgroup_size({{WG}})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let row = wid.x + wid.y * nwg.x;
  let rows = word(0u);
  let n = word(1u);
  if (row >= rows) { return; }
  let base = row * n;
  let t = lid.x;
  let NEG_INF = neg_inf();
{{MAIN}}
}
