// matmul.wgsl: batched C[b] = A[b] @ B[b] over strided operands (transposes and broadcast batches
// are strides: the backward pass materialises no transposes).
//
//   A is (batch, M, K), B is (batch, K, N), C is (batch, M, N) contiguous.
//
// Register blocking: each invocation computes a TM x TN block of C from TM loads of A and TN loads
// of B per k, no workgroup memory and no barriers (the fast shape on lavapipe, and correct
// everywhere; the tuned variants are a separate kernel family). Workgroup WGX x WGY covers a
// (WGY*TM) x (WGX*TN) tile; grid z is the batch. Floor: 2*M*N*K FLOPs; (M*K + K*N + M*N)*4 bytes.
//
// params (u32 words): [0] M, [1] N, [2] K, [3] unused, [4] a offset, [5] a row stride, [6] a k stride,
//   [7] b offset, [8] b k stride, [9] b col stride, [10] batch rank RB, [11] unused,
//   then batch shape (RB), a batch strides (RB), b batch strides (RB).

{{PARAMS}}
{{BINDINGS}}

const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const RB: u32 = {{RB}}u;

@compute @workgroup_size({{WGX}}, {{WGY}})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let M = word(0u);
  let N = word(1u);
  let K = word(2u);
  let row0 = gid.y * TM;
  let col0 = gid.x * TN;
  if (row0 >= M || col0 >= N) { return; }
  // batch offsets from the batch index (broadcast batches have stride 0)
  var rem = gid.z;
  var aoff = word(4u);
  var boff = word(7u);
  for (var d = i32(RB) - 1; d >= 0; d--) {
    let sz = word(12u + u32(d));
    let c = rem % sz;
    rem /= sz;
    aoff += c * word(12u + RB + u32(d));
    boff += c * word(12u + 2u * RB + u32(d));
  }
  let ars = word(5u);
  let aks = word(6u);
  let bks = word(8u);
  let bcs = word(9u);
  // clamp the loads of edge blocks to valid rows/cols; their results are not stored
  var arow: array<u32, TM>;
  for (var i = 0u; i < TM; i++) { arow[i] = aoff + min(row0 + i, M - 1u) * ars; }
  var bcol: array<u32, TN>;
  for (var j = 0u; j < TN; j++) { bcol[j] = boff + min(col0 + j, N - 1u) * bcs; }
  var acc: array<array<f32, TN>, TM>;
  for (var k = 0u; k < K; k++) {
    var av: array<f32, TM>;
    for (var i = 0u; i < TM; i++) { av[i] = a[arow[i] + k * aks]; }
    var bv: array<f32, TN>;
    for (var j = 0u; j < TN; j++) { bv[j] = b[bcol[j] + k * bks]; }
    for (var i = 0u; i < TM; i++) {
      for (var j = 0u; j < TN; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
    }
  }
  let cbase = gid.z * M * N;
  for (var i = 0u; i < TM; i++) {
    let r = row0 + i;
    if (r >= M) { break; }
    for (var j = 0u; j < TN; j++) {
      let c = col0 + j;
      if (c < N) { out[cbase + r * N + c] = acc[i][j]; }
    }
  }
}
