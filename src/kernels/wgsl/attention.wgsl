{{ENABLE}}
// attention.wgsl: fused scaled-dot-product attention (FlashAttention-2 style), forward and backward.
//
//   q is (B, H, Tq, D), k and v are (B, H, Tk, D), any strides (five words per tensor below).
//   S = scale * q k^T (never materialised),  P = softmax_rows(S + mask),  O = P v.
//   Mask (per batch b): query i sees key j iff  pad(b, j) != 0  and  j < lim_b(i), where
//     lim_b(i) = clamp(max(pre_b, i + Tk - Tq + 1), 0, Tk)   (causal; pre_b = prefix length)
//     lim_b(i) = Tk                                          (not causal: the launcher passes pre = Tk)
//   A row that sees no key gets O = 0, L = -inf and zero gradients.
//
// Stages (the launcher compiles the prelude, everything before the first `//@stage` line, plus one
// section; the attention stages also the `masks` section). Forward: O (contiguous) and L_i = logsumexp_j S_ij (natural log) into stats[0 .. BH*Tq).
// Backward (FlashAttention-2, P_ij = exp(S_ij - L_i) recomputed, no atomics):
//   delta  Delta_i = sum_d dO_id O_id into stats[BH*Tq .. 2*BH*Tq)      (one invocation per row)
//   dq     parallel over query rows, loops over keys:  dP_ij = dO_i . v_j,  dS_ij = P_ij (dP_ij - Delta_i),
//          dq_i = scale * sum_j dS_ij k_j
//   dkv    parallel over key rows, loops over queries: dv_j = sum_i P_ij dO_i,  dk_j = scale * sum_i dS_ij q_i;
//          dk and dv go to one buffer: dk at 0, dv at BH*Tk*D
// Two variants of fwd/dq/dkv, no workgroup memory and no barriers in either:
//   sg     (fwd_sg, dq_sg, dkv_sg; needs the `subgroups` feature and a fixed subgroup size SG = the
//          workgroup size) each invocation owns R rows (row tile0 + r*SG + lane), kept in registers as
//          vec4s. The other side is streamed in blocks of SG rows: every lane loads one row of the block
//          with vec4 loads, then the rows are passed around with subgroupShuffle(x, constant lane).
//          Loads per block: 2*D/4 vec4 per lane, reused by SG*R rows; FMAs per block: 16*R*D (fwd).
//          The scores of a block stay in registers, and the online softmax rescales once per block.
//          Operands are vec4 views (offsets and strides in vec4 units; the `pack` stage makes padded
//          copies of the others, zeros past D).
//   regs   (fwd, dq, dkv; portable) one row per invocation, one scalar register per element; the other
//          side's rows are loaded with addresses uniform over the workgroup. Online softmax with a lazy
//          shift (the running shift moves only when a score exceeds it by more than 8, base 2).
// Why shuffles: on lavapipe (Mesa llvmpipe, CPU SIMD) a storage load whose address is not a constant is
// a per-lane loop with a branch per lane (~100x an FMA), whether or not the address is uniform, while a
// subgroup shuffle is one vpermd; barriers are expensive too. On GPUs shared-memory tiles would win: that
// would be a third variant picked per adapter by the launcher.
// Causal skipping is per workgroup (uniform loop bounds): fwd/dq stop the key loop at the limit of the
// tile's last row, dkv starts the query loop at the first query that sees the tile's first key.
//
// Unrolling (done by the launcher, so that every register index is a constant): a line `@xyz stmt`
// repeats stmt over the loop letters x, y, z (outermost first); `@for xyz` ... `@end` repeats a block,
// each copy in its own braces. Letters: d < D (defines $c = d / 4, $e = d % 4), c < D4 (vec4 chunks),
// e < 4 (components), t < SG (lanes of a block), r < R (rows per invocation). `$du` is `$d` then `u`.
// Private variables declared inside a loop are always initialised explicitly: the implicit zero of a
// `var` is not repeated per iteration by every compiler (Dawn/Tint on lavapipe keeps the last value).
//
// Cost floor (causal halves the pairs): forward 4*D FLOPs + 1 exp per (query, visible key) pair;
// backward 8*D FLOPs + 1 exp for dq and 8*D + 1 exp for dk/dv per pair (S and dP recomputed in both).
// Memory O(T): q, k, v, dO read and O and the gradients written once per row; stats 2*BH*Tq floats;
// the streamed side is re-read once per tile (SG*R rows for sg, WG rows for regs).
//
// params (u32 words): [0] B, [1] H, [2] Tq, [3] Tk, [4] scale (f32), [5] pre (i32, used without a prefix
//   tensor), [6] Tk - Tq (i32), [7] D4 = ceil(D / 4),
//   [8..13) q, [13..18) k, [18..23) v, [23..28) dO: offset, batch stride, head stride, row stride, dim stride,
//   [28..31) key padding mask: offset, batch stride, key stride, [31] its mode (0 none, 1 f32, 2 i32),
//   [32..34) prefix tensor: offset, stride, [34] 1 if the prefix is that tensor (else word 5),
//   [35] SG (the block loops' bound, read at run time so that they stay loops).
// The mask and prefix bindings are always there (another input's buffer when unused): one pipeline
// serves every mask combination.
// pack: [0] n = B*H*T*D4*4, [1] H, [2] T, [3] D, then the source at [8..13).

{{PARAMS}}
{{BINDINGS}}

const D: u32 = {{D}}u;
const WG: u32 = {{WG}}u;
const SG: u32 = {{WG}}u;
const R: u32 = {{R}}u;
const D4: u32 = (D + 3u) / 4u;
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;

// -inf built at run time (a constant-expression infinity is a WGSL compile error)
fn neg_inf() -> f32 { var u = 0xff800000u; return bitcast<f32>(u); }

// offset of row 0 of (b, h) of the strided tensor whose words start at w
fn tbase(w: u32, b: u32, h: u32) -> u32 { return word(w) + b * word(w + 1u) + h * word(w + 2u); }

// query i sees keys j < row_limit(i, pre) (padding aside); nondecreasing in i
fn row_limit(i: i32, pre: i32) -> i32 {
  return clamp(max(pre, i + bitcast<i32>(word(6u)) + 1), 0, i32(word(3u)));
}

// (b, h) of this workgroup; grid y/z fold B*H past the per-dimension limit
fn batch_head(wid: vec3u, nwg: vec3u) -> u32 { return wid.y + wid.z * nwg.y; }

// the first query that sees key j (row_limit is nondecreasing in i)
fn first_query(j: u32, pre: i32) -> u32 {
  if (i32(j) < pre) { return 0u; }
  return u32(max(i32(j) - bitcast<i32>(word(6u)), 0));
}

//@stage masks
// (included by fwd, dq, dkv and their sg variants, which bind `mask` and `prefix`)

// key j of batch b is real (key padding mask)
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

//@stage fwd_sg
@compute @workgroup_size(SG)
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
  let tile0 = wid.x * (SG * R);
  let qb = tbase(8u, b, h);
  let kb = tbase(13u, b, h);
  let kst = word(16u);
  let vb = tbase(18u, b, h);
  let vst = word(21u);
  let d4 = word(7u);
  let sg = word(35u);
  var row: array<vec4<f32>, D4>;
  var row2: array<vec4<f32>, D4>;
  @r let i_$r = tile0 + $ru * SG + lane;
  @r let lim_$r = select(0, row_limit(i32(i_$r), pre), i_$r < Tq);
  @rc var q_$r_$c: vec4<f32>;
  @for r
    let qo = qb + min(i_$r, Tq - 1u) * word(11u);
    for (var c = 0u; c < d4; c++) { row[c] = q[qo + c]; }
    @c q_$r_$c = row[$c] * cs;
  @end
  @rc var a_$r_$c = vec4<f32>(0.0);
  @r var m_$r = NEG_INF;
  @r var l_$r = 0.0;
  @r var p_$r = 0.0;
  @r var alpha_$r = 0.0;
  // keys past the limit of the tile's last row are masked for every row of the tile
  let kend = u32(row_limit(i32(min(tile0 + SG * R - 1u, Tq - 1u)), pre));
  for (var j0 = 0u; j0 < kend; j0 += SG) {
    // this lane's key of the block
    let jc = min(j0 + lane, kend - 1u);
    let real = select(0u, 1u, j0 + lane < kend && pad_ok(b, jc));
    let ko = kb + jc * kst;
    let vo = vb + jc * vst;
    for (var c = 0u; c < d4; c++) {
      row[c] = k[ko + c];
      row2[c] = v[vo + c];
    }
    // every key of the block in turn, shuffled from its lane
    for (var t = 0u; t < sg; t++) {
      let ok = subgroupShuffle(real, t) != 0u;
      let j = i32(j0 + t);
      @c let kk_$c = subgroupShuffle(row[$c], t);
      @r var s_$r = 0.0;
      @cer s_$r = fma(q_$r_$c[$e], kk_$c[$e], s_$r);
      // online softmax; ms = 0 while a row has seen no visible key (no -inf - -inf)
      @for r
        let sv = select(NEG_INF, s_$r, ok && j < lim_$r);
        let mn = max(m_$r, sv);
        let ms = select(mn, 0.0, mn == NEG_INF);
        alpha_$r = exp2(m_$r - ms);
        p_$r = exp2(sv - ms);
        m_$r = mn;
        l_$r = fma(l_$r, alpha_$r, p_$r);
      @end
      @c let vv_$c = subgroupShuffle(row2[$c], t);
      @rc a_$r_$c = fma(vec4<f32>(p_$r), vv_$c, a_$r_$c * alpha_$r);
    }
  }
  @for r
    let inv = select(1.0 / l_$r, 0.0, l_$r == 0.0);
    @c row[$c] = a_$r_$c * inv;
    if (i_$r < Tq) {
      let o = bh * Tq + i_$r;
      for (var d = 0u; d < d4 * 4u; d++) { if (d < D) { out[o * D + d] = row[d / 4u][d % 4u]; } }
      stats[o] = select((m_$r + log2(l_$r)) * LN2, NEG_INF, l_$r == 0.0);
    }
  @end
}

//@stage dq_sg
@compute @workgroup_size(SG)
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
  let tile0 = wid.x * (SG * R);
  let qb = tbase(8u, b, h);
  let kb = tbase(13u, b, h);
  let kst = word(16u);
  let vb = tbase(18u, b, h);
  let vst = word(21u);
  let gb = tbase(23u, b, h);
  let d4 = word(7u);
  let sg = word(35u);
  var row: array<vec4<f32>, D4>;
  var row2: array<vec4<f32>, D4>;
  @r let i_$r = tile0 + $ru * SG + lane;
  @r let ic_$r = min(i_$r, Tq - 1u);
  @r let lim_$r = select(0, row_limit(i32(i_$r), pre), i_$r < Tq);
  @rc var q_$r_$c: vec4<f32>;
  @rc var g_$r_$c: vec4<f32>;
  @for r
    let qo = qb + ic_$r * word(11u);
    let go = gb + ic_$r * word(26u);
    for (var c = 0u; c < d4; c++) {
      row[c] = q[qo + c];
      row2[c] = dout[go + c];
    }
    @c q_$r_$c = row[$c] * cs;
    @c g_$r_$c = row2[$c];
  @end
  @rc var dq_$r_$c = vec4<f32>(0.0);
  @r let lse_$r = stats[bh * Tq + ic_$r] * LOG2E;
  @r let dl_$r = stats[n + bh * Tq + ic_$r];
  let kend = u32(row_limit(i32(min(tile0 + SG * R - 1u, Tq - 1u)), pre));
  for (var j0 = 0u; j0 < kend; j0 += SG) {
    let jc = min(j0 + lane, kend - 1u);
    let real = select(0u, 1u, j0 + lane < kend && pad_ok(b, jc));
    let ko = kb + jc * kst;
    let vo = vb + jc * vst;
    for (var c = 0u; c < d4; c++) {
      row[c] = k[ko + c];
      row2[c] = v[vo + c];
    }
    for (var t = 0u; t < sg; t++) {
      let ok = subgroupShuffle(real, t) != 0u;
      let j = i32(j0 + t);
      @c let kk_$c = subgroupShuffle(row[$c], t);
      @c let vv_$c = subgroupShuffle(row2[$c], t);
      @r var s_$r = 0.0;
      @r var dp_$r = 0.0;
      @cer s_$r = fma(q_$r_$c[$e], kk_$c[$e], s_$r);
      @cer dp_$r = fma(g_$r_$c[$e], vv_$c[$e], dp_$r);
      @r let ds_$r = select(0.0, exp2(s_$r - lse_$r), ok && j < lim_$r) * (dp_$r - dl_$r);
      @rc dq_$r_$c = fma(vec4<f32>(ds_$r), kk_$c, dq_$r_$c);
    }
  }
  @for r
    @c row[$c] = dq_$r_$c * scale;
    if (i_$r < Tq) {
      let o = (bh * Tq + i_$r) * D;
      for (var d = 0u; d < d4 * 4u; d++) { if (d < D) { dq_out[o + d] = row[d / 4u][d % 4u]; } }
    }
  @end
}

//@stage dkv_sg
@compute @workgroup_size(SG)
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
  let tile0 = wid.x * (SG * R);
  let qb = tbase(8u, b, h);
  let qst = word(11u);
  let kb = tbase(13u, b, h);
  let vb = tbase(18u, b, h);
  let gb = tbase(23u, b, h);
  let gst = word(26u);
  let d4 = word(7u);
  let sg = word(35u);
  var row: array<vec4<f32>, D4>;
  var row2: array<vec4<f32>, D4>;
  @r let j_$r = i32(tile0 + $ru * SG + lane);
  @r let jc_$r = min(u32(j_$r), Tk - 1u);
  @r let real_$r = u32(j_$r) < Tk && pad_ok(b, jc_$r);
  @rc var k_$r_$c: vec4<f32>;
  @rc var v_$r_$c: vec4<f32>;
  @for r
    let ko = kb + jc_$r * word(16u);
    let vo = vb + jc_$r * word(21u);
    for (var c = 0u; c < d4; c++) {
      row[c] = k[ko + c];
      row2[c] = v[vo + c];
    }
    @c k_$r_$c = row[$c] * cs;
    @c v_$r_$c = row2[$c];
  @end
  @rc var dk_$r_$c = vec4<f32>(0.0);
  @rc var dv_$r_$c = vec4<f32>(0.0);
  for (var i0 = first_query(tile0, pre); i0 < Tq; i0 += SG) {
    // this lane's query of the block
    let i = i0 + lane;
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
    // every query of the block in turn, shuffled from its lane
    for (var t = 0u; t < sg; t++) {
      let lse_t = subgroupShuffle(lse, t);
      let dl_t = subgroupShuffle(dl, t);
      let lim_t = subgroupShuffle(lim, t);
      @c let qq_$c = subgroupShuffle(row[$c], t);
      @c let gg_$c = subgroupShuffle(row2[$c], t);
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
  @for r
    @c row[$c] = dk_$r_$c * scale;
    @c row2[$c] = dv_$r_$c;
    if (u32(j_$r) < Tk) {
      let o = (bh * Tk + u32(j_$r)) * D;
      for (var d = 0u; d < d4 * 4u; d++) {
        if (d < D) {
          dkv[o + d] = row[d / 4u][d % 4u];
          dkv[half + o + d] = row2[d / 4u][d % 4u];
        }
      }
    }
  @end
}

//@stage pack
// dst (contiguous (B, H, T, D4*4), vec4-aligned) = src (strided), zeros past D
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
  let c = wordf(4u) * LOG2E;
  let pre = prefix_of(b);
  let tile0 = wid.x * WG;
  let i = tile0 + lid.x;
  let lim = select(0, row_limit(i32(i), pre), i < Tq);
  let qo = tbase(8u, b, h) + min(i, Tq - 1u) * word(11u);
  let qsd = word(12u);
  let kb = tbase(13u, b, h);
  let kst = word(16u);
  let ksd = word(17u);
  let vb = tbase(18u, b, h);
  let vst = word(21u);
  let vsd = word(22u);
  @d let q$d = q[qo + $du * qsd] * c;
  @d var a$d = 0.0;
  var m = NEG_INF;
  var l = 0.0;
  let kend = u32(row_limit(i32(min(tile0 + WG - 1u, Tq - 1u)), pre));
  for (var j = 0u; j < kend; j++) {
    let ko = kb + j * kst;
    var s0 = 0.0;
    var s1 = 0.0;
    var s2 = 0.0;
    var s3 = 0.0;
    @d s$e = fma(q$d, k[ko + $du * ksd], s$e);
    let s = (s0 + s1) + (s2 + s3);
    let vis = i32(j) < lim && pad_ok(b, j);
    if (vis && s > m + 8.0) {
      let alpha = exp2(m - s);
      m = s;
      l *= alpha;
      @d a$d *= alpha;
    }
    let p = select(0.0, exp2(s - m), vis);
    l += p;
    let vo = vb + j * vst;
    @d a$d = fma(p, v[vo + $du * vsd], a$d);
  }
  if (i >= Tq) { return; }
  let row = bh * Tq + i;
  let inv = select(1.0 / l, 0.0, l == 0.0);
  @d out[row * D + $du] = a$d * inv;
  stats[row] = select((m + log2(l)) * LN2, NEG_INF, l == 0.0);
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
  let pre = prefix_of(b);
  let tile0 = wid.x * WG;
  let i = tile0 + lid.x;
  let ic = min(i, Tq - 1u);
  let lim = select(0, row_limit(i32(i), pre), i < Tq);
  let qo = tbase(8u, b, h) + ic * word(11u);
  let qsd = word(12u);
  let go = tbase(23u, b, h) + ic * word(26u);
  let gsd = word(27u);
  let kb = tbase(13u, b, h);
  let kst = word(16u);
  let ksd = word(17u);
  let vb = tbase(18u, b, h);
  let vst = word(21u);
  let vsd = word(22u);
  let c = scale * LOG2E;
  @d let q$d = q[qo + $du * qsd] * c;
  @d let g$d = dout[go + $du * gsd];
  @d var dq$d = 0.0;
  let lse = stats[bh * Tq + ic] * LOG2E;
  let dl = stats[n + bh * Tq + ic];
  let kend = u32(row_limit(i32(min(tile0 + WG - 1u, Tq - 1u)), pre));
  for (var j = 0u; j < kend; j++) {
    let ko = kb + j * kst;
    let vo = vb + j * vst;
    var s0 = 0.0;
    var s1 = 0.0;
    var s2 = 0.0;
    var s3 = 0.0;
    var t0 = 0.0;
    var t1 = 0.0;
    var t2 = 0.0;
    var t3 = 0.0;
    @d s$e = fma(q$d, k[ko + $du * ksd], s$e);
    @d t$e = fma(g$d, v[vo + $du * vsd], t$e);
    let p = select(0.0, exp2((s0 + s1) + (s2 + s3) - lse), i32(j) < lim && pad_ok(b, j));
    let ds = p * ((t0 + t1) + (t2 + t3) - dl);
    @d dq$d = fma(ds, k[ko + $du * ksd], dq$d);
  }
  if (i >= Tq) { return; }
  let o = (bh * Tq + i) * D;
  @d dq_out[o + $du] = dq$d * scale;
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
  let pre = prefix_of(b);
  let tile0 = wid.x * WG;
  let j = tile0 + lid.x;
  let jc = min(j, Tk - 1u);
  let real = j < Tk && pad_ok(b, jc);
  let ko = tbase(13u, b, h) + jc * word(16u);
  let ksd = word(17u);
  let vo = tbase(18u, b, h) + jc * word(21u);
  let vsd = word(22u);
  let qb = tbase(8u, b, h);
  let qst = word(11u);
  let qsd = word(12u);
  let gb = tbase(23u, b, h);
  let gst = word(26u);
  let gsd = word(27u);
  let c = scale * LOG2E;
  @d let k$d = k[ko + $du * ksd] * c;
  @d let v$d = v[vo + $du * vsd];
  @d var dk$d = 0.0;
  @d var dv$d = 0.0;
  for (var i = first_query(tile0, pre); i < Tq; i++) {
    let qo = qb + i * qst;
    let go = gb + i * gst;
    var s0 = 0.0;
    var s1 = 0.0;
    var s2 = 0.0;
    var s3 = 0.0;
    var t0 = 0.0;
    var t1 = 0.0;
    var t2 = 0.0;
    var t3 = 0.0;
    @d s$e = fma(q[qo + $du * qsd], k$d, s$e);
    @d t$e = fma(dout[go + $du * gsd], v$d, t$e);
    let vis = real && i32(j) < row_limit(i32(i), pre);
    let p = select(0.0, exp2((s0 + s1) + (s2 + s3) - stats[bh * Tq + i] * LOG2E), vis);
    let ds = p * ((t0 + t1) + (t2 + t3) - stats[n + bh * Tq + i]);
    @d dv$d = fma(p, dout[go + $du * gsd], dv$d);
    @d dk$d = fma(ds, q[qo + $du * qsd], dk$d);
  }
  if (j >= Tk) { return; }
  let o = (bh * Tk + j) * D;
  let half = B * H * Tk * D;
  @d dkv[o + $du] = dk$d * scale;
  @d dkv[half + o + $du] = dv$d;
}
