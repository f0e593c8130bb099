// elementwise.wgsl: the strided map kernel behind every unary, binary and ternary op, casts,
// copies into views, fills, and the fused element-wise gradient rules.
//
//   out[o0(i)] = OUT_T(EXPR(a, b, c))      for i in [0, numel)
//
// Every operand is a strided view over the output's shape: offset + sum_d idx_d * stride_d, with
// stride 0 on broadcast dimensions, so permutes, slices and broadcasts run without copies. The rank,
// the operand dtypes, which operands are contiguous or scalar, and EXPR are baked into the pipeline
// (its cache key). The launcher writes BODY in one of four shapes: every operand contiguous like the
// output (or scalar), 16-byte aligned: vec4 loads and stores, EXPR once per component, 4 vec4s per
// invocation, 256 apart (per-lane loads cost the same for a vec4 as for a scalar on CPU adapters);
// no strided operand otherwise: 4 elements per invocation, 256 apart (a quarter of the workgroups,
// whose fixed cost dominates small maps on CPU adapters); strided operands and an innermost dim that is a multiple of 4: one div/mod index
// walk per run of 4 consecutive elements, the offsets then stepped by each operand's innermost
// stride; otherwise one element and one walk per invocation. 4 bytes read per input and 4 written;
// the kernel is bandwidth-bound, with the index walk as its only arithmetic on strided operands.
//
// params (u32 words): [0] numel, [1..3] unused, [4..7] f32 scalars p.x..p.w,
//                     [8..8+RANK) shape, then per operand (out first): RANK strides, then its offset.

{{PARAMS}}
{{BINDINGS}}

{{MATH}}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let p = vec4<f32>(wordf(4u), wordf(5u), wordf(6u), wordf(7u));
{{BODY}}
}
