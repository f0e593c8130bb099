// scan.wgsl: cumulative sum or product along one axis of a strided view, one row per invocation.
//
//   inclusive:  out[o, j] = x[o, 0] OP x[o, 1] OP ... OP x[o, j]
//   exclusive:  out[o, j] = x[o, 0] OP ... OP x[o, j - 1]          (IDENTITY for j = 0)
//   REVERSE:    the same from the end of the row: out[o, j] = x[o, j] OP ... OP x[o, n - 1] (inclusive)
//
// x and out are viewed as [outer (RO dims)..., n]: the launcher passes the outer shape, the outer
// strides of each, and the stride of each along the scanned axis (no copies; out may be any strided
// view of a fresh buffer). OP (+ or *), IDENTITY, EXCLUSIVE, REVERSE and the element type T are baked
// into the pipeline. cumsum (forward, and its gradient: a reverse cumsum) and the exact gradient of
// prod (the product of every other element: an exclusive forward times an exclusive reverse
// cumulative product, zeros included) run on it.
//
// Each invocation walks its row sequentially in a fixed order: deterministic, O(n) per row, rows in
// parallel. Floor: 4 B read and 4 B written per element; a single long row is serial (latency-bound).
//
// params (u32 words): [0] rows, [1] n, [2] x offset, [3] out offset, [4] x stride along the axis,
//   [5] out stride along the axis, then the outer shape (RO), x's outer strides (RO), out's (RO).

{{PARAMS}}
{{BINDINGS}}

const RO: u32 = {{RO}}u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * 64u;
  if (r >= word(0u)) { return; }
  var rem = r;
  var ox = word(2u);
  var oo = word(3u);
  for (var d = i32(RO) - 1; d >= 0; d--) {
    let sz = word(6u + u32(d));
    let c = rem % sz;
    rem = rem / sz;
    ox += c * word(6u + RO + u32(d));
    oo += c * word(6u + 2u * RO + u32(d));
  }
  let n = word(1u);
  let sx = word(4u);
  let so = word(5u);
  var acc: {{T}} = {{IDENTITY}};
  for (var i = 0u; i < n; i++) {
    let j = select(i, n - 1u - i, {{REVERSE}});
    let v = x[ox + j * sx];
    if ({{EXCLUSIVE}}) {
      out[oo + j * so] = acc;
      acc = acc {{OP}} v;
    } else {
      acc = acc {{OP}} v;
      out[oo + j * so] = acc;
    }
  }
}
