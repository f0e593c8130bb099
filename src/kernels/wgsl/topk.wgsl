// topk.wgsl: the indices of the k largest (or smallest) elements of each row along one axis, in
// order (best first), by selection: one invocation per row.
//
//   out[o, i] = index j of the i-th element of row o in the order
//               LARGEST: value descending, then index ascending  (smallest: value ascending)
//
// NaN counts as larger than every number (as in PyTorch): first for the largest, last for the
// smallest. Pass i finds the best element that comes strictly after the one pass i - 1 picked in
// this total order, so ties resolve to the lower index and nothing is picked twice; no scratch
// memory. The values are then a gather of x at these indices (its backward routes the gradient).
//
// x is viewed as [outer (RO dims)..., n] and out as [outer..., k] through strides (no copies).
// Cost: k passes over the row, O(k n) per row, rows in parallel; made for the small k of sampling
// and evaluation (k n reads of 4 B, k writes of 4 B per row).
//
// params (u32 words): [0] rows, [1] n, [2] k, [3] x offset, [4] x stride along the axis, [5] out
//   offset, [6] out stride along the axis, [7] unused, then the outer shape (RO), x's outer strides
//   (RO), out's outer strides (RO).

{{PARAMS}}
{{BINDINGS}}

const RO: u32 = {{RO}}u;

// NaN tested on the bits (compilers may fold x != x to false)
fn is_nan(a: {{T}}) -> bool { {{IS_NAN}} }
// a > b in the row order, NaN above every number
fn above(a: {{T}}, b: {{T}}) -> bool {
  let na = is_nan(a);
  let nb = is_nan(b);
  return (na && !nb) || (!na && !nb && a > b);
}
fn same(a: {{T}}, b: {{T}}) -> bool {
  let na = is_nan(a);
  let nb = is_nan(b);
  return (na && nb) || (!na && !nb && a == b);
}
// (v, j) comes before (w, k) in the selection order
fn before(v: {{T}}, j: u32, w: {{T}}, k: u32) -> bool {
  return {{BEFORE}} || (same(v, w) && j < k);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * 64u;
  if (r >= word(0u)) { return; }
  var rem = r;
  var ox = word(3u);
  var oo = word(5u);
  for (var d = i32(RO) - 1; d >= 0; d--) {
    let sz = word(8u + u32(d));
    let c = rem % sz;
    rem = rem / sz;
    ox += c * word(8u + RO + u32(d));
    oo += c * word(8u + 2u * RO + u32(d));
  }
  let n = word(1u);
  let sx = word(4u);
  var pv = x[ox];
  var pj = 0xffffffffu;
  for (var i = 0u; i < word(2u); i++) {
    var bv = pv;
    var bj = 0xffffffffu;
    for (var j = 0u; j < n; j++) {
      let v = x[ox + j * sx];
      if ((pj == 0xffffffffu || before(pv, pj, v, j)) && (bj == 0xffffffffu || before(v, j, bv, bj))) {
        bv = v;
        bj = j;
      }
    }
    out[oo + i * word(6u)] = i32(bj);
    pv = bv;
    pj = bj;
  }
}
