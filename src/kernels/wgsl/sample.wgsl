// sample.wgsl: one decode step's draw and its bookkeeping, fused (nn/generate.ts). For row b of the
// logits x (B, V):
//   s_j  = (x_j + mask_j) / temperature - log(-log(u_j)),  u_j = uniform(key, b * V + j)
//          (temperature 0: s_j = x_j + mask_j, no noise)
//   id   = argmax_j s_j (the lowest j on ties)      the Gumbel-max trick: a draw from
//                                                    softmax((x + mask) / temperature), exactly
//   logp = x_id - logsumexp_j x_j                    the log-prob at temperature 1 (what RL needs)
// then ids[b, step] = id, logps[b, step] = logp, feed[b] = (done[b] != 0 ? pad : id) and, with an
// eos id, done[b] = max(done[b], id == eos). u_j is element b * V + j of the Threefry stream that
// rand([B, V], { seed }) draws, so the composed form (sampleTokens) picks the same ids.
// Replaces ~15 dispatches of the composed form (mask add, rand, div, log, neg, log, neg, add,
// argmax, token log-prob, three assigns, where, eq, maximum) with one: on lavapipe a dispatch costs
// ~0.2 ms of GPU time whatever its size.
//
// One workgroup per row; WG lanes stride the row (lane t: j = t, t + WG, ...), keep their best
// (s, j) and max x, and reduce in workgroup memory; a second pass sums exp(x - max).
// Floor: 2 * B * V * 4 bytes read and B * V Threefry draws (20 rounds each).
//
// params (u32 words): [0] B, [1] V, [2] x offset, [3] x row stride, [4] key0, [5] key1,
//   [6] temperature (f32 bits), [7] 1 if a mask is bound, [8] mask offset, [9] ids offset,
//   [10] ids row stride, [11] logps offset, [12] logps row stride, [13] done offset,
//   [14] feed offset, [15] pad id, [16] eos id, [17] 1 if eos is set, [18] step (the column written).
{{PARAMS}}
{{BINDINGS}}

{{THREEFRY}}

const WG: u32 = 64u;
var<workgroup> red_v: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;

// -inf built at run time (a constant-expression infinity is a WGSL compile error)
fn neg_inf() -> f32 { var u = 0xff800000u; return bitcast<f32>(u); }

fn reduce_max(v: f32, t: u32) -> f32 {
  workgroupBarrier();
  red_v[t] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (t < k) { red_v[t] = max(red_v[t], red_v[t + k]); }
    workgroupBarrier();
  }
  return red_v[0];
}

fn reduce_sum(v: f32, t: u32) -> f32 {
  workgroupBarrier();
  red_v[t] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (t < k) { red_v[t] = red_v[t] + red_v[t + k]; }
    workgroupBarrier();
  }
  return red_v[0];
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let b = wid.x + wid.y * nwg.x;
  if (b >= word(0u)) { return; } // the same for the whole workgroup: the barriers below stay uniform
  let V = word(1u);
  let t = lid.x;
  let xo = word(2u) + b * word(3u);
  let temperature = bitcast<f32>(word(6u));
  let masked = word(7u) != 0u;
  let NEG_INF = neg_inf();
  // pass 1: this lane's best score (lowest j on ties: j only grows) and max logit
  var m = NEG_INF;
  var best = NEG_INF;
  var bi = 0xffffffffu;
  for (var j = t; j < V; j += WG) {
    let x = X[xo + j];
    m = max(m, x);
    var s = x;
    if (masked) { s = s + mask[word(8u) + j]; }
    if (temperature > 0.0) {
      let r = threefry2x32(b * V + j, 0u, word(4u), word(5u));
      let u = f32(r.x >> 8u) * 5.9604644775390625e-8;
      s = s / temperature + -log(-log(u));
    }
    if (bi == 0xffffffffu || s > best) { best = s; bi = j; }
  }
  // argmax over the lanes: the larger score, the lower index on a tie (lanes past V hold no index)
  red_v[t] = best;
  red_i[t] = bi;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (t < k) {
      let v2 = red_v[t + k];
      let i2 = red_i[t + k];
      if (i2 != 0xffffffffu && (red_i[t] == 0xffffffffu || v2 > red_v[t] || (v2 == red_v[t] && i2 < red_i[t]))) {
        red_v[t] = v2;
        red_i[t] = i2;
      }
    }
    workgroupBarrier();
  }
  let id = red_i[0];
  // pass 2: logsumexp of the raw logits
  let mx = reduce_max(m, t);
  var acc = 0.0;
  for (var j = t; j < V; j += WG) { acc += exp(X[xo + j] - mx); }
  let total = reduce_sum(acc, t);
  if (t == 0u) {
    ids[word(9u) + b * word(10u) + word(18u)] = i32(id);
    logps[word(11u) + b * word(12u) + word(18u)] = X[xo + id] - (mx + log(total));
    let d = done[word(13u) + b];
    feed[word(14u) + b] = select(i32(id), i32(word(15u)), d != 0.0);
    if (word(17u) != 0u) { done[word(13u) + b] = max(d, select(0.0, 1.0, id == word(16u))); }
  }
}
