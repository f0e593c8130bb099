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

fn rotl(x: u32, r: u32) -> u32 { return (x << r) | (x >> (32u - r)); }

fn threefry2x32(c0: u32, c1: u32, k0: u32, k1: u32) -> vec2<u32> {
  let ks = array<u32, 3>(k0, k1, 0x1BD11BDAu ^ k0 ^ k1);
  let rot = array<u32, 8>(13u, 15u, 26u, 6u, 17u, 29u, 16u, 24u);
  var x0 = c0 + k0;
  var x1 = c1 + k1;
  for (var r = 0u; r < 20u; r++) {
    x0 += x1;
    x1 = rotl(x1, rot[r % 8u]);
    x1 ^= x0;
    if (r % 4u == 3u) {
      let s = (r + 1u) / 4u;
      x0 += ks[s % 3u];
      x1 += ks[(s + 1u) % 3u] + s;
    }
  }
  return vec2<u32>(x0, x1);
}

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
