// matmul.wgsl: batched C[b] = epilogue(A[b] @ B[b]) over strided operands, in three variants.
//
//   A is (batch, M, K), B is (batch, K, N), C is (batch, M, N) contiguous; bias is (N,).
//   epilogue(z) = z [+ bias[n]] [then GELU]. Transposed operands are just strides: the backward
//   pass (g @ B^T, A^T @ g) materialises no transposes; broadcast batches have batch stride 0.
//
// Variants (the launcher generates the unrolled body of the chosen one):
//   simd   For adapters whose "GPU" is CPU SIMD (lavapipe: subgroup size 8, one subgroup per
//          workgroup, no barriers). Measured on lavapipe: a load whose address is uniform costs
//          ~3x a per-lane gather and a vec4 load costs the same as a scalar one, so every load is
//          per-lane: lane l loads row r0+l of A (vec4 along K) and shares it with subgroupBroadcast;
//          lanes own consecutive columns of B (vec4 along N, or vec4 along K when B is transposed).
//          Each lane keeps (SG*RB) x (4*TNC) accumulators. The grid runs row blocks fastest so that
//          neighbouring workgroups reuse one B column panel from cache.
//   tiled  For GPUs: 64x64 output tile per 16x16 workgroup, each invocation 4x4, K in steps of 16
//          through workgroup memory (one barrier pair per step).
//   gemv   For skinny products (M <= 4: one-token decode): one invocation per column, all M rows.
//   Split-K (any variant) writes K-slices to a (splits, batch, M, N) scratch that the reduce kernel
//   sums in a fixed order (deterministic), for small M*N with large K.
// Floor: 2*M*N*K FLOPs; (M*K + K*N + M*N) * 4 bytes per batch.
//
// params (u32 words): [0] M, [1] N, [2] K, [3] RB (batch rank), [4] a offset, [5] a row stride,
//   [6] a k stride, [7] b offset, [8] b k stride, [9] b col stride, [10] bias offset,
//   [11] k begin (split-K), [12] k end, [13] output offset, [14..15] unused,
//   then batch shape (RB), a batch strides (RB), b batch strides (RB).
{{ENABLE}}
{{PARAMS}}
{{BINDINGS}}

{{MATH}}
fn epilogue(z: f32, n: u32) -> f32 {
  var v = z;
{{EPILOGUE}}
  return v;
}

// element offsets of batch `bi` in A and B (broadcast batches have stride 0)
fn batch_offsets(bi: u32) -> vec2<u32> {
  var rem = bi;
  var off = vec2<u32>(word(4u), word(7u));
  let rb = word(3u);
  for (var d = i32(rb) - 1; d >= 0; d--) {
    let sz = word(16u + u32(d));
    let c = rem % sz;
    rem /= sz;
    off += c * vec2<u32>(word(16u + rb + u32(d)), word(16u + 2u * rb + u32(d)));
  }
  return off;
}

{{BODY}}
