// random.wgsl: counter-based random numbers (Threefry-2x32, 20 rounds; Salmon et al. 2011, the
// generator JAX uses). Element i of a draw is a pure function of (key, counter + i), so results do
// not depend on the device, the dispatch shape or the order of execution.
//
//   uniform:   out = low + (high - low) * u,           u = (x0 >> 8) * 2^-24 in [0, 1)
//   normal:    out = mean + std * sqrt(-2 ln u1) cos(2 pi u2),  u1 in (0, 1] from x0, u2 from x1
//   bernoulli: out = 1 if u < p else 0                 (dropout's keep mask, p = keep probability)
//
// params (u32 words): [0] numel, [1] key0, [2] key1, [3] counter lo, [4] counter hi, [5] a (f32), [6] b (f32).

{{PARAMS}}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

{{THREEFRY}}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= word(0u)) { return; }
  let lo = word(3u);
  let c0 = lo + i;
  let c1 = word(4u) + select(0u, 1u, c0 < lo); // carry
  let x = threefry2x32(c0, c1, word(1u), word(2u));
  let a = wordf(5u);
  let b = wordf(6u);
{{MAIN}}
}
