// threefry.wgsl: Threefry-2x32 with 20 rounds (Salmon et al. 2011), shared by the kernel families
// that draw random numbers (random.wgsl, kernels/sample.ts); WGSL has no includes, so launchers paste
// this file into their templates' THREEFRY placeholder. kernels/random.ts has the same in JS.
//   threefry2x32(counter lo, counter hi, key0, key1) -> two uniform 32-bit words
//   uniform u in [0, 1): (x0 >> 8) * 2^-24

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
