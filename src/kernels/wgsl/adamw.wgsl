// adamw.wgsl: the fused AdamW step for one parameter tensor, in place (Loshchilov & Hutter 2019).
//
//   if skip != 0: nothing (p, m, v stay bit for bit: a step with a non-finite loss or gradient norm)
//   g  = grad * clip                      clip = min(1, max_norm / (||grads||_2 + 1e-6)), read from a
//                                         GPU buffer (global-norm clipping without a readback; 1 if off)
//   m  = b1 * m + (1 - b1) * g
//   v  = b2 * v + (1 - b2) * g^2
//   p  = p - lr * (wd * p + (m / bc1) / (sqrt(v / bc2) + eps))    bc1 = 1 - b1^n, bc2 = 1 - b2^n
//
// skip, clip and the bias corrections (bc1, bc2) are GPU buffers written by the optimizer's small
// per-step maps: n counts the updates actually applied (skipped steps leave it), so no readback is
// needed to know whether a step was skipped.
//
// p, m, v, grad are contiguous (n,), read as V = vec4<f32> when n % 4 == 0 (else f32; word 0 counts
// V elements). Each invocation does 4 of them, 256 apart (the scalars and the
// clip coefficient read once for them, a quarter of the workgroups); floor: reads p, m, v, grad and
// writes p, m, v: 28 bytes per element.
//
// params (u32 words): [0] n, [1] unused, [2] lr, [3] b1, [4] b2, [5] eps, [6] weight decay (f32).

{{PARAMS}}
alias V = {{V}};
@group(0) @binding(1) var<storage, read_write> p: array<V>;
@group(0) @binding(2) var<storage, read_write> m: array<V>;
@group(0) @binding(3) var<storage, read_write> v: array<V>;
@group(0) @binding(4) var<storage, read> grad: array<V>;
@group(0) @binding(5) var<storage, read> clip: array<f32>;
@group(0) @binding(6) var<storage, read> skip: array<f32>;
@group(0) @binding(7) var<storage, read> bc: array<f32>;

const E: u32 = 4u;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  if (skip[0] != 0.0) { return; }
  let first = (wid.x + wid.y * nwg.x) * 256u * E + lid.x;
  let n = word(0u);
  let lr = wordf(2u); let b1 = wordf(3u); let b2 = wordf(4u); let eps = wordf(5u); let wd = wordf(6u);
  let bc1 = bc[0]; let bc2 = bc[1];
  let c = clip[0];
  for (var e = 0u; e < E; e++) {
    let i = first + e * 256u;
    if (i >= n) { return; }
    let g = grad[i] * c;
    let mi = b1 * m[i] + (1.0 - b1) * g;
    let vi = b2 * v[i] + (1.0 - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let pi = p[i];
    p[i] = pi - lr * (wd * pi + (mi / bc1) / (sqrt(vi / bc2) + eps));
  }
}
