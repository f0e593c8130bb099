{{ENABLE}}
// attention.wgsl: fused scaled-dot-product attention (FlashAttention-2 style), forward and backward.
//
//   q is (B, H, Tq, D), k and v are (B, H, Tk, D); S = scale * q k^T (never materialised),
//   P = softmax_rows(S + mask), O = P v (contiguous (B, H, Tq, D)).
//   Mask (per batch b): query i sees key j iff  pad(b, j) != 0  and  j < lim_b(i), where
//     lim_b(i) = clamp(max(pre_b, i + Tk - Tq + 1), 0, Tk)   (causal; pre_b = prefix length)
//     lim_b(i) = Tk                                          (not causal: the launcher passes pre = Tk)
//   A row that sees no key gets O = 0, L = -inf and zero gradients.
//
// Stages (the launcher compiles the prelude, everything before the first `//@stage` line, plus one
// section; fwd, dq and dkv also the `masks` section):
//   fwd    online softmax over the keys; O, and L_i = logsumexp_j S_ij (natural log) in stats[0 .. BH*Tq)
//   dec    fwd for one query row (Tq = 1, a KV-cache decode step): the lanes split the keys (see there);
//   decsg  the same on CPU adapters with subgroups: the lanes split the head dimension
//   delta  Delta_i = sum_d dO_id O_id into stats[BH*Tq .. 2*BH*Tq) (one invocation per row)
//   dq     over query rows, loops over keys: P_ij = exp(S_ij - L_i) recomputed, dP_ij = dO_i . v_j,
//          dS_ij = P_ij (dP_ij - Delta_i), dq_i = scale * sum_j dS_ij k_j
//   dkv    over key rows, loops over queries: dv_j = sum_i P_ij dO_i, dk_j = scale * sum_i dS_ij q_i;
//          dk and dv go to one buffer, dk at 0 and dv at BH*Tk*D
//   pack   a zero-padded contiguous (B, H, T, D4*4) copy of an operand that is not vec4-aligned
// FlashAttention-2 backward: no atomics, each gradient written once by the kernel that owns its row.
//
// Structure of fwd/dq/dkv: no workgroup memory, no barriers. The WG invocations of a workgroup own
// R rows each (row tile0 + r*WG + lane; queries for fwd/dq, keys for dkv), held in registers as vec4s
// with their accumulators (the launcher unrolls over r and the vec4 chunks c, see below). The other
// side is streamed in blocks of BLK rows:
//   sg     (BLK = WG = the subgroup size; `subgroups` feature) lane l loads row j0 + l of the block with
//          vec4 loads, then every row of the block reaches every lane by subgroupShuffle(x, t). Each
//          loaded element is used by the WG*R rows of the workgroup.
//   plain  (BLK = 1, portable) every lane loads row j0 itself (the same address for the workgroup).
// Why: on lavapipe (Mesa 25 llvmpipe, CPU SIMD lanes) a storage access whose address is not a
// compile-time constant is a per-lane loop with a branch per lane (~100 FMAs' worth, uniform address
// or not), while a subgroup shuffle is one vpermd and barriers are expensive. On real GPUs a
// shared-memory tiling would win: a third variant, picked per adapter by the launcher.
// fwd uses the online softmax per key: m' = max(m, s), a = a * exp(m - m') + exp(s - m') v.
// Causal skipping is per workgroup (uniform loop bounds): fwd/dq stop the key loop at the limit of the
// tile's last row, dkv starts the query loop at the first query that sees the tile's first key.
//
// Unrolling (by the launcher, so that every register index is a constant): a line `@xyz stmt`
// repeats stmt over the loop letters x, y, z (outermost first); `@for xyz` ... `@end` repeats a block,
// each copy in its own braces. Letters: d < D (sets $c = d / 4, $e = d % 4), c < D4 (vec4 chunks),
// e < 4 (components), r < R (rows per invocation). `$ru` is `$r` then `u`. Loads and stores stay in
// loops over c, r and the block whose bounds are read at run time on CPU adapters (N_D4, N_BLK, N_R
// below; constants elsewhere): one access site each, since each site compiles to a per-lane loop.
// Private variables declared inside a loop are always initialised explicitly: the implicit zero of a
// `var` is not repeated per iteration by every compiler (Dawn/Tint on lavapipe keeps the last value).
//
// Cost floor (causal halves the pairs): forward 4*D FLOPs + 2 exp per (query, visible key) pair;
// backward 8*D FLOPs + 1 exp for dq and 8*D + 1 exp for dk/dv per pair (S and dP recomputed in both).
// Memory O(T): q, k, v, dO read and O and the gradients written once per row; stats 2*BH*Tq floats;
// the streamed side is re-read once per tile of WG*R rows.
//
// params (u32 words): [0] B, [1] H, [2] Tq, [3] Tk, [4] scale (f32), [5] pre (i32, used without a prefix
//   tensor), [6] Tk - Tq (i32), [7] D4 = ceil(D / 4),
//   [8..13) q, [13..18) k, [18..23) v, [23..28) dO: offset, batch stride, head stride, row stride, dim
//   stride (in vec4 units for fwd/dq/dkv, whose operands are vec4 views; in floats for delta and pack),
//   [28..31) key-valid mask: offset, batch stride, key stride, [31] its mode (0 none, 1 f32, 2 i32),
//   [32..34) prefix tensor: offset, stride, [34] 1 if the prefix is that tensor (else word 5),
//   [35] BLK, [36] R.
// The mask and prefix bindings are always there (another input's buffer when unused): one pipeline
// serves every mask combination.
// pack: [0] n = B*H*T*D4*4, [1] H, [2] T, [3] D, then the source (in floats) at [8..13).

{{PARAMS}}
{{BINDINGS}}

const D: u32 = {{D}}u;
const D4: u32 = (D + 3u) / 4u;
const WG: u32 = {{WG}}u;
const BLK: u32 = {{BLK}}u;
const R: u32 = {{R}}u;
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;

// -inf built at run time (a constant-expression infinity is a WGSL compile error)
fn neg_inf() -> f32 { var u = 0xff800000u; return bitcast<f32>(u); }

// offset of row 0 of (b, h) of the strided tensor whose words start at w
fn tbase(w: u32, b: u32, h: u32) -> u32 { return word(w) + b * word(w + 1u) + h * word(w + 2u); }

// (b, h) of this workgroup; grid y/z fold B*H past the per-dimension limit
fn batch_head(wid: vec3u, nwg: vec3u) -> u32 { return wid.y + wid.z * nwg.y; }

// query i sees keys j < row_limit(i, pre) (padding aside); nondecreasing in i
fn row_limit(i: i32, pre: i32) -> i32 {
  return clamp(max(pre, i + bitcast<i32>(word(6u)) + 1), 0, i32(word(3u)));
}

// the first query that sees key j
fn first_query(j: u32, pre: i32) -> u32 {
  if (i32(j) < pre) { return 0u; }
  return u32(max(i32(j) - bitcast<i32>(word(6u)), 0));
}

//@stage masks

// key j of batch b is real (key-valid mask)
fn pad_ok(b: u32, j: u32) -> bool {
  let mode = word(31u); // 0: no mask, 1: f32 mask (-0.0 counts as 0), 2: i32 mask
  if (mode == 0u) { return true; }
  let bits = mask[word(28u) + b * word(29u) + j * word(30u)];
  return select(bits, bits & 0x7fffffffu, mode == 1u) != 0u;
}

// keys j < prefix_of(b) are visible to every query of batch b
fn prefix_of(b: u32) -> i32 {
  if (word(34u) == 0u) { return bitcast<i32>(word(5u)); }
  return prefix[word(32u) + b * word(33u)];
}

//@stage fwd
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let H = word(1u);
  let Tq = word(2u);
  let bh = batch_head(wid, nwg);
  if (bh >= word(0u) * H) { return; }
  let b = bh / H;
  let h = bh % H;
  let NEG_INF = neg_inf();
  let cs = wordf(4u) * LOG2E; // base-2 scores: exp(x) = exp2(x * log2(e))
  let pre = prefix_of(b);
  let lane = lid.x;
  let own = select(0u, lane, BLK > 1u); // the row of the block this lane loads
  let tile0 = wid.x * (WG * R);
  let qb = tbase(8u, b, h);
  let kb = tbase(13u, b, h);
  let kst = word(16u);
  let vb = tbase(18u, b, h);
  let vst = word(21u);
  let d4 = {{N_D4}};
  let nblk = {{N_BLK}};
  let rn = {{N_R}};
  var row: array<vec4<f32>, D4>;
  var row2: array<vec4<f32>, D4>;
  var rows: array<vec4<f32>, R * D4>;
  @r let i_$r = tile0 + $ru * WG + lane;
  @r let lim_$r = select(0, row_limit(i32(i_$r), pre), i_$r < Tq);
  for (var r = 0u; r < rn; r++) {
    let qo = qb + min(tile0 + r * WG + lane, Tq - 1u) * word(11u);
    for (var c = 0u; c < d4; c++) { rows[r * D4 + c] = q[qo + c]; }
  }
  @rc let q_$r_$c = rows[$ru * D4 + $cu] * cs;
  @rc var a_$r_$c = vec4<f32>(0.0);
  @r var m_$r = NEG_INF;
  @r var l_$r = 0.0;
  @r var p_$r = 0.0;
  @r var alpha_$r = 0.0;
  // keys past the limit of the tile's last row are masked for every row of the tile
  let kend = u32(row_limit(i32(min(tile0 + WG * R - 1u, Tq - 1u)), pre));
  for (var j0 = 0u; j0 < kend; j0 += BLK) {
    let jc = min(j0 + own, kend - 1u);
    let real = select(0u, 1u, j0 + own < kend && pad_ok(b, jc));
    let ko = kb + jc * kst;
    let vo = vb + jc * vst;
    for (var c = 0u; c < d4; c++) {
      row[c] = k[ko + c];
      row2[c] = v[vo + c];
    }
    // the keys of the block in turn
    for (var t = 0u; t < nblk; t++) {
      let ok = SHUFFLE(real, t) != 0u;
      let j = i32(j0 + t);
      @c let kk_$c = SHUFFLE(row[$c], t);
      @r var s_$r = 0.0;
      @cer s_$r = fma(q_$r_$c[$e], kk_$c[$e], s_$r);
      // ms = 0 while a row has seen no visible key (no -inf - -inf)
      @for r
        let sv = select(NEG_INF, s_$r, ok && j < lim_$r);
        let mn = max(m_$r, sv);
        let ms = select(mn, 0.0, mn == NEG_INF);
        alpha_$r = exp2(m_$r - ms);
        p_$r = exp2(sv - ms);
        m_$r = mn;
        l_$r = fma(l_$r, alpha_$r, p_$r);
      @end
      @c let vv_$c = SHUFFLE(row2[$c], t);
      @rc a_$r_$c = fma(vec4<f32>(p_$r), vv_$c, a_$r_$c * alpha_$r);
    }
  }
  var lse: array<f32, R>;
  @for r
    let inv = select(1.0 / l_$r, 0.0, l_$r == 0.0);
    @c rows[$ru * D4 + $cu] = a_$r_$c * inv;
    lse[$r] = select((m_$r + log2(l_$r)) * LN2, NEG_INF, l_$r == 0.0);
  @end
  for (var r = 0u; r < rn; r++) {
    let i = tile0 + r * WG + lane;
    if (i < Tq) {
      let o = bh * Tq + i;
      for (var d = 0u; d < d4 * 4u; d++) { if (d < D) { out[o * D + d] = rows[r * D4 + d / 4u][d % 4u]; } }
      stats[o] = lse[r];
    }
  }
}

//@stage dq
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let H = word(1u);
  let Tq = word(2u);
  let bh = batch_head(wid, nwg);
  if (bh >= word(0u) * H) { return; }
  let n = word(0u) * H * Tq;
  let b = bh / H;
  let h = bh % H;
  let scale = wordf(4u);
  let cs = scale * LOG2E;
  let pre = prefix_of(b);
  let lane = lid.x;
  let own = select(0u, lane, BLK > 1u);
  let tile0 = wid.x * (WG * R);
  let qb = tbase(8u, b, h);
  let kb = tbase(13u, b, h);
  let kst = word(16u);
  let vb = tbase(18u, b, h);
  let vst = word(21u);
  let gb = tbase(23u, b, h);
  let d4 = {{N_D4}};
  let nblk = {{N_BLK}};
  let rn = {{N_R}};
  var row: array<vec4<f32>, D4>;
  var row2: array<vec4<f32>, D4>;
  var rows: array<vec4<f32>, R * D4>;
  var rows2: array<vec4<f32>, R * D4>;
  var lses: array<f32, R>;
  var dls: array<f32, R>;
  @r let i_$r = tile0 + $ru * WG + lane;
  @r let lim_$r = select(0, row_limit(i32(i_$r), pre), i_$r < Tq);
  for (var r = 0u; r < rn; r++) {
    let ic = min(tile0 + r * WG + lane, Tq - 1u);
    let qo = qb + ic * word(11u);
    let go = gb + ic * word(26u);
    for (var c = 0u; c < d4; c++) {
      rows[r * D4 + c] = q[qo + c];
      rows2[r * D4 + c] = dout[go + c];
    }
    lses[r] = stats[bh * Tq + ic];
    dls[r] = stats[n + bh * Tq + ic];
  }
  @rc let q_$r_$c = rows[$ru * D4 + $cu] * cs;
  @rc let g_$r_$c = rows2[$ru * D4 + $cu];
  @r let lse_$r = lses[$r] * LOG2E;
  @r let dl_$r = dls[$r];
  @rc var dq_$r_$c = vec4<f32>(0.0);
  let kend = u32(row_limit(i32(min(tile0 + WG * R - 1u, Tq - 1u)), pre));
  for (var j0 = 0u; j0 < kend; j0 += BLK) {
    let jc = min(j0 + own, kend - 1u);
    let real = select(0u, 1u, j0 + own < kend && pad_ok(b, jc));
    let ko = kb + jc * kst;
    let vo = vb + jc * vst;
    for (var c = 0u; c < d4; c++) {
      row[c] = k[ko + c];
      row2[c] = v[vo + c];
    }
    for (var t = 0u; t < nblk; t++) {
      let ok = SHUFFLE(real, t) != 0u;
      let j = i32(j0 + t);
      @c let kk_$c = SHUFFLE(row[$c], t);
      @c let vv_$c = SHUFFLE(row2[$c], t);
      @r var s_$r = 0.0;
      @r var dp_$r = 0.0;
      @cer s_$r = fma(q_$r_$c[$e], kk_$c[$e], s_$r);
      @cer dp_$r = fma(g_$r_$c[$e], vv_$c[$e], dp_$r);
      @r let ds_$r = select(0.0, exp2(s_$r - lse_$r), ok && j < lim_$r) * (dp_$r - dl_$r);
      @rc dq_$r_$c = fma(vec4<f32>(ds_$r), kk_$c, dq_$r_$c);
    }
  }
  @rc rows[$ru * D4 + $cu] = dq_$r_$c * scale;
  for (var r = 0u; r < rn; r++) {
    let i = tile0 + r * WG + lane;
    if (i < Tq) {
      let o = (bh * Tq + i) * D;
      for (var d = 0u; d < d4 * 4u; d++) { if (d < D) { dq_out[o + d] = rows[r * D4 + d / 4u][d % 4u]; } }
    }
  }
}

//@stage dkv
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let B = word(0u);
  let H = word(1u);
  let Tq = word(2u);
  let Tk = word(3u);
  let bh = batch_head(wid, nwg);
  if (bh >= B * H) { return; }
  let n = B * H * Tq;
  let b = bh / H;
  let h = bh % H;
  let scale = wordf(4u);
  let cs = scale * LOG2E;
  let pre = prefix_of(b);
  let lane = lid.x;
  let own = select(0u, lane, BLK > 1u);
  let tile0 = wid.x * (WG * R);
  let qb = tbase(8u, b, h);
  let qst = word(11u);
  let kb = tbase(13u, b, h);
  let vb = tbase(18u, b, h);
  let gb = tbase(23u, b, h);
  let gst = word(26u);
  let d4 = {{N_D4}};
  let nblk = {{N_BLK}};
  let rn = {{N_R}};
  var row: array<vec4<f32>, D4>;
  var row2: array<vec4<f32>, D4>;
  var rows: array<vec4<f32>, R * D4>;
  var rows2: array<vec4<f32>, R * D4>;
  @r let j_$r = i32(tile0 + $ru * WG + lane);
  @r let real_$r = u32(j_$r) < Tk && pad_ok(b, min(u32(j_$r), Tk - 1u));
  for (var r = 0u; r < rn; r++) {
    let jc = min(tile0 + r * WG + lane, Tk - 1u);
    let ko = kb + jc * word(16u);
    let vo = vb + jc * word(21u);
    for (var c = 0u; c < d4; c++) {
      rows[r * D4 + c] = k[ko + c];
      rows2[r * D4 + c] = v[vo + c];
    }
  }
  @rc let k_$r_$c = rows[$ru * D4 + $cu] * cs;
  @rc let v_$r_$c = rows2[$ru * D4 + $cu];
  @rc var dk_$r_$c = vec4<f32>(0.0);
  @rc var dv_$r_$c = vec4<f32>(0.0);
  for (var i0 = first_query(tile0, pre); i0 < Tq; i0 += BLK) {
    let i = i0 + own;
    let ic = min(i, Tq - 1u);
    let qo = qb + ic * qst;
    let go = gb + ic * gst;
    for (var c = 0u; c < d4; c++) {
      row[c] = q[qo + c];
      row2[c] = dout[go + c];
    }
    let lse = stats[bh * Tq + ic] * LOG2E;
    let dl = stats[n + bh * Tq + ic];
    let lim = select(0, row_limit(i32(i), pre), i < Tq);
    // the queries of the block in turn
    for (var t = 0u; t < nblk; t++) {
      let lse_t = SHUFFLE(lse, t);
      let dl_t = SHUFFLE(dl, t);
      let lim_t = SHUFFLE(lim, t);
      @c let qq_$c = SHUFFLE(row[$c], t);
      @c let gg_$c = SHUFFLE(row2[$c], t);
      @r var s_$r = 0.0;
      @r var dp_$r = 0.0;
      @cer s_$r = fma(k_$r_$c[$e], qq_$c[$e], s_$r);
      @cer dp_$r = fma(v_$r_$c[$e], gg_$c[$e], dp_$r);
      @r let p_$r = select(0.0, exp2(s_$r - lse_t), real_$r && j_$r < lim_t);
      @r let ds_$r = p_$r * (dp_$r - dl_t);
      @rc dv_$r_$c = fma(vec4<f32>(p_$r), gg_$c, dv_$r_$c);
      @rc dk_$r_$c = fma(vec4<f32>(ds_$r), qq_$c, dk_$r_$c);
    }
  }
  let half = B * H * Tk * D;
  @rc rows[$ru * D4 + $cu] = dk_$r_$c * scale;
  @rc rows2[$ru * D4 + $cu] = dv_$r_$c;
  for (var r = 0u; r < rn; r++) {
    let j = tile0 + r * WG + lane;
    if (j < Tk) {
      let o = (bh * Tk + j) * D;
      for (var d = 0u; d < d4 * 4u; d++) {
        if (d < D) {
          dkv[o + d] = rows[r * D4 + d / 4u][d % 4u];
          dkv[half + o + d] = rows2[r * D4 + d / 4u][d % 4u];
        }
      }
    }
  }
}

//@stage delta
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let H = word(1u);
  let Tq = word(2u);
  let n = word(0u) * H * Tq;
  let row = gid.x + gid.y * nwg.x * WG;
  if (row >= n) { return; }
  let bh = row / Tq;
  let go = tbase(23u, bh / H, bh % H) + (row % Tq) * word(26u);
  let gsd = word(27u);
  var acc = 0.0;
  for (var d = 0u; d < D; d++) { acc = fma(dout[go + d * gsd], o[row * D + d], acc); }
  stats[n + row] = acc;
}

//@stage pack
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= word(0u)) { return; }
  let H = word(1u);
  let T = word(2u);
  let Dn = word(3u);
  let Dp = (Dn + 3u) / 4u * 4u;
  let d = idx % Dp;
  let row = idx / Dp;
  let bh = row / T;
  let o = tbase(8u, bh / H, bh % H) + (row % T) * word(11u) + min(d, Dn - 1u) * word(12u);
  dst[idx] = select(0.0, src[o], d < Dn);
}

//@stage dec
// Decode: one query row per (b, h) (Tq = 1, a KV-cache step). The row tiles of fwd would leave all
// lanes but one idle, so here the workgroup's WG lanes split the keys instead (lane l takes keys
// l, l + WG, ...), each keeping its own online softmax (m, l, acc); the WG partial states are then
// merged through workgroup memory: M = max m, L = sum l 2^(m - M), O = sum acc 2^(m - M) / L.
// Writes O and the row's logsumexp like fwd (the backward reads them unchanged).
var<workgroup> w_m: array<f32, WG>;
var<workgroup> w_l: array<f32, WG>;
var<workgroup> w_acc: array<vec4<f32>, WG * D4>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let H = word(1u);
  let bh = batch_head(wid, nwg);
  if (bh >= word(0u) * H) { return; } // uniform per workgroup
  let b = bh / H;
  let h = bh % H;
  let NEG_INF = neg_inf();
  let cs = wordf(4u) * LOG2E; // base-2 scores
  let lane = lid.x;
  let qo = tbase(8u, b, h);
  let kb = tbase(13u, b, h);
  let kst = word(16u);
  let vb = tbase(18u, b, h);
  let vst = word(21u);
  let d4 = {{N_D4}};
  var qv: array<vec4<f32>, D4>;
  var acc: array<vec4<f32>, D4>;
  for (var c = 0u; c < d4; c++) {
    qv[c] = q[qo + c] * cs;
    acc[c] = vec4<f32>(0.0);
  }
  var m = NEG_INF;
  var l = 0.0;
  let lim = u32(row_limit(0, prefix_of(b)));
  for (var j = lane; j < lim; j += WG) {
    if (!pad_ok(b, j)) { continue; }
    let ko = kb + j * kst;
    let vo = vb + j * vst;
    var s = 0.0;
    for (var c = 0u; c < d4; c++) { s += dot(qv[c], k[ko + c]); }
    let mn = max(m, s); // finite: s is
    let alpha = exp2(m - mn); // 0 for the lane's first key (m = -inf)
    let p = exp2(s - mn);
    l = fma(l, alpha, p);
    for (var c = 0u; c < d4; c++) { acc[c] = fma(vec4<f32>(p), v[vo + c], acc[c] * alpha); }
    m = mn;
  }
  w_m[lane] = m;
  workgroupBarrier();
  var M = NEG_INF;
  for (var t = 0u; t < WG; t++) { M = max(M, w_m[t]); }
  let f = select(exp2(m - M), 0.0, m == NEG_INF); // a lane that saw no key adds nothing
  w_l[lane] = l * f;
  for (var c = 0u; c < d4; c++) { w_acc[lane * D4 + c] = acc[c] * f; }
  workgroupBarrier();
  var L = 0.0;
  for (var t = 0u; t < WG; t++) { L += w_l[t]; }
  let inv = select(1.0 / L, 0.0, L == 0.0);
  for (var c = lane; c < d4; c += WG) {
    var sum = vec4<f32>(0.0);
    for (var t = 0u; t < WG; t++) { sum += w_acc[t * D4 + c]; }
    let o = sum * inv;
    for (var e = 0u; e < 4u; e++) { if (c * 4u + e < D) { out[bh * D + c * 4u + e] = o[e]; } }
  }
  if (lane == 0u) { stats[bh] = select((M + log2(L)) * LN2, NEG_INF, L == 0.0); }
}

//@stage decsg
// dec for CPU adapters (lavapipe), `subgroups` feature, WG = the subgroup size: one (b, h) row per
// workgroup, its lanes split the head dimension (lane l holds the vec4 chunks l, l + WG, ...) and the
// keys are walked in turn, each score summed across the lanes with subgroupAdd. Every lane then runs
// the same online softmax. Why not split the keys as `dec` does: there each lane loads whole key and
// value rows, and on lavapipe every storage access with a non-constant address is a per-lane loop;
// here a key costs two vec4 loads per lane.
const U: u32 = (D4 + WG - 1u) / WG;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let H = word(1u);
  let bh = batch_head(wid, nwg);
  if (bh >= word(0u) * H) { return; } // uniform per workgroup
  let b = bh / H;
  let h = bh % H;
  let NEG_INF = neg_inf();
  let cs = wordf(4u) * LOG2E; // base-2 scores
  let lane = lid.x;
  let qo = tbase(8u, b, h);
  let kb = tbase(13u, b, h);
  let kst = word(16u);
  let vb = tbase(18u, b, h);
  let vst = word(21u);
  let d4 = word(7u);
  var qv: array<vec4<f32>, U>;
  var acc: array<vec4<f32>, U>;
  for (var u = 0u; u < U; u++) {
    let c = lane + u * WG;
    qv[u] = select(vec4<f32>(0.0), q[qo + min(c, d4 - 1u)] * cs, c < d4);
    acc[u] = vec4<f32>(0.0);
  }
  var m = NEG_INF;
  var l = 0.0;
  let lim = u32(row_limit(0, prefix_of(b)));
  for (var j = 0u; j < lim; j++) {
    if (!pad_ok(b, j)) { continue; } // uniform: every lane is on key j
    let ko = kb + j * kst;
    let vo = vb + j * vst;
    var part = 0.0;
    for (var u = 0u; u < U; u++) { part += dot(qv[u], k[ko + min(lane + u * WG, d4 - 1u)]); }
    let s = subgroupAdd(part);
    let mn = max(m, s);
    let alpha = exp2(m - mn); // 0 at the first key (m = -inf)
    let p = exp2(s - mn);
    l = fma(l, alpha, p);
    for (var u = 0u; u < U; u++) { acc[u] = fma(vec4<f32>(p), v[vo + min(lane + u * WG, d4 - 1u)], acc[u] * alpha); }
    m = mn;
  }
  let inv = select(1.0 / l, 0.0, l == 0.0);
  for (var u = 0u; u < U; u++) {
    let c = lane + u * WG;
    if (c < d4) {
      let o = acc[u] * inv;
      for (var e = 0u; e < 4u; e++) { if (c * 4u + e < D) { out[bh * D + c * 4u + e] = o[e]; } }
    }
  }
  if (lane == 0u) { stats[bh] = select((m + log2(l)) * LN2, NEG_INF, l == 0.0); }
}
