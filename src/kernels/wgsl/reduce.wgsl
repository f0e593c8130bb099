// reduce.wgsl: sum / prod / max / min / argmax / argmin over the trailing RR dims of a strided view.
//
//   x is viewed as [outer (RO dims)..., reduced (RR dims)...] (the launcher permutes the reduced
//   axes last, as strides only: no copy). out[o] = REDUCE_j x[o, j] * scale (or of x² for a
//   sum of squares), out contiguous from its offset.
//
// Two shapes of the same kernel (ROW_MODE baked in):
//   row mode:    one workgroup of WG per output; threads stride over j, then a tree in workgroup memory
//                (sums over a contiguous, aligned block of reduced elements read it as vec4s).
//   thread mode: one invocation per output, a serial loop over j (small reductions, many outputs,
//                and on CPU adapters strided columns); column sums of 16-byte aligned columns take
//                a vec4 of outputs per invocation.
// Both visit j in a fixed order, so results are bit-identical run to run. argmax/argmin keep the
// first index of the extreme; a NaN counts as the extreme (max/min return NaN, argmax/argmin the first
// NaN's index, as PyTorch). Sums add BLOCK terms per accumulator, then fold the block into the total
// (a long f32 sum keeps its accuracy: adding ones one by one would stall at 2^24). Products always run in thread mode. Floor: the kernel reads each input element once (4 B) and writes 4 B per output.
//
// With a fixed subgroup size, row mode uses one subgroup per output and subgroup reductions
// (argmax: the subgroup max, then the smallest index holding it) instead of the barrier tree.
//
// params (u32 words): [0] outNumel, [1] redNumel, [2] out offset, [3] scale (f32), [4] x offset,
//   then outer shape (RO), outer strides (RO), reduced shape (RR), reduced strides (RR).
{{ENABLE}}
{{PARAMS}}
{{BINDINGS}}

const WG: u32 = {{WG}}u;
const RO: u32 = {{RO}}u;
const RR: u32 = {{RR}}u;

// infinities and NaN built at run time (constant-expression ones are WGSL compile errors)
fn neg_inf() -> f32 { var u = 0xff800000u; return bitcast<f32>(u); }
fn pos_inf() -> f32 { var u = 0x7f800000u; return bitcast<f32>(u); }
fn nan_v() -> {{T}} { var u = 0x7fc00000u; return bitcast<{{T}}>(u); }
// NaN tested on the bits (compilers may fold x != x); never for i32
fn is_nan(a: {{T}}) -> bool { {{IS_NAN}} }
// terms a sum adds per accumulator before folding the block into the running total
const BLOCK: u32 = 1024u;

fn outer_offset(o: u32) -> u32 {
  var rem = o;
  var off = word(4u);
  for (var d = i32(RO) - 1; d >= 0; d--) {
    let sz = word(5u + u32(d));
    off += (rem % sz) * word(5u + RO + u32(d));
    rem /= sz;
  }
  return off;
}

fn red_offset(j: u32) -> u32 {
  var rem = j;
  var off = 0u;
  for (var d = i32(RR) - 1; d >= 0; d--) {
    let sz = word(5u + 2u * RO + u32(d));
    off += (rem % sz) * word(5u + 2u * RO + RR + u32(d));
    rem /= sz;
  }
  return off;
}

// combine (acc, ai) with a candidate (v, vi); vi > ai for candidates visited later in serial order
fn better(v: {{T}}, vi: u32, acc: {{T}}, ai: u32) -> bool {
  {{BETTER}}
}

var<workgroup> sv: array<{{T}}, WG>;
var<workgroup> si: array<u32, WG>;

@compute @workgroup_size({{WG}})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let outN = word(0u);
  let R = word(1u);
  let scale = wordf(3u);
{{MAIN}}
}
