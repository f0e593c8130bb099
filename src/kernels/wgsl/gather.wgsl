// gather.wgsl: torch.gather along AXIS, and the destination keys of a gather (for its backward).
//
//   gather:  out[i] = x[pos(i) with pos[AXIS] := index[pos(i)]]          (0 if the index is out of range)
//   keys:    out[i] = contiguous linear index into xShape of that element (0xffffffff if out of range)
//
// i runs over the output shape S in row-major order; out is contiguous (plus an offset). index is an
// i32 view broadcast to S (stride 0 on broadcast dims, e.g. indexSelect's 1-D index); x is any strided
// view of the same rank with x.shape[d] == S[d] for d != AXIS. For the keys variant the launcher
// passes xShape's contiguous strides and offset 0 in place of x's, and binds no x. Negative indices
// are not wrapped: anything outside [0, x.shape[AXIS]) is out of range and, when an error-flag
// buffer is bound, stores 1 into err[word 3] (this call's word, Device.assertFlag) for the next readback.
// RANK and AXIS are baked into the pipeline, so the index walk unrolls.
//
// One invocation per output element: 4 bytes of index and 4 of x read, 4 written (12 B/elem for
// gather, 8 B/elem for keys); x reads are data-dependent gathers, the rest streams. Bandwidth-bound.
//
// params (u32 words): [0] numel(S), [1] x.shape[AXIS], [2] out offset, [3] error-flag word,
//                     [4..4+RANK) S, then RANK x strides and x's offset, then RANK index strides and
//                     index's offset.

{{PARAMS}}
{{BINDINGS}}

const RANK: u32 = {{RANK}}u;
const AXIS: u32 = {{AXIS}}u;
const X_STRIDES: u32 = 4u + RANK;
const X_OFFSET: u32 = 4u + 2u * RANK;
const I_STRIDES: u32 = 5u + 2u * RANK;
const I_OFFSET: u32 = 5u + 3u * RANK;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= word(0u)) { return; }
  var rem = i;
  var ox = word(X_OFFSET);
  var oi = word(I_OFFSET);
  for (var k = 0u; k < RANK; k++) {
    let d = RANK - 1u - k;
    let sz = word(4u + d);
    let c = rem % sz;
    rem = rem / sz;
    oi += c * word(I_STRIDES + d);
    if (d != AXIS) { ox += c * word(X_STRIDES + d); }
  }
  let j = index[oi];
  let o = word(2u) + i;
  if (j >= 0 && u32(j) < word(1u)) {
    ox += u32(j) * word(X_STRIDES + AXIS);
    {{STORE_OK}}
  } else {
    {{STORE_BAD}}
  }
}
